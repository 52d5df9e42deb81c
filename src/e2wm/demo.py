"""`e2wm demo`: the whole E2WM pipeline on the embedded SmolLM2-135M, sized for a laptop CPU.

collect (MCTS plans + random exploration) -> build (four training tasks + held-out split) -> fisher
(on model samples) -> train (EWC-LoRA, a small budget) -> eval (base and finetuned, E2WM tasks +
perplexity on general text) -> report (table + charts). Each stage is the real `e2wm <stage>` command
run with the arguments printed before it, into OUT/<stage>/. A finished stage records its arguments in
OUT/<stage>/stage.json and is skipped when re-run with the same arguments; `--force` redoes everything,
and a stage that runs again makes every later stage run again. An interrupted stage resumes where its
command can (collect, fisher, train, eval) and starts over otherwise.
"""

import json
import os
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from e2wm.files import write_json, write_jsonl
from e2wm.general_text import PARAGRAPHS
from e2wm.models import EMBEDDED_NAME

DEV_SLICE = Path("../shared/e2wm-benchmark/eval-dev")
RESUMABLE = ("collect", "fisher", "train", "eval")  # their commands pick up what an interrupted run left
MIXTURE = {"plan_gen": 1.0, "act_recog": 0.7, "count": 1.0, "obj_move": 1.0}  # the paper's weights


@dataclass
class DemoSettings:
    """Sizes of every stage: the defaults fit 20 minutes on 2 CPU cores with SmolLM2-135M."""

    model: str = EMBEDDED_NAME
    out: Path = Path("runs/demo")
    eval_data: Path | None = None  # default: the dev slice when present, else the held-out generated split
    programs: int = 24
    simulations: int = 50
    episodes: int = 24
    holdout_activities: int = 2
    fisher_n: int = 32
    fisher_len: int = 128
    train_steps: int = 30
    batch_size: int = 2
    max_len: int = 256
    limit: int = 4
    max_new_tokens: int = 128
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass
class Stage:
    """One stage: a folder under OUT and the `e2wm` commands (name, argv) that fill it."""

    name: str
    what: str
    commands: list[tuple[str, list[str]]]


