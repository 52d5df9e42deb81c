"""A rerunnable training study: named runs (LoRA, EWC-LoRA at several Fisher scales and lambdas, ...), each
trained and evaluated with the `e2wm` commands, the base model evaluated once, then one `e2wm report` over all.

    python benchmarks/study.py configs/study/cpu.yaml [--only NAME ...] [--parallel 2] [--publish DIR]

The study file (YAML) holds `out` (the study folder), `train` and `eval` (options shared by every run's
`e2wm train` / `e2wm eval`) and `runs` (name -> the train options that differ; a run `{from: RUN, adapter_scale:
S}` trains nothing and evaluates RUN's adapter at `e2wm eval --adapter-scale S`: WiSE-FT's interpolation, in its
place when RUN is trained, else after the training runs), and
optionally `fisher` and `heldout`
(options of `e2wm fisher`: the Fisher that EWC runs need, and held-out general text drawn with --samples-only
for perplexity), `prepare` ({run: a shell command, creates: a path}: made once, e.g. derived training files)
and `curve` ({data: evaluation files, runs: names (default: every run)}: every checkpoint-N of those runs before
the last step is evaluated on them, a learning curve from the base model (step 0) to the run's own evaluation),
and `report` (options of the final `e2wm report`, e.g. drift_on).
Each job gets its own YAML config in OUT/<name>/ (rerun one by hand with `e2wm train --config
OUT/<name>/train.yaml`) and runs in its own process with one torch thread; `--parallel` jobs run at once (a
run's evals wait for its training).

Every run is checked before anything runs (a refusal names the file and the run). A `from` run names a training
run of the study and reads only adapter_scale. Finished work is skipped: a training run whose adapter exists, an
eval run whose metrics.json exists, each only when its recorded options equal the study's (else it stops and says
which run changed: delete its folder or rename the run); the Fisher, the held-out text and `prepare`'s output only
when their recorded job equals the study's. Options are compared, not the contents of the files they name: after
changing an evaluation or training file, delete the runs made from it. A job file OUT/<name>/<command>.yaml is
written only when its job runs, so it always tells how its output was made. Ctrl-C (or `kill`) stops the study:
each running job is interrupted once and no other starts; rerun the same command to go on (a training run
resumes from its checkpoint, an evaluation from its last finished task). The reports: report.md over every run,
and, where the runs differ in budget or seed, same-budget.md over the runs of the first LoRA run's (the methods
head to head). `--publish DIR` copies the study file and what the repository keeps of each finished run
(metrics, training log and config, per-item scores without the benchmark's texts) and the reports into DIR.
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import yaml

from e2wm.cli import parse
from e2wm.config import with_defaults
from e2wm.errors import InputError
from e2wm.eval.config import RESAMPLES, SEED
from e2wm.eval.report import format_change, load_train_log, pyplot, save_figure
from e2wm.files import read_jsonl, write_atomic, write_json

# a run's LoRA run has its data, budget (steps, epochs, examples and tokens per step) and seed
PAIRED_ON = ("train", "data_dir", "max_steps", "epochs", "batch_size", "grad_accum", "max_len", "seed")

UNREAD_WITHOUT_EWC = {"lam", "fisher_scale"}  # train options a run without EWC does not read (their defaults may move)
METHOD_FIELDS = {"method", "adapter_kind", "regularisers"}  # compared once resolved (e2wm.methods.resolve_method)


def load_study(path: Path) -> dict:
    """The study file as a mapping; SystemExit naming the file and what is wrong: not YAML (with its line), a
    missing section, no runs."""
    try:
        study = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where, problem = f" line {mark.line + 1}" if mark else "", getattr(error, "problem", None) or error
        raise SystemExit(f"{path}:{where}: not a YAML study file ({problem})") from None
    if not isinstance(study, dict):
        raise SystemExit(f"{path}: expected a mapping of sections (out, train, eval, runs, ...)")
    for key in ("out", "train", "eval", "runs"):
        if key not in study:
            raise SystemExit(f"{path}: the study needs a '{key}' section")
    if not isinstance(study["runs"], dict) or not study["runs"]:
        raise SystemExit(f"{path}: 'runs' names no run (name: {{train options}})")
    return study


def job_config(command: str, options: dict):
    """options checked as `e2wm <command> --config FILE` would, without writing anything under the study folder:
    the command's config; SystemExit with the command's own one-line refusal."""
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "job.yaml"
        file.write_text(yaml.safe_dump(options, sort_keys=False), encoding="utf-8")
        refusal = io.StringIO()
        try:
            with contextlib.redirect_stderr(refusal):
                config, _ = parse(command, ["--config", str(file)])
        except InputError as error:
            raise SystemExit(str(error).replace(str(file), "the study file")) from None
        except SystemExit as error:  # argparse: the refusal on stderr, the exit code 2
            lines = [line for line in refusal.getvalue().splitlines() if line.strip()]
            raise SystemExit(lines[-1] if lines else str(error.code)) from None
    return config


def write_job(folder: Path, command: str, options: dict, name: str | None = None) -> tuple[Path, object]:
    """Check options (`job_config`), then write them as OUT/.../<name or command>.yaml: the job file that
    `e2wm <command> --config` runs. Write only what is about to run, so that a job file always tells how its
    output was made."""
    config = job_config(command, options)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name or command.split()[0]}.yaml"
    write_atomic(file, yaml.safe_dump(options, sort_keys=False))
    return file, config


def unchanged(recorded: Path, key: str, config) -> bool:
    """True when recorded (a config.json of `e2wm train` or `e2wm eval`) holds the same options as config;
    SystemExit when it holds others (the study file changed under a finished run)."""
    before = with_defaults(json.loads(recorded.read_text())[key], config)  # options added since: defaults
    if isinstance(before.get("ppl_data"), str):  # recorded before --ppl-data took several files
        before["ppl_data"] = [before["ppl_data"]]
    now = json.loads(json.dumps(asdict(config)))
    unread = {"resume"}
    if "regularisers" in now:  # a training run: its method resolved, as `e2wm train --resume` compares it
        before, now = resolved(before), resolved(now)
        unread |= UNREAD_WITHOUT_EWC if "ewc" not in now["regularisers"].split(",") else set()
    changed = sorted(k for k in before if before[k] != now.get(k) and k not in unread)
    if changed:
        raise SystemExit(f"{recorded.parent}: finished with other {', '.join(changed)}; delete the folder or rename "
                         f"the run in the study file")
    return True


def resolved(options: dict) -> dict:
    """Train options with --method resolved into adapter_kind and regularisers (runs recorded before those two
    existed have method alone)."""
    from e2wm.methods import resolve_method

    kind, regularisers = resolve_method(options.get("method"), options.get("adapter_kind"),
                                        options.get("regularisers"), options.get("fisher"))
    kept = {key: value for key, value in options.items() if key not in METHOD_FIELDS}
    return {**kept, "adapter_kind": kind, "regularisers": regularisers}


STOP = threading.Event()  # set on Ctrl-C: no job starts after it
INTERRUPTED = ("[study] interrupted: the running jobs were stopped (a training run resumes from its last checkpoint, "
               "an evaluation from its last finished task); rerun the same command to go on")
CHILDREN: set[subprocess.Popen] = set()  # the jobs running now
CHILDREN_LOCK = threading.Lock()


def run(command: str, file: Path, log: Path, extra: list[str] = ()) -> float:
    """`python -m e2wm <command> --config FILE` with one torch thread; output to log; seconds taken. SystemExit
    when it fails, and without starting it once the study is being stopped (`STOP`)."""
    argv = [sys.executable, "-m", "e2wm", *command.split(), "--config", str(file), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if STOP.is_set():
        raise SystemExit(f"[study] not started (interrupted): {' '.join(argv[3:])}")
    began = time.time()
    print(f"[study] start {' '.join(argv[1:])}", flush=True)
    with log.open("a") as handle:
        # a session of its own: a Ctrl-C reaches the study alone, which interrupts each job once (`stop_jobs`)
        child = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        with CHILDREN_LOCK:
            CHILDREN.add(child)
        try:
            code = child.wait()
        except KeyboardInterrupt:  # a job of the main thread (the Fisher, a report)
            child.send_signal(signal.SIGINT)
            child.wait()
            raise
        finally:
            with CHILDREN_LOCK:
                CHILDREN.discard(child)
    seconds = time.time() - began
    if STOP.is_set():
        raise SystemExit(f"[study] interrupted after {seconds:.0f} s: {' '.join(argv[3:])}")
    if code:
        raise SystemExit(f"[study] failed ({code}) after {seconds:.0f} s: {' '.join(argv[1:])}; see {log}")
    print(f"[study] done in {seconds:.0f} s: {' '.join(argv[3:])}", flush=True)
    return seconds


def stop_jobs() -> None:
    """Start no further job and interrupt the running ones (SIGINT: `e2wm train` saves a checkpoint to resume
    from, `e2wm eval` keeps each finished task)."""
    STOP.set()
    with CHILDREN_LOCK:
        for child in CHILDREN:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)


def prepare_data(study: dict, out: Path) -> tuple[Path | None, Path | None]:
    """The `prepare` command's output, the Fisher and the held-out general text (each made once, each only when
    the study has its section): the paths of the last two (None without the section)."""
    if "prepare" in study:
        created, record = Path(study["prepare"]["creates"]), out / "prepare.yaml"
        if created.exists():
            made_by(record, created, study["prepare"])
        else:
            print(f"[study] prepare: {study['prepare']['run']}", flush=True)
            # `python` in the command is this interpreter (its environment has e2wm) even when it is not on PATH
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
            subprocess.run(study["prepare"]["run"], shell=True, check=True, env={**os.environ, "PATH": path})
            out.mkdir(parents=True, exist_ok=True)
            write_atomic(record, yaml.safe_dump(study["prepare"], sort_keys=False))
    fisher = heldout = None
    jobs = []
    if "fisher" in study:
        fisher = out / "fisher.safetensors"
        jobs.append((fisher, out / "fisher", {**study["fisher"], "out": str(fisher)}))
    if "heldout" in study:
        heldout = out / "heldout.jsonl"
        jobs.append((heldout, out / "heldout", {**study["heldout"], "samples_only": True,
                                                "write_samples": str(heldout),
                                                "out": str(out / "heldout" / "unused.safetensors")}))
    for made, folder, options in jobs:
        if made.is_file():
            job_config("fisher", options)  # the study's options are still checked
            made_by(folder / "fisher.yaml", made, options)
        else:
            file, _ = write_job(folder, "fisher", options)
            run("fisher", file, folder / "log.txt")
    return fisher, heldout


def made_by(record: Path, made: Path, options: dict) -> None:
    """SystemExit when made (a file the study made once) was made with other options than the study's now, as
    record (the YAML of its job) holds them; a study folder from before records were kept passes."""
    if not record.is_file():
        return
    before = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
    changed = sorted(key for key in {*before, *options} if before.get(key) != options.get(key))
    if changed:
        raise SystemExit(f"{made}: made with other {', '.join(changed)} than the study's ({record}); delete both "
                         "to make it again, or set the study back")


def train_options(study: dict, out: Path, name: str, options: dict) -> dict:
    """The `e2wm train` options of training run name: the study's, the run's own over them, its folder, and for
    an EWC run the study's Fisher (OUT/fisher.safetensors) unless it names one; SystemExit when an EWC run has
    neither."""
    merged = {**study["train"], **options, "out": str(out / name / "train")}
    if "ewc" in resolved({**merged, "fisher": "study"})["regularisers"].split(",") and "fisher" not in merged:
        if "fisher" not in study:
            raise SystemExit("an EWC run needs the study's 'fisher' section")
        merged["fisher"] = str(out / "fisher.safetensors")
    return merged


def check_runs(study: dict, path: Path) -> None:
    """Every run of the study checked before anything runs, as its jobs will be: SystemExit naming the study
    file, the run and what is wrong (a `from` run: its source must be a training run of the study, it needs
    adapter_scale and reads nothing else; a training run: its `e2wm train` options, and the Fisher an EWC run
    needs)."""
    out, runs = Path(study["out"]), study["runs"]
    job_config("eval", {**study["eval"], "out": str(out / "base" / "eval")})
    for name, options in runs.items():
        options = options or {}
        try:
            if not isinstance(options, dict):
                raise SystemExit("expected a mapping of train options (or {from: RUN, adapter_scale: S})")
            if "from" in options:
                source, extra = options["from"], sorted(set(options) - {"from", "adapter_scale"})
                if source not in runs:
                    raise SystemExit(f"from: {source} names no run of the study")
                if "from" in (runs[source] or {}):
                    raise SystemExit(f"from: {source} is itself a `from` run; name the training run it scales")
                if "adapter_scale" not in options:
                    raise SystemExit("a `from` run needs adapter_scale (the scale S of W + S x delta, 0 to 1)")
                if extra:
                    raise SystemExit(f"a `from` run trains nothing and reads only adapter_scale, not "
                                     f"{', '.join(extra)}")
                job_config("eval", {**study["eval"], "adapter": str(out / source / "train" / "adapter"),
                                    "adapter_scale": options["adapter_scale"], "out": str(out / name / "eval")})
                continue
            job_config("train", train_options(study, out, name, options))
        except (SystemExit, InputError) as error:
            message = error.code if isinstance(error, SystemExit) else str(error)
            raise SystemExit(f"{path}: run {name}: {message}") from None


def evaluate(folder: Path, options: dict, log: Path) -> None:
    """`e2wm eval` into folder unless it finished there with the same options."""
    config = job_config("eval", options)
    if not ((folder / "metrics.json").is_file() and unchanged(folder / "config.json", "config", config)):
        file, _ = write_job(folder.parent, "eval", options, folder.name)
        run("eval", file, log)


def train_and_eval(name: str, options: dict | None, study: dict, out: Path, heldout: Path | None) -> None:
    """One run: train (unless it is the base model) and evaluate, its checkpoints too when the study has a
    `curve`; each step skipped when done with the same options."""
    folder = out / name
    adapter, scale = None, None
    if options is not None and "from" in options:  # WiSE-FT: another run's adapter, scaled
        adapter, scale = out / options["from"] / "train" / "adapter", options["adapter_scale"]
        if not (adapter / "adapter_config.json").is_file():
            raise SystemExit(f"run {name}: run {options['from']} has no adapter yet (list it before {name})")
    elif options is not None:
        train_dir = folder / "train"
        merged = train_options(study, out, name, options)
        config = job_config("train", merged)
        adapter = train_dir / "adapter"
        if not ((adapter / "adapter_config.json").is_file() and unchanged(train_dir / "config.json", "options",
                                                                          config)):
            resume = (train_dir / "checkpoint" / "state.json").is_file()
            if not resume:  # nothing to resume: a run cut before its first checkpoint starts over
                shutil.rmtree(train_dir, ignore_errors=True)
            file, _ = write_job(folder, "train", merged)
            run("train", file, folder / "log.txt", ["--resume"] if resume else [])
    merged = {**study["eval"], "out": str(folder / "eval")}
    if heldout is not None:  # the held-out model samples first (the perplexity `ppl`), then the study's own texts
        merged["ppl_data"] = [str(heldout), *study["eval"].get("ppl_data", [])]
    if adapter is not None:
        merged["adapter"] = str(adapter)
    if scale is not None:
        merged["adapter_scale"] = scale
    evaluate(folder / "eval", merged, folder / "log.txt")
    curve = study.get("curve")
    if curve and adapter is not None and name in curve.get("runs", [name]):
        final = json.loads((adapter.parent / "config.json").read_text())["options"].get("max_steps")
        for step in [s for s in checkpoint_steps(adapter.parent) if final is None or s < final]:  # final = eval
            evaluate(folder / f"curve-{step}", {**study["eval"], "data": curve["data"],
                                                "adapter": str(adapter.parent / f"checkpoint-{step}" / "adapter"),
                                                "out": str(folder / f"curve-{step}")}, folder / "log.txt")


def checkpoint_steps(train_dir: Path) -> list[int]:
    """The steps of a training run's checkpoint-N folders, in order."""
    return sorted(int(p.name.split("-")[1]) for p in train_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit())


