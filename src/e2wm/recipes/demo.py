"""Demo recipe: the whole E2WM pipeline on the embedded model (SmolLM2-135M-Instruct de-quantised from a Q4_1
GGUF), sized for a laptop CPU.

collect (MCTS plans + random exploration) -> build (four training tasks, and evaluation files of the records
kept out of training) -> fisher (on model samples) -> train (EWC-LoRA, a small budget) -> eval (base, the
demo's adapter and, on the embedded model, the adapter shipped with e2wm: E2WM tasks + perplexity on general
text) -> report (table with paired intervals + charts, and what each change supports).

What it evaluates (`eval_source`): --eval-data when given; else the released E2WM benchmark when `e2wm data
download` put it in the cache; else its dev slice where ../shared has it; else the benchmark its own build
stage generated (9 tasks; docs/benchmark.md). The report's title says which. Each stage calls the recipes with
typed configs and prints, before each job, the `e2wm` command line that does the same, so that a user can
rerun one stage by hand. A finished stage records those command lines, its jobs' result settings and the
digests of the files they read (outside the stage's own folder) in OUT/<stage>/stage.json, and is skipped when
re-run with the same settings and inputs (so --workers alone changes nothing); `force` redoes everything, and
a stage that runs again makes every later stage run again. An interrupted stage resumes where its recipe can
(collect, fisher, train, eval) and starts over otherwise.
"""

import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from e2wm import benchmark_data, config
from e2wm.config import option, result_settings
from e2wm.data.build import HELDOUT_DIR
from e2wm.data.config import BuildConfig
from e2wm.errors import InputError
from e2wm.eval.config import EvalConfig, ReportConfig
from e2wm.eval.items import load_eval_files
from e2wm.experience.config import CollectExploreConfig, CollectPlansConfig
from e2wm.experience.runner import default_workers
from e2wm.files import write_atomic, write_json
from e2wm.locks import output_lock
from e2wm.models import EMBEDDED_NAME, MODEL_HELP
from e2wm.provenance import model_fingerprint, path_digest
from e2wm.recipes.build import build
from e2wm.recipes.collect import collect_explore, collect_plans
from e2wm.recipes.evaluate import evaluate
from e2wm.recipes.finetune import finetune
from e2wm.recipes.fisher import compute_fisher
from e2wm.recipes.report import report
from e2wm.train.config import FisherConfig, TrainConfig
from e2wm.train.data import PAPER_MIXTURE

logger = logging.getLogger(__name__)

DEV_SLICE = Path("../shared/e2wm-benchmark/eval-dev")
SHIPPED = "smollm2-135m-e2wm"  # the adapter shipped with e2wm for the embedded model (e2wm/adapters/)
# tokens generated at most per answer: the generated benchmark's references have at most 45 tokens (SmolLM2's
# tokenizer), the released plan references 65 to 105 at their 90th percentile; 8 prompts decode together
GENERATED_NEW_TOKENS, RELEASED_NEW_TOKENS = 64, 128
RESUMABLE = ("collect", "fisher", "train", "eval")  # their recipes pick up what an interrupted run left
# a few paragraphs of plain general English written for this project (history, science, nature, travel),
# far from household activities, for the demo's perplexity check; real runs use a large corpus (Pile)
GENERAL_TEXT = resources.files("e2wm") / "assets" / "general_text.jsonl"
SIZES = "sizes (the defaults fit 20 minutes on 2 CPU cores)"