def spread(ids: list[str], n: int) -> list[str]:
    """n ids taken evenly across the list (programs of one activity sit together, so this mixes activities)."""
    if n >= len(ids):
        return ids
    return [ids[i * len(ids) // n] for i in range(n)]


def eval_data(settings: DemoSettings, build_dir: Path) -> Path:
    if settings.eval_data is not None:
        return settings.eval_data
    return DEV_SLICE if DEV_SLICE.is_dir() else build_dir / "heldout"


def plan(settings: DemoSettings) -> list[Stage]:
    """The stages and their exact command lines."""
    from e2wm.world.programs import program_ids

    out, s = settings.out, settings
    collect, build, fisher, train, evaluate, report = (out / name for name in
                                                       ("collect", "build", "fisher", "train", "eval", "report"))
    model = ["--model", s.model]
    mixture = " ".join(f"{weight:g} {build / f'train_{task}.jsonl'}" for task, weight in MIXTURE.items())
    data = eval_data(s, build)
    eval_options = ["--data", str(data), "--limit", str(s.limit), "--max-new-tokens", str(s.max_new_tokens),
                    "--batch-size", "4", "--ppl-data", str(general_text_file(out))]
    return [
        Stage("collect", f"MCTS plans for {s.programs} RobotHow programs and {s.episodes} exploration episodes", [
            ("collect", ["plans", "--out", str(collect / "plans.jsonl"), "--programs",
                         *spread(program_ids(None), s.programs), "--simulations", str(s.simulations),
                         "--workers", str(s.workers)]),
            ("collect", ["explore", "--out", str(collect / "explore.jsonl"), "--episodes", str(s.episodes),
                         "--workers", str(s.workers)]),
        ]),
        Stage("build", f"the four training tasks, {s.holdout_activities} activities held out", [
            ("build", ["--plans", str(collect / "plans.jsonl"), "--explore", str(collect / "explore.jsonl"),
                       "--out", str(build), "--holdout-activities", str(s.holdout_activities)]),
        ]),
        Stage("fisher", f"diagonal Fisher on {s.fisher_n} texts sampled from the base model", [
            ("fisher", [*model, "--n", str(s.fisher_n), "--max-len", str(s.fisher_len), "--batch-size", "8",
                        "--write-samples", str(fisher / "samples.jsonl"), "--out", str(fisher / "fisher.safetensors")]),
        ]),
        Stage("train", f"EWC-LoRA for {s.train_steps} steps of {s.batch_size} examples", [
            ("train", [*model, "--train", mixture, "--fisher", str(fisher / "fisher.safetensors"),
                       "--max-steps", str(s.train_steps), "--epochs", "100", "--batch-size", str(s.batch_size),
                       "--max-len", str(s.max_len), "--save-every", "10", "--out", str(train)]),
        ]),
        Stage("eval", f"base and finetuned on {data} ({s.limit} items per task) and general-text perplexity", [
            ("eval", [*model, *eval_options, "--out", str(evaluate / "base")]),
            ("eval", [*model, "--adapter", str(train / "adapter"), *eval_options,
                      "--out", str(evaluate / "finetuned")]),
        ]),
        Stage("report", "the comparison table and charts", [
            ("report", [str(evaluate / "base"), str(evaluate / "finetuned"), "--train-log", str(train),
                        "--out", str(report / "report.md"), "--title", f"e2wm demo: {s.model}, base vs EWC-LoRA"]),
        ]),
    ]


def general_text_file(out: Path) -> Path:
    """Held-out general text for perplexity (no stage trains on it), written from e2wm.general_text."""
    return out / "data" / "general.jsonl"


def run_command(name: str, argv: list[str]) -> None:
    """Run `e2wm name argv` in this process, through the command's own parser and run()."""
    from e2wm.cli import command_parser

    parser, module = command_parser(name)
    module.run(parser.parse_args(argv))


def prepare(stage: Stage, folder: Path, resume: bool) -> list[tuple[str, list[str]]]:
    """The commands for a stage that is not done: resuming what an interrupted run left, or from a clean folder."""
    if resume and stage.name == "train" and (folder / "checkpoint" / "state.json").is_file():
        return [(name, [*argv, "--resume"]) for name, argv in stage.commands]
    if not resume or stage.name == "train":
        shutil.rmtree(folder, ignore_errors=True)
    return stage.commands


def run_stages(settings: DemoSettings, force: bool = False, log=print) -> dict[str, float]:
    """Run (or skip) every stage in order; returns each stage's seconds (0 where skipped)."""
    stages = plan(settings)
    settings.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(general_text_file(settings.out), [{"text": text} for text in PARAGRAPHS])
    upstream_ran, seconds, cpu, start = False, {}, {}, time.time()
    for number, stage in enumerate(stages, start=1):
        folder = settings.out / stage.name
        marker = folder / "stage.json"
        recorded = json.loads(marker.read_text()) if marker.is_file() else {}
        same = recorded.get("commands") == [list(c) for c in stage.commands]
        header = f"[{number}/{len(stages)}] {stage.name}: {stage.what}"
        fresh = force or upstream_ran or not same  # else the stage's earlier output is still valid
        if not fresh and recorded.get("done"):
            log(f"{header}\n    done before in {recorded['seconds']:.0f} s; skipped (--force redoes it)")
            seconds[stage.name] = 0.0
            continue
        upstream_ran = True  # every later stage depends on this one's output
        commands = prepare(stage, folder, resume=not fresh and stage.name in RESUMABLE)
        write_json(marker, {"commands": [list(c) for c in stage.commands], "done": False})
        log(f"{header}  (demo time so far {time.time() - start:.0f} s)")
        began, began_cpu = time.time(), cpu_seconds()
        for name, argv in commands:
            log("    $ e2wm " + " ".join(quote(a) for a in [name, *argv]))
            run_command(name, argv)
        seconds[stage.name], cpu[stage.name] = time.time() - began, cpu_seconds() - began_cpu
        log(f"    {stage.name} done in {seconds[stage.name]:.0f} s ({cpu[stage.name]:.0f} s of CPU time)")
        write_json(marker, {"commands": [list(c) for c in stage.commands], "done": True,
                            "seconds": seconds[stage.name], "cpu_seconds": cpu[stage.name]})
    write_json(settings.out / "timings.json", {"wall_seconds": seconds, "cpu_seconds": cpu,
                                               "total_wall_seconds": time.time() - start})
    return seconds


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (the collect workers)."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def quote(arg: str) -> str:
    return f"'{arg}'" if not arg or any(c in arg for c in " \"'$") else arg