def summarise(study: dict, out: Path, names: list[str]) -> Path:
    """`e2wm report` over the base model and every finished run (the base first): OUT/report/report.md; and,
    where the runs differ in budget or seed and some compare a method with LoRA, over those of the first LoRA
    run's (`same_budget`): OUT/report/same-budget.md, whose frontier sets the methods against each other on one
    budget and seed."""
    done = [name for name in names if (out / name / "eval" / "metrics.json").is_file()]
    title = study.get("title", "e2wm study")
    head_to_head = same_budget(study, done)
    reports = [("report", done, title)]
    if head_to_head != done and any(lora_reference(study, name) for name in head_to_head):
        reports.append(("same-budget", head_to_head, f"{title}: the methods on one data, budget and seed"))
    for name, chosen, heading in reports:
        runs = [str(out / "base" / "eval")] + [str(out / run_name / "eval") for run_name in chosen]
        logs = [str(out / run_name / "train") for run_name in chosen
                if (out / run_name / "train" / "log.jsonl").is_file()]
        file, _ = write_job(out / "report", "report", {**study.get("report", {}), "runs": runs, "train_log": logs,
                                                       "out": str(out / "report" / f"{name}.md"),
                                                       "title": heading}, name)
        run("report", file, out / "report" / f"log-{name}.txt")
    return out / "report" / "report.md"


