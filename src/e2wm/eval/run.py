"""Evaluate a loaded model on task files: predictions, per-task metrics, metrics.json and results.md.

Each finished task is saved on its own (predictions and metrics), so an interrupted run resumes at the
task in flight; metrics.json and results.md are written once, at the end, atomically. Under
`accelerate launch` every process takes a strided shard of each file's items; the rows are gathered in
the original order and the main process writes the same files a single process would.
"""

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tqdm import tqdm

from e2wm.benchmark import TASKS
from e2wm.config import result_settings
from e2wm.errors import InputError, at
from e2wm.eval import generation, metrics, qa, statistics
from e2wm.eval.compare import PPL, ppl_tasks
from e2wm.eval.config import PERPLEXITY, EvalConfig
from e2wm.eval.items import EvalFile, item_digest
from e2wm.eval.perplexity import PAPER_TOKENS, paper_losses, predicts_a_token, read_texts, summary, window_losses
from e2wm.eval.results import answer_chart, results_table
from e2wm.files import write_atomic, write_json, write_jsonl
from e2wm.models import autocast, autocast_dtype, context_length, describe, pad_id

logger = logging.getLogger(__name__)

PPL_WINDOW = 1024  # tokens per perplexity window at most (the model's context length if shorter)
# the version of a saved task's metrics: a task saved by an older version (without the statistics that
# version 2 added, version 3's Wilson interval and item digests, or scored before version 4's plan reader took the
# released files' 'Turn on X') never matches the fingerprint and is recomputed
METRICS_VERSION = 4
# the version of saved generations (OUT/tasks/<task>.generated.json), bumped when e2wm's decoding changes: a scoring
# change or another e2wm commit alone leaves them valid (`generation_identity`), so the task is re-scored from them
GENERATION_VERSION = 1
# the result settings a perplexity set does not read (`ppl_fingerprint`): the E2WM files and their tasks' options
PPL_UNREAD = ("data", "ppl_data", "limit", "chat_template", "norm", "num_beams", "beam_stop", "max_new_tokens",
              "eai_form", "robothow_dir", "backend")


@dataclass
class Shard:
    """This process's share of every file: items index, index + count, index + 2 * count, ..."""

    index: int = 0
    count: int = 1

    def indices(self, total: int) -> list[int]:
        return list(range(self.index, total, self.count))

    @property
    def is_main(self) -> bool:
        return self.index == 0


def gather_rows(rows: list[dict], shard: Shard) -> list[dict]:
    """Every process's rows, in item order (a no-op for one process)."""
    if shard.count > 1:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    return sorted(rows, key=lambda row: row["index"])


def fingerprint(task: EvalFile, config: EvalConfig, identity: dict, version: int | None = None) -> str:
    """What a saved task result depends on: the file's bytes, the config's result settings (every EvalConfig
    field not marked result=False, so a field added later is covered; --eai-form for EAI's task only,
    --robothow-dir for the plan tasks only) and the model's identity (the base
    model's revision or weight digest, the adapter's digest, the device type: see recipes.evaluate), and version:
    METRICS_VERSION (None) for a task's result, GENERATION_VERSION for its saved generations."""
    perplexity_only = {f.name for f in fields(config) if f.metadata["group"] == PERPLEXITY}
    unread = set()  # options that change only other tasks' results: a change of them leaves this task's alone
    if task.spec.metric != "task_success":
        unread.add("eai_form")
    if "execution" not in task.spec.extra_metrics:
        unread.add("robothow_dir")
    settings = {k: v for k, v in result_settings(config).items()
                if k != "data" and k not in perplexity_only and k not in unread}
    if settings.get("autocast") == "none":  # float32 as before the option existed: earlier results stay valid
        del settings["autocast"]
    if settings.get("adapter_scale") == 1:  # the adapter as trained, as before the option existed: likewise
        del settings["adapter_scale"]
    digest = hashlib.sha256(task.content_digest().encode())
    version = METRICS_VERSION if version is None else version
    digest.update(json.dumps([settings, identity, PPL_WINDOW, version], sort_keys=True).encode())
    return digest.hexdigest()


