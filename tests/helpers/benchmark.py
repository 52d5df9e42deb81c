"""A stand-in for the released E2WM benchmark: small files in the repository's layout (data/eval/qa/count.json,
data/train/train_plan_gen.json, ...) and the checksum table that matches them, to put in place of
e2wm.benchmark_data.RELEASED (the real files are fetched at run time, never in tests)."""

import hashlib
import json
from pathlib import Path

from e2wm.benchmark_data import ReleasedFile

QA = {"input": "Q: How many items are on the table?\nA:", "answer_list": ["0", "1", "2", "3", "4"], "answer": "2"}
GEN = {"input": "Q: How to watch tv?\nA:", "ref": "Walk to home office. Switch on tv."}
PAIR = {"input": "Q: How to wash dishes?\nA:", "ref": "Walk to kitchen. Turn on faucet."}
# path in the repository -> records: two QA files, two generation files, the four training files
FILES = {
    "data/eval/qa/count.json": [QA, QA | {"answer": "3"}, QA | {"answer": "0"}],
    "data/eval/qa/act_recog.json": [QA | {"answer_list": ["cook", "read", "sleep", "clean"], "answer": "read"}],
    "data/eval/gen/plan_gen.json": [GEN, GEN | {"ref": "Walk to living room. Switch on tv."}],
    "data/eval/gen/obj_move_path.json": [{"input": "Where did the cup go?\nAnswer:", "ref": "kitchen, hallway"}],
    "data/train/train_plan_gen.json": [PAIR, PAIR | {"ref": "Walk to sink."}],
    "data/train/train_count.json": [{"input": QA["input"], "ref": "2"}],
    "data/train/train_act_recog.json": [{"input": "Given a task plan: Switch on tv. Task?", "ref": "Watch TV"}],
    "data/train/train_obj_move.json": [{"input": "Where did the cup go?\nAnswer:", "ref": "kitchen, hallway"}],
}


def write_release(folder: Path, layout: str = "repository") -> tuple[ReleasedFile, ...]:
    """Write FILES under folder, as the repository lays them out (folder/data/eval/...) or as the cache does
    (folder/eval/...); returns their checksum table."""
    table = []
    for path, records in FILES.items():
        data = "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")
        target = folder / (path if layout == "repository" else path.removeprefix("data/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        table.append(ReleasedFile(path, hashlib.sha256(data).hexdigest(), len(data)))
    return tuple(table)