def interval_of(value) -> dict | None:
    """An e2wm.eval.statistics.Interval as JSON."""
    return None if value is None else {"estimate": value.estimate, "low": value.low, "high": value.high, "p": value.p}


def summary_rows(study: dict, out: Path, names: list[str]) -> list[dict]:
    """Per finished run, against the base model over the same items (e2wm.eval.compare: paired bootstrap
    intervals, permutation p): the mean change of each metric family (accuracy over the QA tasks, ROUGE-L / LCS
    over the generation tasks: never averaged together), the paper's headline (the mean of relative changes), the
    perplexity change, the world-tracking tasks, and the run's training settings and last losses."""
    from e2wm.eval.compare import compare, is_ppl
    from e2wm.eval.report import load_run

    base_run = load_run(out / "base" / "eval", "base")
    tasks = [task for task in base_run.metrics if not is_ppl(task)]
    rows = []
    for name in names:
        evaluated = out / name / "eval"
        if not (evaluated / "metrics.json").is_file():
            continue
        run = load_run(evaluated, name)
        scored = run.metrics
        sets = [t for t in scored if is_ppl(t) and t in base_run.metrics]
        shared = [task for task in tasks if task in scored]  # as `e2wm report`: the tasks both scored
        found = compare(base_run.path, evaluated, shared, shared == tasks, sets, RESAMPLES, SEED)
        options = {**study["train"], **(study["runs"][name] or {})}
        trained = out / options.get("from", name) / "train"  # WiSE-FT: its source's
        log = load_train_log(trained, name).rows  # no ewc without a Fisher
        tail = log[-10:]
        rows.append({
            "name": name, "method": run_method(study, name), **ewc_settings(trained), "steps": log[-1]["step"],
            "train_ce_last10": sum(r["ce"] for r in tail) / len(tail),
            "ewc_last": log[-1].get("ewc"),
            "means": family_means([base_run, run], found), "headline": interval_of(found.headline),
            "perplexity": {"base": found.ppl.base_mean, "run": found.ppl.other_mean,
                           "relative": interval_of(found.ppl.relative)} if found.ppl else None,
            "perplexities": {name: {"base": pair.base_mean, "run": pair.other_mean,
                                    "relative": interval_of(pair.relative)}
                             for name, pair in found.perplexities.items()},
            "tasks": {task: interval_of(pair.difference) | {"base": pair.base_mean, "run": pair.other_mean}
                      for task, pair in found.tasks.items()},
        })
        rows[-1]["curve"] = learning_curve(out, name, options.get("max_steps"))
        rows[-1]["answers"] = {task: values["answers"] for task, values in scored.items() if "answers" in values}
        lora = lora_reference(study, name)
        if lora is not None and (out / lora / "eval" / "metrics.json").is_file():  # the method's effect
            reference = load_run(out / lora / "eval", lora)
            both = [task for task in shared if task in reference.metrics]
            against = compare(reference.path, evaluated, both, both == tasks,
                              [t for t in sets if t in reference.metrics], RESAMPLES, SEED)
            rows[-1]["vs_lora"] = {"run": lora, "means": family_means([reference, run], against),
                                   "headline": interval_of(against.headline),
                                   "perplexity": interval_of(against.ppl.relative) if against.ppl else None,
                                   "perplexities": {name: interval_of(pair.relative)
                                                    for name, pair in against.perplexities.items()}}
    return rows


