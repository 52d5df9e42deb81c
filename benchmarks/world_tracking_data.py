"""The released world-tracking training files in the benchmark's own answer form, for the world-tracking study.

    python benchmarks/world_tracking_data.py --data-dir ../shared/e2wm-benchmark/train --out runs/world/data

The released training files answer in sentences and paths, while the benchmark asks multiple-choice questions
whose options are digits and room names (issue 14, item 3). This writes, from the same stories:

- train_count_digits.jsonl: every count example (its three shots and its query) answered with the number alone,
  "There are 3 items on the desk. They are ..." -> "3", "There is one item ..." -> "1", "There is no item ..."
  -> "0": the form of the benchmark's count.json, whose shots are these same stories answered with digits.
- train_obj_move_qa.jsonl: every object-path example (shots and query) asked as the benchmark's obj_move.json
  asks: "What is the order of the rooms where the hat appeared?" / "bedroom, bathroom" becomes "Where was the hat
  before the bathroom?" / "bedroom" (the room before a later room of the path that occurs once in it, drawn with
  a seeded Random per example; shots say "is" as the benchmark's shots do). Examples with no such room are left out.
- train_count_digits_curriculum.jsonl: the same digit examples ordered by their query story's length in words,
  shortest first (ties in file order), for `e2wm train --batching sequential`: a curriculum from short
  stories, with few actions to track, to long ones.
- train_count.jsonl and train_obj_move.jsonl: the released files (the sentence and path forms), so that one
  --data-dir holds both forms.

`--exclude FILE ...` (evaluation files) leaves out every training example that tells one of their query stories,
as its query or as a shot, in both forms. The released train_count.json tells all 65 stories of the dev slice's
count.json (18 as queries, with the same answer; 47 as shots: 42 of its 1000 examples): without it, a count run
measured on the dev slice would partly measure memory.

Only derived training files are written (under runs/, never committed); the evaluation files are untouched.
"""

import argparse
import random
import re
from collections import Counter
from pathlib import Path

from e2wm.files import read_jsonl, write_jsonl

COUNT_SENTENCE = re.compile(r"There (?:is|are) (no|one|\d+) items? (?:on|in) the [^\n]*")
PATH_QUESTION = re.compile(r"Question: What is the order of the rooms where the ([^\n]+) appeared\?\nAnswer:"
                           r"(?: ([^\n]*))?")


def count_digit(sentence: str) -> str:
    """'There are 3 items on the desk. They are ...' -> '3' ('no' -> '0', 'one' -> '1'); ValueError otherwise."""
    found = COUNT_SENTENCE.fullmatch(sentence.strip())
    if found is None:
        raise ValueError(f"not a released count answer: {sentence!r}")
    return {"no": "0", "one": "1"}.get(found.group(1), found.group(1))


def count_example(example: dict) -> dict:
    """A released count example with every answer (the shots' and the reference) as a digit."""
    def shot(found: re.Match) -> str:
        return f"\nA: {count_digit(found.group(1))}"

    text = re.sub(r"\nA: (There [^\n]*)", shot, example["input"])
    return {"input": text, "ref": count_digit(example["ref"])}


def before_question(obj: str, path: list[str], rng: random.Random, tense: str) -> tuple[str, str] | None:
    """('Where <tense> the obj before the <room>?', the room before it) for a room of the path (not the first)
    that occurs once in it; None when there is none."""
    later = [i for i in range(1, len(path)) if path.count(path[i]) == 1]
    if not later:
        return None
    i = rng.choice(later)
    return f"Question: Where {tense} the {obj} before the {path[i]}?\nAnswer:", path[i - 1]


def obj_move_example(example: dict, rng: random.Random) -> dict | None:
    """A released object-path example asked as the benchmark's obj_move QA; None if a path has no usable room."""
    blocks = example["input"].split("\n\n")
    *shots, query = blocks
    converted = []
    for block in shots:
        found = PATH_QUESTION.search(block)
        if found is None or found.group(2) is None:
            raise ValueError(f"not a released obj_move shot: {block[-120:]!r}")
        asked = before_question(found.group(1), found.group(2).split(", "), rng, "is")
        if asked is None:
            return None
        converted.append(f"{block[:found.start()]}{asked[0]} {asked[1]}")
    found = PATH_QUESTION.search(query)
    if found is None:
        raise ValueError(f"not a released obj_move query: {query[-120:]!r}")
    asked = before_question(found.group(1), example["ref"].strip().split(", "), rng, "was")
    if asked is None:
        return None
    return {"input": "\n\n".join([*converted, f"{query[:found.start()]}{asked[0]}"]), "ref": asked[1]}


def story(block: str) -> str:
    """The story of a few-shot block: the text before its question line."""
    return re.split(r"\n(?:Question: |How many items)| How many items", block, maxsplit=1)[0].strip()


def told_stories(example: dict) -> set[str]:
    """The stories of every block (shots and query) of a training or evaluation input; the header is not one."""
    return {story(block) for block in example["input"].split("\n\n") if "?" in block}


def queries(files: list[Path]) -> set[str]:
    """The query stories (last block) of evaluation files."""
    return {story(example["input"].split("\n\n")[-1]) for file in files for example in read_jsonl(file)}


def query_words(example: dict) -> int:
    """The number of words of an example's query story (its last block)."""
    return len(story(example["input"].split("\n\n")[-1]).split())


def find(data_dir: Path, task: str) -> Path:
    """train_<task>.json or .jsonl in data_dir."""
    for suffix in (".jsonl", ".json"):
        if (data_dir / f"train_{task}{suffix}").is_file():
            return data_dir / f"train_{task}{suffix}"
    raise SystemExit(f"{data_dir}: no train_{task}.json(l)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/e2wm-benchmark/train"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclude", type=Path, nargs="*", default=[], help="evaluation files whose query stories "
                        "training must not tell")
    args = parser.parse_args()
    held = queries(args.exclude)
    count = [e for e in read_jsonl(find(args.data_dir, "count")) if not told_stories(e) & held]
    obj_move = [e for e in read_jsonl(find(args.data_dir, "obj_move")) if not told_stories(e) & held]
    digits = [count_example(example) for example in count]
    qa = [obj_move_example(example, random.Random(f"{args.seed}/{i}")) for i, example in enumerate(obj_move)]
    qa = [example for example in qa if example is not None]
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "train_count.jsonl", count)
    write_jsonl(args.out / "train_obj_move.jsonl", obj_move)
    write_jsonl(args.out / "train_count_digits.jsonl", digits)
    write_jsonl(args.out / "train_obj_move_qa.jsonl", qa)
    curriculum = sorted(digits, key=query_words)
    write_jsonl(args.out / "train_count_digits_curriculum.jsonl", curriculum)
    answers = sorted({e["ref"] for e in digits})
    print(f"count: {len(digits)} examples, answers {answers}; obj_move QA: {len(qa)} of {len(obj_move)} examples")
    quarter = -(-len(curriculum) // 4)
    for i in range(0, len(curriculum), quarter):  # the answer mix moves along the order (short stories: 0 or 1)
        part = curriculum[i : i + quarter]
        mix = Counter(e["ref"] for e in part)
        print(f"curriculum examples {i + 1}-{i + len(part)} (query stories of {query_words(part[0])}-"
              f"{query_words(part[-1])} words): answers " + ", ".join(f"{a} {mix[a]}" for a in answers))


if __name__ == "__main__":
    main()