def generation_identity(identity: dict) -> dict:
    """The model identity that decoded texts depend on: `identity` without e2wm's own version and git commit (a
    change of e2wm's decoding bumps GENERATION_VERSION instead), so that a new checkout re-scores saved generations
    rather than decoding again; the libraries' versions stay (they change the numerics)."""
    software = identity.get("software")
    if not isinstance(software, dict):
        return identity
    versions = {k: v for k, v in software.get("versions", {}).items() if k != "e2wm"}
    return identity | {"software": {"versions": versions}}


def unused_options(tasks: list[EvalFile], config: EvalConfig) -> list[str]:
    """Options given that no task reads (`fingerprint`'s per-task options): --eai-form other than its default
    without EAI's task, --robothow-dir without a plan-generation task."""
    found = []
    if config.eai_form != EvalConfig.eai_form and not any(task.spec.metric == "task_success" for task in tasks):
        found.append(f"--eai-form {config.eai_form} (only --data eai:action_sequence reads it)")
    if config.robothow_dir and not any("execution" in task.spec.extra_metrics for task in tasks):
        found.append(f"--robothow-dir {config.robothow_dir} (only plan-generation tasks read it)")
    return found


def token_limit(model, tokenizer, config: EvalConfig) -> int:
    """The token limit of prompt + answer: --max-len, else the model's context (`models.context_length`).

    Raises InputError when --max-len exceeds the model's context (positions the model never learned; GPT-2's
    learned position table has no row for them)."""
    context = context_length(model, tokenizer)
    if config.max_len and config.max_len > context:
        raise InputError(f"--max-len {config.max_len} exceeds the model's context of {context} tokens")
    return config.max_len or context


def check_limits(tokenizer, tasks: list[EvalFile], config: EvalConfig, max_length: int,
                 ppl_texts: list[list[str]]) -> None:
    """Check every limit against the others before the model runs, so that no prompt is cut to nothing.

    Args:
        tasks: the evaluation files (their first --limit items are checked).
        max_length: `token_limit`'s value, in tokens.
        ppl_texts: the texts of each --ppl-data file, in order ([] without --ppl-data).
    Raises:
        InputError: a generation file whose prompts would keep no token (max_length <= --max-new-tokens); a QA
            item whose longest option leaves no token of its input within max_length, or whose option encodes
            to no token (naming file, line and field); a --ppl-data file with no text of two or more tokens.
    """
    limit = f"--max-len {max_length}" if config.max_len else f"the model's context of {max_length} tokens"
    for task in tasks:
        items = task.items[: config.limit] if config.limit else task.items
        if task.kind == "generation" and max_length <= config.max_new_tokens:
            raise InputError(f"{task.path}: --max-new-tokens {config.max_new_tokens} leaves no prompt token within "
                             f"{limit}; lower --max-new-tokens below {max_length}")
        for item in items:
            if task.kind == "multiple_choice":
                try:
                    qa.encode_item(tokenizer, item, max_length, config.chat_template)
                except ValueError as error:
                    raise InputError(f"{at(task.path, item.line, 'answer_list')}: {error} ({limit})") from None
    for file, texts in zip(config.ppl_data or [], ppl_texts):
        if not predicts_a_token(tokenizer, texts, config.ppl_mode, config.ppl_texts):
            scope = f"of its first {config.ppl_texts} " if config.ppl_mode == "paper" else ""
            raise InputError(f"--ppl-data {file}: no text {scope}has two or more tokens (nothing to predict; "
                             f"--ppl-mode {config.ppl_mode})")


def progress_bar(task: EvalFile, total: int, label: str, shard: Shard):
    return tqdm(total=total, desc=f"{task.name} ({label})", unit="item", disable=not shard.is_main)