@dataclass(kw_only=True)
class DemoConfig:
    """`e2wm demo` / `e2wm.run_demo`: every stage's size; the defaults fit 20 minutes on 2 CPU cores."""

    model: str = option(EMBEDDED_NAME, MODEL_HELP + "; a small causal LM")
    out: str = option("runs/demo", "folder of the stages' folders")
    eval_data: str | None = option(None, "E2WM evaluation files (default: the released benchmark when it is in the "
                                   "cache (e2wm data download), else ../shared/e2wm-benchmark/eval-dev when present, "
                                   "else the evaluation files the build stage generates)")
    force: bool = option(False, "redo every stage, even those done before")
    threads: int | None = option(None, "torch threads (default: chosen before each stage, one per core that other "
                                 "work leaves free, at least 1: more threads than free cores contend for them and "
                                 "run many times slower)", minimum=1)
    num_programs: int | None = option(None, "RobotHow programs to plan for, spread over the activities (default: "
                                      "all)", minimum=1, group=SIZES)
    simulations: int = option(50, "MCTS simulations per program", minimum=1, group=SIZES)
    episodes: int = option(160, "exploration episodes (for training and the generated evaluation)", minimum=2,
                           group=SIZES)
    story_steps: int = option(16, "successful steps told per episode (shorter stories, shorter prompts)", minimum=1,
                              group=SIZES)
    eval_episodes: int = option(110, "episodes kept out of training for the generated count, obj_move and "
                                "obj_move_path files (one question each, when the story offers one)", minimum=0,
                                group=SIZES)
    eval_programs: int = option(60, "programs of activities that stay in training kept out of it for the generated "
                                "plan_gen, plan_gen_confusing and act_recog files", minimum=0, group=SIZES)
    holdout_activities: int = option(3, "activities held out of training (the generated unseen files)",
                                     minimum=0, group=SIZES)
    fisher_n: int = option(32, "texts sampled from the model for the Fisher", minimum=1, group=SIZES)
    fisher_len: int = option(128, "tokens per Fisher text at most", minimum=2, group=SIZES)
    train_steps: int = option(30, "optimiser steps of EWC-LoRA", minimum=1, group=SIZES)
    batch_size: int = option(2, "examples per training step", minimum=1, group=SIZES)
    max_len: int = option(256, "tokens per training example", minimum=2, group=SIZES)
    limit: int = option(30, "evaluation items per task", minimum=1, group=SIZES)
    max_new_tokens: int | None = option(None, "tokens generated at most per evaluation answer (default: 64 on the "
                                        "generated benchmark, whose references have at most 45; else 128, which nine "
                                        "in ten of the released plans fit)", minimum=1, group=SIZES)
    workers: int = option(default_factory=default_workers, help="collection processes (default: the cores this "
                          "process may use)", minimum=1, group=SIZES, result=False)

    def __post_init__(self) -> None:
        config.check(self)