def ewc_settings(trained: Path) -> dict:
    """The Fisher scale and lambda that the `e2wm train` run in trained recorded (its config.json: defaults resolved),
    None for a run without a Fisher (it read neither)."""
    from e2wm.eval.header import entry, json_object

    options = entry(json_object(trained / "config.json"), "options", dict, {})
    ewc = bool(options.get("fisher"))
    return {"fisher_scale": options.get("fisher_scale") if ewc else None, "lambda": options.get("lam") if ewc else None}


def paired_on(study: dict, run: str) -> tuple:
    """run's PAIRED_ON options (training data, budget, seed), a WiSE-FT run's its source's."""
    options = study["runs"][run] or {}
    settings = {**study["train"], **(study["runs"][options["from"]] or {} if "from" in options else options)}
    return tuple(settings.get(key) for key in PAIRED_ON)


def lora_reference(study: dict, name: str) -> str | None:
    """The plain LoRA run that name's method is measured against: the first run of method LoRA with the same
    PAIRED_ON options; None for a plain LoRA run itself (runs that differ only in their data have no method to
    measure) or when the study has no such run."""
    if run_method(study, name) == "LoRA":
        return None
    same = [run for run in study["runs"] if run_method(study, run) == "LoRA"
            and paired_on(study, run) == paired_on(study, name)]
    return same[0] if same else None


