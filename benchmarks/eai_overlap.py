"""How much of the released E2WM files is about the Embodied Agent Interface's action-sequencing tasks.

EAI (Li et al., NeurIPS 2024) judges VirtualHome plans on 342 tasks, each made from a bundled RobotHow program
(`e2wm.world.eai_tasks`), in 26 activities. A model trained on E2WM files that tell those programs has seen EAI's
tasks. Per released file (training files, and the evaluation files of the dev slice or the cache), for each item:

- plan = an EAI program, word for word: the item's plan (plan_gen's answer; the plan act_recog names) is the
  English of an EAI program's human script as e2wm and the released files tell plans
  (`world.programs.plan_english`: 'Walk to dining room. Walk to sink. ...');
- plan = any bundled program: the same against all 518 bundled programs (EAI or not), for context;
- question about an EAI program: plan_gen's question asks for the same activity with the same items as the
  question e2wm's builder asks about an EAI program (its goal objects and their rooms, `world.describe.items`):
  the released training plans are MCTS plans, not the human script, so the question is what names the program;
  train_act_recog's line i tells the plan of train_plan_gen's line i (checked: every plan agrees), so it
  inherits that line's question. The confusing files add distractor objects to every question, so their
  questions never match; question about a bundled program: the same against all 518, for context;
- EAI activity: the item's activity (the question's 'How to wash clothes?', act_recog's and act_infer's answer,
  housework QA's 'To wash clothes, ...') is one of EAI's 26, ignoring case;
- EAI programs met: the distinct EAI programs the file's items tell by plan or question (an English plan that
  several programs share counts each).

    python benchmarks/eai_overlap.py                        # ../shared/e2wm-benchmark (train/, eval-dev/)
    python benchmarks/eai_overlap.py --dir ~/.cache/e2wm/data/e2wm     # after `e2wm data download` (train/, eval/)
    python benchmarks/eai_overlap.py --write-look-alikes eai-look-alikes.txt   # for --exclude-programs eai FILE

About 15 s on one core (e2wm's question for each of the 518 programs builds its world). docs/benchmark.md
quotes the table.
"""

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from e2wm.experience.goals import make_goal
from e2wm.files import read_jsonl, write_atomic
from e2wm.world import eai_tasks
from e2wm.world.describe import items
from e2wm.world.programs import index, load_program, plan_english

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark"
PLAN_QUESTION = re.compile(r"Q: How to (?P<activity>[^?\n]+)\? Given items include (?P<items>[^\n]*?)\.(?: [^\n]*)?"
                           r"\nA:$")
ACT_RECOG = (re.compile(r"Given a household activity plan as follows:\n(?P<plan>[^\n]+)\nQ: What is the name"),
             re.compile(r"Given a task plan: (?P<plan>[^\n]+)\nQuestion: what is the name"))
HOUSEWORK = re.compile(r"Question: To (?P<activity>.+?), a (?:possibly related|unrelated) item could be")


def activity_key(text: str) -> str:
    """'Put groceries in Fridge' -> 'put groceries in fridge' (the released files' lower case)."""
    return " ".join(text.split()).lower()


@dataclass
class Programs:
    """The bundled programs as the files could tell them: plan English -> ids, (activity, items) -> ids."""

    by_plan: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_question: dict[tuple[str, frozenset[str]], set[str]] = field(default_factory=lambda: defaultdict(set))
    eai: frozenset[str] = frozenset()
    activities: frozenset[str] = frozenset()


def bundled_programs() -> Programs:
    """Every bundled program's human plan in English and the activity and items of e2wm's question about it."""
    found = Programs(eai=frozenset(eai_tasks.program_ids()),
                     activities=frozenset(activity_key(task.activity) for task in eai_tasks.load_tasks()))
    for program_id in index():
        program = load_program(program_id)
        found.by_plan[plan_english(program.steps)].add(program_id)
        goal = make_goal(program)
        named = items(goal.world, goal.world.initial_state(), goal.objects)
        found.by_question[activity_key(program.activity), frozenset(named)].add(program_id)
    return found


@dataclass
class Item:
    """What an item says about programs: its plan, its question's program candidates, its activity."""

    plan: str | None = None
    question: set[str] | None = None  # programs whose e2wm question this item asks (None: no question to match)
    activity: str | None = None


def task_of(path: Path) -> str:
    """train_plan_gen.json -> plan_gen; plan_gen_unseen_confusing.json -> plan_gen_unseen_confusing."""
    return path.stem.removeprefix("train_")


def read_items(path: Path, known: Programs) -> list[Item]:
    """The items of one released file, as far as its task tells a plan, a question or an activity."""
    task, found = task_of(path), []
    for line in read_jsonl(path):
        text, answer = line["input"], line.get("answer", line.get("ref"))
        item = Item()
        if task.startswith("plan_gen"):
            match = PLAN_QUESTION.search(text)
            item.plan, item.activity = line["ref"], activity_key(match["activity"])
            item.question = known.by_question.get((item.activity, frozenset(match["items"].split(", "))), set())
        elif task == "act_recog":
            item.plan = [m for pattern in ACT_RECOG for m in pattern.finditer(text)][-1]["plan"]
            item.activity = activity_key(answer)
        elif task == "act_infer":
            item.activity = activity_key(answer)
        elif task.endswith("housework_qa"):
            item.activity = activity_key(list(HOUSEWORK.finditer(text))[-1]["activity"])
        found.append(item)
    return found