def qa_rows(model, tokenizer, task: EvalFile, config: EvalConfig, max_length: int, shard: Shard):
    """Score every option of the shard's items; (result, rows) gathered over the processes.

    result: accuracy, n, norm, truncated and `statistics.multiple_choice_statistics` (stderr, Wilson
    interval, baselines, answer histogram); rows: per item index, sha256 (`item_digest`), scores, prediction
    and answer (option texts).
    """
    norm = config.norm or task.spec.norm
    if config.norm is None and task.name not in TASKS and shard.is_main:
        logger.warning("%s: task not known, using length-normalised scores (ln); --norm overrides", task.name)
    encoded = [qa.encode_item(tokenizer, item, max_length, config.chat_template) for item in task.items]
    mine = shard.indices(len(encoded))
    with progress_bar(task, len(mine), f"qa, {norm}", shard) as bar:
        logprobs = qa.option_logprobs(model, encoded, pad_id(tokenizer), bar.update, indices=mine)
    unconditional = None
    if norm == "un":
        options = [o for item in task.items for o in item.options]  # the whole file's: same batches in any shard
        unconditional = qa.unconditional_logprobs(model, tokenizer, options, pad_id(tokenizer), config.chat_template)
    rows = []
    for index, lps in zip(mine, logprobs):
        item = task.items[index]
        scores = qa.normalise(item, encoded[index], lps, norm, unconditional)
        rows.append({"index": index, "sha256": item_digest(item), "scores": scores,
                     "prediction": item.options[qa.argmax(scores)], "answer": item.options[item.answer]})
    rows = gather_rows(rows, shard)
    predictions, answers = [r["prediction"] for r in rows], [r["answer"] for r in rows]
    result = {"accuracy": metrics.accuracy(predictions, answers), "n": len(rows), "norm": norm,
              "truncated": sum(e.truncated for e in encoded)}
    result |= statistics.multiple_choice_statistics(
        predictions, answers, [len(task.items[r["index"]].options) for r in rows])
    return result, rows


def decoded_texts(model, tokenizer, task: EvalFile, config: EvalConfig, prompts: list[list[int]], shard: Shard,
                  generator, saved: Path | None, key: str) -> list[str]:
    """The shard's decoded continuations, from saved (OUT/tasks/<task>.generated.json, written by the main process
    once the texts are gathered, before any scoring) when it holds them under the same fingerprint key: a judge
    that fails or is interrupted after generation (EAI's evaluator runs minutes after an hour of decoding) does not
    cost the generation again."""
    mine = shard.indices(len(prompts))
    if saved is not None and saved.is_file():
        found = json.loads(saved.read_text(encoding="utf-8"))
        if found.get("fingerprint") == key and len(found.get("texts", [])) == len(prompts):
            if shard.is_main:
                logger.info("%s: reusing the generated answers in %s", task.name, saved)
            return [found["texts"][i] for i in mine]
    options = dict(max_new_tokens=config.max_new_tokens, num_beams=config.num_beams, indices=mine,
                   stop=task.stop if config.beam_stop == "newline" else None)
    if generator is not None:  # another backend (vLLM) decodes the same prompt ids
        return generator.generate(tokenizer, prompts, **options)
    with progress_bar(task, len(mine), "generation", shard) as bar:
        return generation.generate(model, tokenizer, prompts, batch_size=config.batch_size, progress=bar.update,
                                   **options)