def same_budget(study: dict, names: list[str]) -> list[str]:
    """The names that share the study's first plain LoRA run's PAIRED_ON options (that run included): the
    methods head to head on one budget and seed; [] when the study has no plain LoRA run."""
    first = next((run for run in study["runs"] if run_method(study, run) == "LoRA"), None)
    return [] if first is None else [name for name in names if paired_on(study, name) == paired_on(study, first)]


def run_method(study: dict, name: str) -> str:
    """The run's method as e2wm names it (e2wm.methods.method_label): "EWC-LoRA", "LoRA + KL anchor", ...;
    a WiSE-FT run is its source's method "at scale S"."""
    from e2wm.methods import method_label, recorded_method

    options = study["runs"][name] or {}
    source = study["runs"].get(options["from"]) or {} if "from" in options else options
    settings = {**study["train"], **source, "fisher": "study"}
    label = method_label(*recorded_method(settings))
    if settings.get("optimizer", "adamw") != "adamw":  # MoFO: an optimiser, not an adapter kind or a regulariser
        label += " with " + {"mofo": "MoFO"}.get(settings["optimizer"], settings["optimizer"])
    return f"{label} at scale {options['adapter_scale']}" if "from" in options else label


def family_means(runs: list, found) -> dict[str, dict | None]:
    """Per metric family of e2wm.eval.metrics.families, `e2wm report`'s family mean (`report.family_means`: the
    unweighted mean of the tasks' paired differences, stratified bootstrap interval, permutation p) of runs[1]
    against runs[0] (report.Run each; found: their e2wm.eval.compare.Comparison): None for a family of fewer than
    two tasks, or when either run did not score all of them."""
    from e2wm.eval.metrics import families
    from e2wm.eval.report import family_means as report_family_means

    means = dict.fromkeys(families())
    for mean in report_family_means(runs, [found], RESAMPLES, SEED):
        means[mean.name] = interval_of(mean.changes[0])
    return means

def learning_curve(out: Path, name: str, final_step: int | None) -> dict[str, list[dict]]:
    """Per multiple-choice task of the run's curve-N evaluations: its accuracy with the Wilson 95% interval at
    step 0 (the base model), at each checkpoint and at the end; {} for a run without curve evaluations."""
    folders = sorted((int(p.name.split("-")[1]), p) for p in (out / name).glob("curve-*") if p.is_dir())
    if not folders:
        return {}
    points = [(0, out / "base" / "eval"), *folders]
    if final_step is not None and final_step not in dict(folders):
        points.append((final_step, out / name / "eval"))
    curve: dict[str, list[dict]] = {}
    for step, folder in points:
        for task, values in json.loads((folder / "metrics.json").read_text()).items():
            if "accuracy" in values and task in json.loads((folders[0][1] / "metrics.json").read_text()):
                curve.setdefault(task, []).append({"step": step, "accuracy": values["accuracy"],
                                                   "ci95": values["accuracy_ci95"], "chance": values["chance"],
                                                   "majority": values["majority"]})
    return curve


def prior_corrected(run: Path, item_file) -> list[float]:
    """Per item (in the file's order), 1 where it is answered right after removing the model's answer prior, else
    0: each item's option scores minus the mean score of the same option text over the other items (leave-one-out,
    so that an item's own scores do not set its correction). The mean is near chance when the choices carry
    nothing beyond a preferred answer, above it when they follow the item (contextual calibration, Zhao et al.
    2021, with the prior estimated from the benchmark's own items)."""
    import numpy as np

    rows = sorted(read_jsonl(run / "predictions" / f"{item_file.name}.jsonl"), key=lambda row: row["index"])
    names = sorted({option for item in item_file.items for option in item.options})
    scores = np.full((len(rows), len(names)), np.nan)
    gold = np.empty(len(rows), dtype=int)
    for i, row in enumerate(rows):
        item = item_file.items[row["index"]]
        for option, score in zip(item.options, row["scores"]):
            scores[i, names.index(option)] = score
        gold[i] = names.index(item.options[item.answer])
    present = ~np.isnan(scores)
    totals, counts = np.nansum(scores, axis=0), present.sum(axis=0)
    correct = np.zeros(len(rows))
    for i in range(len(rows)):
        bias = (totals - np.nan_to_num(scores[i])) / np.maximum(counts - present[i], 1)
        correct[i] = float(np.nanargmax(scores[i] - bias) == gold[i])
    return correct.tolist()


def prior_corrected_cell(base: list[float], other: list[float], task: str) -> str:
    """'0.400: +0.185 [+0.046, +0.323] p=0.014': the prior-corrected accuracy and its paired difference to the base
    model's (bootstrap interval, exact McNemar p), as the summary's other differences."""
    from e2wm.eval.statistics import paired_bootstrap

    paired = paired_bootstrap(base, other, RESAMPLES, SEED, f"prior/{task}")
    return f"{paired.other_mean:.3f}: {cell(interval_of(paired.difference))}"


WORLD_QA = ("count", "obj_move")  # the world-tracking multiple-choice tasks, whose answer histograms the summary shows


def histogram_cell(answers: dict[str, dict[str, int]]) -> str:
    """'1: 60, 2: 5' (the predicted answers, most frequent first)."""
    return ", ".join(f"{answer}: {n}" for answer, n in sorted(answers["predicted"].items(), key=lambda kv: -kv[1]))