def look_alikes(known: Programs) -> list[str]:
    """The bundled programs outside EAI that share an EAI program's plan English or e2wm's question about it:
    `--exclude-programs eai` leaves them in, and their items would tell an EAI task's question or plan."""
    groups = [*known.by_plan.values(), *known.by_question.values()]
    return sorted({p for ids in groups if ids & known.eai for p in ids - known.eai},
                  key=lambda pid: [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", pid)])


def split_of(path: Path) -> str:
    """'train' for train/*.json, else the evaluation folder (eval-dev, eval) above qa/ and gen/."""
    return path.parent.name if path.parent.name == "train" else path.parent.parent.name


def link_act_recog(files: dict[Path, list[Item]]) -> None:
    """An act_recog file whose items tell, line by line, the plans of a plan_gen file of the same split (the
    released training files do: line i of both is one record) gets that file's question programs; the others
    have none (None: the question column does not apply)."""
    for path, found in files.items():
        if task_of(path) != "act_recog":
            continue
        for other, plans in files.items():
            if (task_of(other) == "plan_gen" and split_of(other) == split_of(path) and len(plans) == len(found)
                    and all(a.plan == b.plan for a, b in zip(found, plans))):
                for item, twin in zip(found, plans):
                    item.question = twin.question


def row(found: list[Item], known: Programs) -> dict[str, int]:
    """One file's counts (items; see the module's docstring for each column)."""
    eai_plan = [known.by_plan.get(item.plan, set()) & known.eai for item in found]
    eai_question = [(item.question or set()) & known.eai for item in found]
    return {
        "items": len(found),
        "plan_eai": sum(map(bool, eai_plan)),
        "plan_bundled": sum(item.plan in known.by_plan for item in found),
        "question_eai": sum(map(bool, eai_question)),
        "question_bundled": sum(bool(item.question) for item in found),
        "activity_eai": sum(item.activity in known.activities for item in found),
        "eai_programs": len(set().union(*eai_plan, *eai_question)),
        "told": sum(item.plan is not None or item.activity is not None for item in found),
        "questions": sum(item.question is not None for item in found),
    }


def release_files(folder: Path) -> list[Path]:
    """train/*.json, then the evaluation files (eval-dev/ or eval/, qa/ and gen/)."""
    return sorted((folder / "train").glob("*.json")) + sorted(
        path for split in ("eval-dev", "eval") for path in (folder / split).glob("*/*.json"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help="the released files: train/*.json and eval-dev/ or eval/ (qa/, gen/)")
    parser.add_argument("--write-look-alikes", type=Path, metavar="FILE",
                        help="write the ids of the bundled programs outside EAI that share an EAI program's plan or "
                             "question, one a line (`e2wm build --exclude-programs eai FILE` keeps them out too)")
    args = parser.parse_args()
    paths = release_files(args.dir)
    if not any(path.parent.name == "train" for path in paths):
        print(f"{args.dir}: needs the released E2WM files (train/train_plan_gen.json, ...; ../shared/e2wm-benchmark, "
              "or the cache of `e2wm data download` with --dir)", file=sys.stderr)
        return 2
    known = bundled_programs()
    if args.write_look_alikes:
        alike = look_alikes(known)
        write_atomic(args.write_look_alikes, "# bundled programs outside EAI's 342 that share an EAI program's plan "
                     f"English or e2wm's question about it ({eai_tasks.version()}; benchmarks/eai_overlap.py)\n"
                     + "".join(f"{pid}\n" for pid in alike))
        print(f"{args.write_look_alikes}: {len(alike)} look-alike programs")
    files = {path: read_items(path, known) for path in paths}
    link_act_recog(files)
    print(f"EAI: {len(known.eai)} programs, {len(known.activities)} activities ({eai_tasks.version()}); "
          f"{len(index())} bundled programs, {len(known.by_plan)} distinct plans\n")
    print("| file | items | plan = EAI program | plan = bundled program | question about EAI program | "
          "question about bundled program | EAI activity | EAI programs met |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path, found in files.items():
        counts = row(found, known)
        name = path.relative_to(args.dir)
        if not counts["told"]:
            print(f"| {name} | {counts['items']} | - | - | - | - | - | - |  (stories: no program or activity)")
            continue
        plans = any(item.plan is not None for item in found)
        cells = [str(counts[key]) if plans else "-" for key in ("plan_eai", "plan_bundled")]
        cells += [str(counts[key]) if counts["questions"] else "-" for key in ("question_eai", "question_bundled")]
        print(f"| {name} | {counts['items']} | {' | '.join(cells)} | {counts['activity_eai']} | "
              f"{counts['eai_programs'] if plans else '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