def generation_rows(model, tokenizer, task: EvalFile, config: EvalConfig, max_length: int, shard: Shard,
                    generator=None, saved: Path | None = None, key: str = ""):
    """Decode the shard's prompts (each answer cut at the task's stop: its first line, or EAI's JSON) and score them
    with the task's metric (`metrics.METRICS`) and its extra metrics; (result, rows) gathered.

    result: the mean of every per-item score the scorers give (rouge1/rouge2/rougeL, lcs, task_success, ...; over
    the items a judge counts, None when it counts none), n,
    truncated, the scorers' summaries and `statistics.generation_statistics` (bootstrap stderr, or binomial stderr
    and Wilson interval for 0/1 scores); rows: per item index, sha256 (`item_digest`), prediction, ref, score (its
    headline metric's) and what the scorers add.

    config.beam_stop "newline" stops each sequence at its stop (a newline, or the end of EAI's JSON); "full" decodes
    the whole --max-new-tokens budget, as the authors' eval_gen.py did, and the answer is cut afterwards. saved and
    key: where the decoded texts are kept before scoring, under the task's fingerprint (`decoded_texts`).
    """
    prompts, truncated = generation.encode_prompts(
        tokenizer, [item.input for item in task.items], max_length, config.max_new_tokens, config.chat_template
    )
    if truncated and shard.is_main:
        logger.warning("%s: %d of %d prompts were cut from the left to fit %d tokens (context less "
                       "--max-new-tokens %d): their start, the worked examples or instructions, is lost", task.name,
                       truncated, len(prompts), max_length - config.max_new_tokens, config.max_new_tokens)
    mine = shard.indices(len(prompts))
    texts = decoded_texts(model, tokenizer, task, config, prompts, shard, generator, saved, key)
    rows = [{"index": i, "text": text} for i, text in zip(mine, texts)]
    rows = gather_rows(rows, shard)
    if saved is not None and shard.is_main:
        write_json(saved, {"fingerprint": key, "texts": [row["text"] for row in rows]})
    rows = [{"index": row["index"], "sha256": item_digest(task.items[row["index"]]),
             "prediction": generation.cut(row["text"], task.stop), "ref": task.items[row["index"]].ref}
            | ({"source": task.items[row["index"]].source} if task.items[row["index"]].source else {})
            for row in rows]
    items = [task.items[row["index"]] for row in rows]
    predictions = [row["prediction"] for row in rows]
    scores = metrics.METRICS[task.spec.metric].score(items, predictions, config)
    per_item, binary = dict(scores.per_item), set(scores.binary)
    result: dict = {}
    for extra in task.spec.extra_metrics:
        found = metrics.EXTRA_SCORERS[extra](items, predictions, config)
        per_item |= found.per_item
        binary |= found.binary
        result |= found.summary
        for row, extra_fields in zip(rows, found.rows or []):
            row.update(extra_fields)
    for row, score in zip(rows, per_item[task.spec.metric]):
        row["score"] = None if score is None else float(score)  # None: an item the judge does not count
    for row, judged in zip(rows, scores.rows or []):
        row.update(judged)
    scored = {key: [value for value in values if value is not None] for key, values in per_item.items()}
    result |= {key: sum(values) / len(values) if values else None for key, values in scored.items()}
    result |= scores.summary
    result.update(n=len(rows), truncated=truncated)
    result |= statistics.generation_statistics(scored, config.bootstrap_resamples, config.seed, task.name,
                                               binary=binary)
    return result, rows


def evaluate_model(model, tokenizer, tasks: list[EvalFile], config: EvalConfig, identity: dict,
                   shard: Shard | None = None, generator=None) -> dict:
    """Run every task (resuming finished ones), then perplexity; write metrics.json and results.md in config.out.

    identity: what the config cannot say about the model (its revision or weight digest, the adapter's
    digest, the device type); part of each task's resume fingerprint. generator, if given, decodes the
    generation tasks instead of the hf model (see vllm_backend). Returns {task: metrics}, with a perplexity
    per --ppl-data file ("ppl" for the first, "ppl:<label>" for each further one, as config.ppl_mode says;
    `general_perplexity`) after the E2WM tasks; each task's metrics hold n (items
    scored), n_original (items in its file) and cut_by_limit (n < n_original); docs/formats.md lists the rest.
    """
    shard = shard or Shard()
    out = Path(config.out)
    if shard.is_main:
        for option in unused_options(tasks, config):
            logger.warning("%s: no task of --data uses it", option)
    max_length = token_limit(model, tokenizer, config)
    results: dict[str, dict] = {}
    device = next(model.parameters()).device
    precision = autocast_dtype(config.autocast, str(device), config.dtype)
    with autocast(precision, device):  # bf16: matmuls in bf16
        for task in tasks:
            n_original = len(task.items)
            if config.limit:
                task.items = task.items[: config.limit]
            key = fingerprint(task, config, identity)
            saved = out / "tasks" / f"{task.name}.json"
            previous = json.loads(saved.read_text()) if saved.is_file() else {}
            if previous.get("fingerprint") == key:
                results[task.name] = previous["metrics"]
                if shard.is_main:
                    logger.info("%s: already evaluated, reusing %s", task.name, saved)
                continue
            if task.kind == "multiple_choice":
                result, rows = qa_rows(model, tokenizer, task, config, max_length, shard)
            else:
                result, rows = generation_rows(model, tokenizer, task, config, max_length, shard, generator,
                                               out / "tasks" / f"{task.name}.generated.json",
                                               fingerprint(task, config, generation_identity(identity),
                                                           GENERATION_VERSION))
            result.update(n_original=n_original, cut_by_limit=result["n"] < n_original)
            if result["cut_by_limit"] and shard.is_main:
                logger.warning("%s: --limit %d scored %d of the file's %d items; not a full-benchmark score",
                               task.name, config.limit, result["n"], n_original)
            if shard.is_main:
                write_jsonl(out / "predictions" / f"{task.name}.jsonl", rows)
                write_json(saved, {"fingerprint": key, "metrics": result})
            results[task.name] = result
        for name, file in ppl_tasks(config.ppl_data or []):
            results[name] = general_perplexity(model, tokenizer, config, max_length, shard, identity, name, file)
    if shard.is_main:
        write_json(out / "metrics.json", results)
        model_id = describe(config.model) + (f" + {config.adapter}" if config.adapter else "")
        if config.adapter_scale != 1:
            model_id += f" at --adapter-scale {config.adapter_scale:g}"
        chart = answer_chart(results, out / "answers.png")
        write_atomic(out / "results.md", results_table(results, model_id, config.limit, chart))
    return results