def world_tables(study: dict, rows: list[dict], out: Path) -> list[str]:
    """Markdown: the learning curves (accuracy per checkpoint) and the predicted-answer histograms of the
    world-tracking QA tasks, the gold answers' histogram first (statistics of the labels, no benchmark text)."""
    lines = []
    curved = [row for row in rows if row.get("curve")]
    if curved:
        steps = sorted({point["step"] for row in curved for points in row["curve"].values() for point in points})
        lines += ["", "Learning curves (accuracy on the dev items; step 0 is the base model):", "",
                  "| run | task | " + " | ".join(f"step {s}" for s in steps) + " |",
                  "|---|---|" + "---:|" * len(steps)]
        for row in curved:
            for task, points in row["curve"].items():
                at = {point["step"]: point["accuracy"] for point in points}
                lines.append(f"| {row['name']} | {task} | " + " | ".join(
                    f"{at[s]:.3f}" if s in at else "" for s in steps) + " |")
    base = json.loads((out / "base" / "eval" / "metrics.json").read_text())
    tasks = [task for task in WORLD_QA if task in base]
    if tasks:
        from e2wm.eval.items import load_eval_files

        files = {f.name: f for f in load_eval_files(study["eval"]["data"]) if f.name in tasks}
        runs = [("base", out / "base" / "eval")] + [(row["name"], out / row["name"] / "eval") for row in rows]
        metrics = {name: json.loads((folder / "metrics.json").read_text()) for name, folder in runs}
        lines += ["", "Accuracy without the answer prior (`prior_corrected`: each option's score minus its "
                  "mean over the other items; near chance when the choices carry nothing beyond a preferred "
                  "answer), and its paired difference to the base model's:",
                  "", "| run | " + " | ".join(f"{t} raw | {t} prior-corrected" for t in tasks) + " |",
                  "|---|" + "---:|---:|" * len(tasks)]
        corrected = {name: {t: prior_corrected(folder, files[t]) for t in tasks} for name, folder in runs}
        lines += ["| base | " + " | ".join(f"{metrics['base'][t]['accuracy']:.3f} | "
                                           f"{sum(corrected['base'][t]) / len(corrected['base'][t]):.3f}"
                                           for t in tasks) + " |"]
        lines += [f"| {name} | " + " | ".join(f"{metrics[name][t]['accuracy']:.3f} | "
                                             f"{prior_corrected_cell(corrected['base'][t], corrected[name][t], t)}"
                                             for t in tasks) + " |" for name, _ in runs[1:]]
    if tasks:
        lines += ["", "Answers (multiple choice; counts of each predicted option):", "",
                  "| run | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks),
                  "| gold | " + " | ".join(", ".join(f"{a}: {n}" for a, n in sorted(
                      base[t]["answers"]["gold"].items(), key=lambda kv: -kv[1])) for t in tasks) + " |",
                  "| base | " + " | ".join(histogram_cell(base[t]["answers"]) for t in tasks) + " |"]
        lines += [f"| {row['name']} | " + " | ".join(histogram_cell(row["answers"][t]) if t in row["answers"] else ""
                                                    for t in tasks) + " |" for row in rows]
    return lines


