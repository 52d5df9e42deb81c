"""What the adversarial tests share: small valid inputs of every kind, the foreign artefacts' type, and `refused`,
the one promise every bad input gets; `run_e2wm` for the cases run as a real process."""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2wm.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"
QA = {"input": "Q: What is the name of the task?\nA:", "answer_list": ["Watch TV", "Wash dishes"], "answer": "Watch TV"}
GEN = {"input": "Q: How to watch TV?\nA:", "ref": "Walk to living room. Switch on television."}
PAIR = {"input": "Q: How many items are on the table?\nA:", "ref": "There are 3 items."}
TEXT = {"text": "Walk to kitchen. Grab cup. Open fridge. Put cup in fridge."}


@dataclass
class Foreign:
    """Models and artefacts for the adversarial cases: tiny Llama and GPT-2, a wider Llama (same tokenizer,
    hidden size 48), and an adapter and a Fisher made for the wide one and for GPT-2."""

    llama: Path
    gpt2: Path
    wide_llama: Path
    wide_adapter: Path
    gpt2_adapter: Path
    wide_fisher: Path
    llama_adapter: Path


def write_lines(path: Path, *lines) -> Path:
    """A file of lines: dicts as JSON, str as they are, bytes as raw bytes; each line ends in a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        data += (line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n"
    path.write_bytes(data)
    return path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for a folder): what a refused command must leave as it was."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


PROGRESS = re.compile(r".*: *\d+%\|.*\| *[\d.]+[kM]?/[\d.]+[kM]? \[.*\]")  # a tqdm bar's text, as in model loading


def error_lines(err: str) -> list[str]:
    """Standard error's lines without the progress bars (tqdm's, redrawn after carriage returns) that work done
    before a refusal may have drawn: loading a model shows one."""
    parts = re.split(r"[\r\n]", err)
    return [part for part in parts if part.strip() and not PROGRESS.fullmatch(part.strip())]


def refused(argv: list[str], root: Path, capsys) -> str:
    """Run `e2wm argv` in-process and check the promise for bad input: exit code 2, one line on standard error
    besides progress bars (`error_lines`), `e2wm <command>: error: ...` (`e2wm: error:` before a command is
    known), no traceback, and nothing under root created, changed or removed. Returns the line."""
    before = snapshot(root)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert stop.value.code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("e2wm") and ": error: " in lines[0], lines[0]
    assert "Traceback" not in err
    assert snapshot(root) == before, f"{argv[0]} left output behind: {err}"
    return lines[0]


def run_e2wm(*args, cwd: Path | None = None, **popen) -> subprocess.CompletedProcess:
    """`python -m e2wm args` in a fresh process (this checkout's src first, one thread, the Hub offline)."""
    return subprocess.run([sys.executable, "-m", "e2wm", *map(str, args)], capture_output=True, text=True,
                          env=child_env(), cwd=cwd, timeout=600, **popen)


def child_env() -> dict[str, str]:
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def lora_adapter(model_dir: Path, out: Path, modules: list[str]) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    fan = model.config.model_type == "gpt2"
    get_peft_model(model, LoraConfig(r=4, target_modules=modules, fan_in_fan_out=fan)).save_pretrained(out)
    return out