def ppl_fingerprint(texts: list[str], config: EvalConfig, identity: dict) -> str:
    """What a saved perplexity set depends on: its texts as read (so a file's bytes, or a saved dataset's rows), the
    config's result settings but the E2WM files and the options only their tasks read (`PPL_UNREAD`; the general
    text is scored raw, with the hf model, whatever --chat-template and --backend say), the model's identity, the
    window and METRICS_VERSION. An added --ppl-data file leaves the other sets' fingerprints alone."""
    settings = {k: v for k, v in result_settings(config).items() if k not in PPL_UNREAD}
    digest = hashlib.sha256(json.dumps(texts).encode())
    digest.update(json.dumps([settings, identity, PPL_WINDOW, METRICS_VERSION], sort_keys=True).encode())
    return digest.hexdigest()


def general_perplexity(model, tokenizer, config: EvalConfig, max_length: int, shard: Shard, identity: dict,
                       task: str, file: str) -> dict:
    """Perplexity on one --ppl-data file, saved as the task `task` (ppl, ppl:<label>: `compare.ppl_tasks`):
    windows of PPL_WINDOW tokens (--ppl-mode windows), or the authors' way (--ppl-mode paper: the first --ppl-texts
    texts cut to PAPER_TOKENS, no BOS); see e2wm.eval.perplexity. Reused from OUT/tasks/<task>.json when its
    fingerprint (`ppl_fingerprint`) is the same, as a finished task is. Every process computes all of it; the main
    one writes OUT/predictions/<task>.jsonl (per text: index, sha256, nll, tokens) and OUT/tasks/<task>.json.
    Returns `perplexity.summary` with `statistics.perplexity_statistics` (bootstrap over texts)."""
    texts = read_texts(file)
    out = Path(config.out)
    key, saved = ppl_fingerprint(texts, config, identity), out / "tasks" / f"{task}.json"
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    if previous.get("fingerprint") == key:
        if shard.is_main:
            logger.info("%s: already evaluated, reusing %s", task, saved)
        return previous["metrics"]
    if config.ppl_mode == "windows":
        with tqdm(desc="perplexity" if task == PPL else f"perplexity {task}", unit="window",
                  disable=not shard.is_main) as bar:
            losses = window_losses(model, tokenizer, texts, min(PPL_WINDOW, max_length), config.batch_size,
                                   bar.update)
    else:
        if max_length < PAPER_TOKENS and shard.is_main:
            logger.warning("--ppl-mode paper: texts cut to %d tokens, the model's context, not the paper's %d",
                           max_length, PAPER_TOKENS)
        if len(texts) < config.ppl_texts and shard.is_main:
            logger.info("--ppl-mode paper: %s holds %d texts, fewer than --ppl-texts %d; scoring all of them",
                        file, len(texts), config.ppl_texts)
        with tqdm(desc="perplexity (paper)" if task == PPL else f"perplexity {task} (paper)", unit="text",
                  disable=not shard.is_main) as bar:
            losses = paper_losses(model, tokenizer, texts, config.ppl_texts, min(PAPER_TOKENS, max_length),
                                  config.batch_size, bar.update)
    result = summary(losses, config.ppl_mode) | statistics.perplexity_statistics(
        [loss.nll for loss in losses], [loss.tokens for loss in losses], config.bootstrap_resamples, config.seed)
    if shard.is_main:
        write_jsonl(out / "predictions" / f"{task}.jsonl", [asdict(loss) for loss in losses])
        write_json(saved, {"fingerprint": key, "metrics": result})
    return result