def curves_chart(rows: list[dict], file: Path) -> None:
    """Accuracy against training step, a panel per task and a line per run, with Wilson 95% intervals and the
    chance and majority baselines."""
    plt = pyplot()
    tasks = sorted({task for row in rows for task in row.get("curve", {})})
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for row in rows:
            points = row.get("curve", {}).get(task)
            if not points:
                continue
            x = [p["step"] for p in points]
            y = [p["accuracy"] for p in points]
            err = [[p["accuracy"] - p["ci95"][0] for p in points], [p["ci95"][1] - p["accuracy"] for p in points]]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=row["name"])
        first = next(row["curve"][task][0] for row in rows if row.get("curve", {}).get(task))
        ax.axhline(first["chance"], color="grey", linestyle=":", label="chance")
        ax.axhline(first["majority"], color="grey", linestyle="--", label="majority")
        ax.set_title(task)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("accuracy (95% Wilson interval)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, file)


def cell(value: dict | None, percent: bool = False) -> str:
    """An interval (`interval_of`) as '+0.108 [-0.015, +0.231] p=0.14' (percent: '+12.7% [...]', below 1% to
    0.01%: `report.format_change`); '—' for None."""
    if value is None:
        return "—"
    form = format_change if percent else "{:+.3f}".format
    low, estimate, high = (form(value[k]) for k in ("low", "estimate", "high"))
    return f"{estimate} [{low}, {high}] p={value['p']:.2g}"


def summary_table(rows: list[dict]) -> str:
    """The summary as markdown: a row per run, with a column per further perplexity set (`ppl:<label>`, e.g. the
    human-written prose) beside the model samples' perplexity; then each run against LoRA."""
    further = sorted({name for row in rows for name in row["perplexities"] if name != "ppl"})
    lines = ["| run | method | train CE (last 10) | EWC term | mean accuracy Δ (QA) [95% CI] | mean ROUGE-L/LCS Δ "
             "(generation) | mean of relative changes | perplexity change | "
             + "".join(f"{name} change | " for name in further) + "count Δ | obj_move Δ | obj_move_path Δ |",
             "|---|---|---:|---:|---|---|---|---|" + "---|" * len(further) + "---|---|---|"]
    for row in rows:
        ppl = row["perplexity"]["relative"] if row["perplexity"] else None
        tasks, means = row["tasks"], row["means"]
        ewc = "—" if row["ewc_last"] is None else format(row["ewc_last"], ".3g")
        sets = "".join(f"{cell((row['perplexities'].get(name) or {}).get('relative'), True)} | " for name in further)
        lines.append(f"| {row['name']} | {row['method']} | {row['train_ce_last10']:.3f} | {ewc} | "
                     f"{cell(means['accuracy'])} | {cell(means['ROUGE-L / LCS'])} | {cell(row['headline'], True)} | "
                     f"{cell(ppl, True)} | {sets}"
                     + " | ".join(cell(tasks.get(t)) for t in ("count", "obj_move", "obj_move_path")) + " |")
    against = [row for row in rows if "vs_lora" in row]
    if against:
        lines += ["", "Against plain LoRA of the same data, budget (steps, epochs) and seed, over the same items "
                  "(the method's effect):", "",
                  "| run | LoRA run | mean accuracy Δ vs LoRA [95% CI] | mean ROUGE-L/LCS Δ vs LoRA | mean of relative "
                  "changes vs LoRA | perplexity change vs LoRA |"
                  + "".join(f" {name} change vs LoRA |" for name in further),
                  "|---|---|---|---|---|---|" + "---|" * len(further)]
        lines += [f"| {row['name']} | {row['vs_lora']['run']} | {cell(row['vs_lora']['means']['accuracy'])} | "
                  f"{cell(row['vs_lora']['means']['ROUGE-L / LCS'])} | {cell(row['vs_lora']['headline'], True)} | "
                  f"{cell(row['vs_lora']['perplexity'], True)} |"
                  + "".join(f" {cell(row['vs_lora']['perplexities'].get(name), True)} |" for name in further)
                  for row in against]
    return "\n".join(lines) + "\n"


def curve_chart(rows: list[dict], file: Path, drift_on: str = "ppl") -> None:
    """Embodied gain (the mean of relative changes over the tasks, the paper's headline) against the perplexity
    drift (%) on the set drift_on (`ppl`, `ppl:<label>`), with 95% intervals, a point per run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for row in rows:
        drift = row["perplexities"].get(drift_on)
        if drift is None or row["headline"] is None:
            continue
        x, y = drift["relative"], {k: v * 100 for k, v in row["headline"].items() if k != "p"}
        style = {"LoRA": "s", "EWC-LoRA": "o"}.get(row["method"], "^")
        xerr = [[(x["estimate"] - x["low"]) * 100], [(x["high"] - x["estimate"]) * 100]]
        yerr = [[y["estimate"] - y["low"]], [y["high"] - y["estimate"]]]
        ax.errorbar(x["estimate"] * 100, y["estimate"], xerr=xerr, yerr=yerr, fmt=style, capsize=3, label=row["name"])
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"perplexity change on {drift_on} (%)" + (" (held-out general text)" if drift_on == "ppl" else ""))
    ax.set_ylabel("mean of relative changes over the E2WM tasks (%)")
    ax.set_title("Embodied gain against general-text drift (95% paired intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, file)


def write_summary(study: dict, out: Path, names: list[str]) -> list[dict]:
    """OUT/report/summary.json, summary.md and ewc-curve.png from `summary_rows`, which it returns."""
    from e2wm.eval.frontier import drift_set
    from e2wm.eval.report import load_run

    rows = summary_rows(study, out, names)
    write_json(out / "report" / "summary.json", rows)
    # the perplexity set `e2wm report --drift-on` names (`ppl`, `ppl:<label>` or the label alone)
    drift_on = drift_set([load_run(out / "base" / "eval", "base")], study.get("report", {}).get("drift_on", "ppl"))
    heading = [f"# {study.get('title', 'e2wm study')}: summary", "",
               "Each run against the base model and, below, against the plain LoRA run of its data, budget and seed "
               "(paired over the same items or texts; 95% bootstrap intervals, permutation p). "
               f"`ewc-curve.png`: gain against drift on {drift_on}.", ""]
    text = "\n".join(heading) + summary_table(rows) + "\n".join(world_tables(study, rows, out)) + "\n"
    write_atomic(out / "report" / "summary.md", text)
    if drift_on and any(row["perplexities"].get(drift_on) for row in rows):
        curve_chart(rows, out / "report" / "ewc-curve.png", drift_on)
    curves_chart(rows, out / "report" / "learning-curves.png")
    return rows


SHIPPED = Path(__file__).resolve().parents[1] / "src" / "e2wm" / "adapters"


def ship(out: Path, run: str, name: str, rows: list[dict]) -> Path:
    """Copy run's adapter into e2wm's shipped adapters as `name` (`e2wm eval --adapter NAME`), with a model card
    holding its evaluation and, from the summary, its paired comparison with the base model and with LoRA."""
    from e2wm.train.card import write_card

    target = SHIPPED / name
    target.mkdir(parents=True, exist_ok=True)
    for file in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy(out / run / "train" / "adapter" / file, target / file)
    write_card(out / run / "train", target, out / run / "eval", name)
    row = next(r for r in rows if r["name"] == run)
    table = summary_table([row]).splitlines()
    text = (target / "README.md").read_text(encoding="utf-8")
    section = ["## Against the base model and plain LoRA", "",
               "Paired over the same items (the E2WM dev slice, 769 items in 11 files; perplexity over 64 held-out "
               "texts): 95% bootstrap intervals and the p of a paired permutation test (e2wm report, "
               "docs/statistics.md). From the study `benchmarks/study.py configs/study/cpu.yaml` (docs/results.md).",
               "", *table, ""]
    marker = "## Use"
    (target / "README.md").write_text(text.replace(marker, "\n".join(section) + "\n" + marker, 1), encoding="utf-8")
    return target


def publish(out: Path, names: list[str], target: Path, study_file: Path) -> None:
    """Copy into target what the repository keeps: the study file (study.yaml: every option of every job), per
    run its metrics (without the per-answer histograms of metrics.json; summary.json keeps the world-tracking
    tasks' answer counts), options, training log and per-item scores (index and score or correctness, no
    benchmark text), and the reports with their charts."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(study_file, target / "study.yaml")
    for name in ["base", *names]:
        evaluated = out / name / "eval"
        if not (evaluated / "metrics.json").is_file():
            continue
        keep = target / name
        keep.mkdir(parents=True, exist_ok=True)
        metrics = json.loads((evaluated / "metrics.json").read_text())  # without the answer texts' histograms
        write_json(keep / "metrics.json", {task: {k: v for k, v in values.items() if k != "answers"}
                                           for task, values in metrics.items()})
        for curve in sorted((out / name).glob("curve-*/metrics.json")):
            write_json(keep / f"{curve.parent.name}-metrics.json", {
                task: {k: v for k, v in values.items() if k != "answers"}
                for task, values in json.loads(curve.read_text()).items()})
        for source in (out / name / "train" / "log.jsonl", out / name / "train" / "config.json"):
            if source.is_file():
                shutil.copy(source, keep / f"train-{source.name}")
        scores = {}
        for predictions in sorted((evaluated / "predictions").glob("*.jsonl")):
            rows = read_jsonl(predictions)
            scores[predictions.stem] = [item_score(row) for row in rows]
        write_json(keep / "scores.json", scores)
    for source in (out / "report").glob("*"):
        if source.suffix in (".md", ".png", ".json"):
            shutil.copy(source, target / source.name)


def item_score(row: dict) -> dict:
    """A prediction row without text: multiple choice -> index, the chosen option's position, correct;
    perplexity -> index, the text's NLL (nats) and its scored tokens (so that drift can be paired again);
    generation -> index and the row's per-item score."""
    if "scores" in row:
        choice = max(range(len(row["scores"])), key=row["scores"].__getitem__)
        return {"index": row["index"], "choice": choice, "correct": row["prediction"] == row["answer"]}
    if "nll" in row:
        return {"index": row["index"], "nll": row["nll"], "tokens": row["tokens"]}
    return {"index": row["index"], "score": row.get("score")}


def phases(study: dict, out: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """The runs in their order, in two phases: a `from` run (WiSE-FT) whose source run is not trained yet waits
    for the second phase, after every training run; every other run keeps its place in the first."""
    def waits(name: str) -> bool:
        source = (study["runs"][name] or {}).get("from")
        return source is not None and not (out / source / "train" / "adapter" / "adapter_config.json").is_file()

    return [n for n in names if not waits(n)], [n for n in names if waits(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="the study's YAML file")
    parser.add_argument("--only", nargs="*", help="run only these runs (and the base model)")
    parser.add_argument("--parallel", type=int, default=2, help="jobs at once (one torch thread each)")
    parser.add_argument("--publish", type=Path, help="copy what the repository keeps of finished runs here")
    parser.add_argument("--no-report", action="store_true", help="skip the final `e2wm report`")
    parser.add_argument("--ship", metavar="RUN:NAME", help="ship RUN's adapter with e2wm as NAME (src/e2wm/adapters)")
    parser.add_argument("--no-base", action="store_true", help="leave the base model's evaluation to another "
                        "study process (two studies must not write one run at once)")
    args = parser.parse_args()
    try:
        study = load_study(args.study)
        check_runs(study, args.study)
    except SystemExit as refusal:  # a bad study file: its one line, exit code 2 (as e2wm's own refusals)
        print(refusal.code, file=sys.stderr)
        raise SystemExit(2) from None
    # `kill PID` stops the study as Ctrl-C does, and so does `kill -INT PID` when a shell started it in the background
    for stopping in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stopping, signal.default_int_handler)
    try:
        study_runs(study, args)
    except KeyboardInterrupt:
        stop_jobs()
        raise SystemExit(INTERRUPTED) from None


def study_runs(study: dict, args: argparse.Namespace) -> None:
    """The data, every run (`args.parallel` at once, in `phases`), the report and the publication."""
    out = Path(study["out"])
    names = [n for n in study["runs"] if not args.only or n in args.only]
    _, heldout = prepare_data(study, out)  # the Fisher: OUT/fisher.safetensors (`train_options`)
    failures = []
    for number, phase in enumerate(phases(study, out, names)):
        pool = ThreadPoolExecutor(max_workers=args.parallel)
        base = number == 0 and not args.no_base
        jobs = [pool.submit(train_and_eval, "base", None, study, out, heldout)] if base else []
        jobs += [pool.submit(train_and_eval, n, study["runs"][n] or {}, study, out, heldout) for n in phase]
        try:
            failures += [job.exception() for job in jobs if job.exception() is not None]
        except KeyboardInterrupt:
            stop_jobs()  # before the pool waits for its jobs: they stop, and no queued one starts
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    if failures:
        raise SystemExit("; ".join(str(f) for f in failures))
    rows = None
    if not args.no_report:
        print(f"[study] report: {summarise(study, out, names)}")
        rows = write_summary(study, out, names)
    if args.publish:
        publish(out, names, args.publish, args.study)
    if args.ship:
        source, name = args.ship.split(":", 1)
        print(f"[study] shipped {ship(out, source, name, rows or summary_rows(study, out, names))}")


if __name__ == "__main__":
    main()
