"""Evaluate a loaded model on task files: predictions, per-task metrics, metrics.json and results.md.

Each finished task is saved on its own (predictions and metrics), so an interrupted run resumes at the
task in flight; metrics.json and results.md are written once, at the end, atomically.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from e2wm.eval import generation, metrics, qa
from e2wm.eval.perplexity import perplexity, read_texts
from e2wm.eval.tasks import TaskFile, generation_metric, qa_norm
from e2wm.files import write_json, write_jsonl
from e2wm.models import context_length


@dataclass
class EvalSettings:
    limit: int | None = None
    batch_size: int = 1
    num_beams: int = 1
    max_new_tokens: int = 256
    norm: str | None = None
    max_length: int | None = None  # default: the model's context length
    ppl_max_length: int = 1024


def fingerprint(task: TaskFile, settings: EvalSettings, model_id: str) -> str:
    """What a saved task result depends on: the file's bytes, the model and the settings."""
    digest = hashlib.sha256(task.path.read_bytes())
    digest.update(json.dumps([model_id, asdict(settings)], sort_keys=True).encode())
    return digest.hexdigest()


def evaluate_qa(model, tokenizer, task: TaskFile, settings: EvalSettings, max_length: int, log=print):
    norm, known = qa_norm(task.name, settings.norm)
    if not known:
        log(f"{task.name}: task not known, using length-normalised scores (ln); --norm overrides")
    encoded = [qa.encode_item(tokenizer, item, max_length) for item in task.items]
    with tqdm(total=len(encoded), desc=f"{task.name} (qa, {norm})", unit="item") as bar:
        logprobs = qa.option_logprobs(model, encoded, tokenizer.pad_token_id, bar.update)
    unconditional = None
    if norm == "un":
        options = [o for item in task.items for o in item.options]
        unconditional = qa.unconditional_logprobs(model, tokenizer, options, tokenizer.pad_token_id)
    rows, predictions = [], []
    for index, (item, enc, lps) in enumerate(zip(task.items, encoded, logprobs)):
        scores = qa.normalise(item, enc, lps, norm, unconditional)
        best = qa.argmax(scores)
        predictions.append(best)
        rows.append({"index": index, "scores": scores, "prediction": item.options[best],
                     "answer": item.options[item.answer]})
    result = {
        "accuracy": metrics.accuracy(predictions, [item.answer for item in task.items]),
        "n": len(task.items), "norm": norm, "truncated": sum(e.truncated for e in encoded),
    }
    return result, rows


def evaluate_generation(model, tokenizer, task: TaskFile, settings: EvalSettings, max_length: int):
    prompts, truncated = generation.encode_prompts(
        tokenizer, [item.input for item in task.items], max_length, settings.max_new_tokens
    )
    with tqdm(total=len(prompts), desc=f"{task.name} (generation)", unit="item") as bar:
        texts = generation.generate(
            model, tokenizer, prompts, max_new_tokens=settings.max_new_tokens, num_beams=settings.num_beams,
            batch_size=settings.batch_size, progress=bar.update,
        )
    predictions = [generation.first_line(text) for text in texts]
    references = [item.ref for item in task.items]
    if generation_metric(task.name) == "lcs":
        result = {"lcs": metrics.lcs(predictions, references)}
    else:
        result = metrics.rouge(predictions, references)
    result.update(n=len(task.items), truncated=truncated)
    rows = [{"index": i, "prediction": p, "ref": r} for i, (p, r) in enumerate(zip(predictions, references))]
    return result, rows


def evaluate(model, tokenizer, tasks: list[TaskFile], out: Path, settings: EvalSettings, model_id: str,
             ppl_data: str | None = None, log=print) -> dict:
    """Run every task (resuming finished ones), then perplexity; write metrics.json and results.md."""
    max_length = settings.max_length or context_length(model, tokenizer)
    results: dict[str, dict] = {}
    for task in tasks:
        if settings.limit:
            task.items = task.items[: settings.limit]
        key = fingerprint(task, settings, model_id)
        saved = out / "tasks" / f"{task.name}.json"
        if saved.is_file() and json.loads(saved.read_text())["fingerprint"] == key:
            results[task.name] = json.loads(saved.read_text())["metrics"]
            log(f"{task.name}: already evaluated, reusing {saved}")
            continue
        if task.kind == "qa":
            result, rows = evaluate_qa(model, tokenizer, task, settings, max_length, log)
        else:
            result, rows = evaluate_generation(model, tokenizer, task, settings, max_length)
        write_jsonl(out / "predictions" / f"{task.name}.jsonl", rows)
        write_json(saved, {"fingerprint": key, "metrics": result})
        results[task.name] = result
    if ppl_data:
        texts = read_texts(ppl_data)
        with tqdm(desc="perplexity", unit="window") as bar:
            results["ppl"] = perplexity(
                model, tokenizer, texts, min(settings.ppl_max_length, max_length),
                max(settings.batch_size, 1), bar.update,
            )
    write_json(out / "metrics.json", results)
    (out / "results.md").parent.mkdir(parents=True, exist_ok=True)
    from e2wm.files import write_atomic

    write_atomic(out / "results.md", results_table(results, model_id))
    return results


def headline(result: dict) -> tuple[str, float]:
    """The main metric of a task result: accuracy, ROUGE-L, LCS or perplexity."""
    for key in ("accuracy", "rougeL", "lcs", "perplexity"):
        if key in result:
            return key, result[key]
    raise KeyError(f"no known metric in {sorted(result)}")


def results_table(results: dict, model_id: str) -> str:
    lines = [f"# E2WM evaluation: {model_id}", "", "| task | metric | score | n | truncated |",
             "|---|---|---:|---:|---:|"]
    for name, result in results.items():
        metric, value = headline(result)
        extra = ""
        if metric == "rougeL":
            extra = f" (R1 {result['rouge1']:.4f}, R2 {result['rouge2']:.4f})"
        n = result.get("n", result.get("tokens", ""))
        lines.append(f"| {name} | {metric} | {value:.4f}{extra} | {n} | {result.get('truncated', '')} |")
    return "\n".join(lines) + "\n"