@dataclass
class Job:
    """One recipe call of a stage: the command that does the same, its config and the recipe."""

    command: str
    config: object
    recipe: Callable

    def argv(self) -> list[str]:
        return [*self.command.split(), *config.to_argv(self.config)]

    def run(self) -> None:
        self.recipe(self.config)

    def inputs(self, own_folder: Path) -> dict[str, str | None]:
        """Digests of the existing files and folders the config names outside the stage's own folder, and of
        the base model it loads (the embedded one and Hub ids too: provenance.model_fingerprint)."""
        values = [v for value in asdict(self.config).values()
                  for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
        found = {}
        model = getattr(self.config, "model", None)
        if model is not None and not Path(model).exists():
            found[f"model {model}"] = model_fingerprint(model)
        for value in values:
            path = Path(value)
            if path.exists() and own_folder.resolve() not in (path.resolve(), *path.resolve().parents):
                found[value] = path_digest(path)
        return found


@dataclass
class Stage:
    """One stage: a folder under OUT and the jobs that fill it."""

    name: str
    what: str
    jobs: list[Job]


def spread(ids: list[str], n: int) -> list[str]:
    """n ids taken evenly across the list (programs of one activity sit together, so this mixes activities)."""
    if n >= len(ids):
        return ids
    return [ids[i * len(ids) // n] for i in range(n)]


def eval_source(settings: DemoConfig, build_dir: Path) -> tuple[list[str], str]:
    """The --data values the demo evaluates and what they are (for the report's title): --eval-data, else the
    released benchmark in the cache (all of it checked against its checksums), else the dev slice beside the
    checkout, else the build stage's evaluation files.

    Raises:
        InputError: --eval-data that `e2wm eval` would refuse (checked before any stage runs)."""
    if settings.eval_data is not None:
        load_eval_files([settings.eval_data])  # a wrong path or an undownloaded name stops now, not after training
        return [settings.eval_data], f"`{settings.eval_data}`"
    try:
        benchmark_data.eval_files(benchmark_data.NAME)
    except InputError as missing:
        # after a download (some of it cached) the user expects the released benchmark: say why it is not used
        cache_used = benchmark_data.default_dir().is_dir()
        logger.log(logging.WARNING if cache_used else logging.DEBUG, "the released benchmark is not used: %s", missing)
    else:
        return [benchmark_data.NAME], f"the released E2WM benchmark ({benchmark_data.SOURCE}, cached)"
    if DEV_SLICE.is_dir():
        return [str(DEV_SLICE)], f"the released E2WM benchmark's dev slice ({DEV_SLICE})"
    return [str(build_dir / HELDOUT_DIR)], ("an E2WM benchmark generated by the build stage (records kept out of "
                                            "training; docs/benchmark.md)")


def plan(settings: DemoConfig) -> list[Stage]:
    """The stages and their jobs."""
    from e2wm.world.programs import program_ids

    out, s = Path(settings.out), settings
    collect, built, fisher, train, evaluated, reported = (
        str(out / name) for name in ("collect", "build", "fisher", "train", "eval", "report"))
    data, source = eval_source(s, Path(built))
    generated = data == [str(Path(built) / HELDOUT_DIR)]
    new_tokens = s.max_new_tokens or (GENERATED_NEW_TOKENS if generated else RELEASED_NEW_TOKENS)
    scoring = dict(model=s.model, data=data, limit=s.limit, max_new_tokens=new_tokens, batch_size=8,
                   ppl_data=str(general_text_file(out)))
    runs = {"base": None, "finetuned": f"{train}/adapter"}
    if s.model == EMBEDDED_NAME:
        runs["shipped"] = SHIPPED
    every = program_ids(None)
    programs = ["all"] if s.num_programs is None or s.num_programs >= len(every) else spread(every, s.num_programs)
    count = len(every) if programs == ["all"] else len(programs)
    return [
        Stage("collect", f"MCTS plans for {count} RobotHow programs and {s.episodes} exploration episodes", [
            Job("collect plans", CollectPlansConfig(
                out=f"{collect}/plans.jsonl", programs=programs, simulations=s.simulations, workers=s.workers),
                collect_plans),
            Job("collect explore", CollectExploreConfig(out=f"{collect}/explore.jsonl", episodes=s.episodes,
                                                        workers=s.workers), collect_explore),
        ]),
        Stage("build", f"the four training tasks, and evaluation files of {s.eval_episodes} episodes, "
                       f"{s.eval_programs} programs and {s.holdout_activities} activities kept out of training", [
            Job("build", BuildConfig(plans=f"{collect}/plans.jsonl", explore=f"{collect}/explore.jsonl", out=built,
                                     story_steps=s.story_steps, eval_episodes=s.eval_episodes,
                                     eval_programs=s.eval_programs, holdout_activities=s.holdout_activities), build),
        ]),
        Stage("fisher", f"diagonal Fisher on {s.fisher_n} texts sampled from the base model", [
            Job("fisher", FisherConfig(model=s.model, n=s.fisher_n, max_len=s.fisher_len, batch_size=8,
                                       write_samples=f"{fisher}/samples.jsonl", out=f"{fisher}/fisher.safetensors"),
                compute_fisher),
        ]),
        Stage("train", f"EWC-LoRA for {s.train_steps} steps of {s.batch_size} examples", [
            Job("train", TrainConfig(model=s.model, train=PAPER_MIXTURE, data_dir=built,
                                     fisher=f"{fisher}/fisher.safetensors", max_steps=s.train_steps, epochs=100,
                                     batch_size=s.batch_size, max_len=s.max_len, save_every=10, out=train), finetune),
        ]),
        Stage("eval", f"{', '.join(runs)} on {source} ({s.limit} items per task) and general-text perplexity", [
            Job("eval", EvalConfig(**scoring, adapter=adapter, out=f"{evaluated}/{name}"), evaluate)
            for name, adapter in runs.items()
        ]),
        Stage("report", "the comparison with paired intervals, what they support per task, and charts", [
            Job("report", ReportConfig(runs=[f"{evaluated}/{name}" for name in runs], train_log=[train],
                                       out=f"{reported}/report.md", title=title(s.model, list(runs), source)),
                report),
        ]),
    ]


def title(model: str, runs: list[str], source: str) -> str:
    """The report's heading: the model (its Runs header describes it), what is compared, and the data."""
    compared = "base vs EWC-LoRA (this demo)" + (f" vs {SHIPPED} (shipped with e2wm)" if "shipped" in runs else "")
    return f"e2wm demo: {model}, {compared}, on {source}"


def general_text_file(out: Path) -> Path:
    """Held-out general text for perplexity (no stage trains on it), a copy of GENERAL_TEXT."""
    return out / "data" / "general.jsonl"


def prepare(stage: Stage, folder: Path, resume: bool) -> list[Job]:
    """The jobs of a stage that is not done: resuming what an interrupted run left, or from a clean folder."""
    if resume and stage.name == "train" and (folder / "checkpoint" / "state.json").is_file():
        return [replace(job, config=replace(job.config, resume=True)) for job in stage.jobs]
    if not resume or stage.name == "train":
        shutil.rmtree(folder, ignore_errors=True)
    return stage.jobs


def run_stages(settings: DemoConfig) -> dict[str, float]:
    """Run (or skip) every stage in order; returns each stage's seconds (0 where skipped)."""
    stages = plan(settings)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(general_text_file(out), GENERAL_TEXT.read_text(encoding="utf-8"))
    upstream_ran, seconds, cpu, start = False, {}, {}, time.time()
    for number, stage in enumerate(stages, start=1):
        folder = out / stage.name
        marker = folder / "stage.json"
        recorded = json.loads(marker.read_text()) if marker.is_file() else {}
        commands = [job.argv() for job in stage.jobs]
        results = json.loads(json.dumps([[job.command, result_settings(job.config)] for job in stage.jobs]))
        inputs = {k: v for job in stage.jobs for k, v in job.inputs(folder).items()}
        same = recorded.get("settings") == results and recorded.get("inputs") == inputs
        header = f"[{number}/{len(stages)}] {stage.name}: {stage.what}"
        fresh = settings.force or upstream_ran or not same  # else the stage's earlier output is still valid
        if not fresh and recorded.get("done"):
            logger.info(f"{header}\n    done before in {recorded['seconds']:.0f} s; skipped (--force redoes it)")
            seconds[stage.name] = 0.0
            continue
        upstream_ran = True  # every later stage depends on this one's output
        jobs = prepare(stage, folder, resume=not fresh and stage.name in RESUMABLE)
        write_json(marker, {"commands": commands, "settings": results, "inputs": inputs, "done": False})
        logger.info(f"{header}  (demo time so far {time.time() - start:.0f} s)")
        set_threads(settings.threads)  # per stage: the load of other work may have changed since the last one
        began, began_cpu = time.time(), cpu_seconds()
        for job in jobs:
            logger.info("    $ e2wm " + " ".join(quote(a) for a in job.argv()))
            job.run()
        seconds[stage.name], cpu[stage.name] = time.time() - began, cpu_seconds() - began_cpu
        logger.info(f"    {stage.name} done in {seconds[stage.name]:.0f} s ({cpu[stage.name]:.0f} s of CPU time)")
        write_json(marker, {"commands": commands, "settings": results, "inputs": inputs, "done": True,
                            "seconds": seconds[stage.name], "cpu_seconds": cpu[stage.name]})
    write_json(out / "timings.json", {"wall_seconds": seconds, "cpu_seconds": cpu,
                                      "total_wall_seconds": time.time() - start})
    return seconds


def run_demo(settings: DemoConfig) -> Path:
    """Run every stage (skipping those done before), each with the torch threads `set_threads` chooses then;
    returns the report's path."""
    with output_lock(settings.out):  # one demo per folder; its stages lock their own folders too
        run_stages(settings)
    return Path(settings.out) / "report" / "report.md"


def set_threads(threads: int | None) -> None:
    """Use the given thread count; by default one per core that other work leaves free (`busy_elsewhere`), at
    least 1. Called before each stage, so a demo that started on an idle machine gives cores back when other
    jobs arrive (more threads than free cores contend for them and run many times slower), and takes them again
    when they leave. The threads wait passively (OMP_WAIT_POLICY=PASSIVE, set by the `e2wm` command)."""
    import torch

    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        busy = busy_elsewhere()
        threads = max(1, min(cores, round(cores - busy)))
        if threads != torch.get_num_threads():
            logger.info("    %d torch thread%s (%.1f of %d cores busy with other work; --threads overrides)",
                        threads, "" if threads == 1 else "s", busy, cores)
    torch.set_num_threads(threads)


def busy_elsewhere(readings: int = 10, interval: float = 0.05) -> float:
    """How many threads of other work are running now: the mean of /proc/loadavg's count of runnable threads
    over readings * interval seconds, less this process's reading thread (its torch threads sleep between
    stages). Where /proc is missing, the 1-minute load average (which also counts this process's recent work)."""
    path = Path("/proc/loadavg")
    if not path.is_file():
        return os.getloadavg()[0]
    counts = []
    for _ in range(readings):
        counts.append(int(path.read_text().split()[3].split("/")[0]) - 1)
        time.sleep(interval)
    return max(0.0, sum(counts) / len(counts))


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (the collect workers)."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def quote(arg: str) -> str:
    return f"'{arg}'" if not arg or any(c in arg for c in " \"'$") else arg
