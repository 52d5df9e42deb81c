"""The model card of a trained adapter: README.md in the Hugging Face format (YAML metadata, then markdown),
filled from the run's config.json and log.jsonl and, when given, an `e2wm eval` run of the adapter.

It replaces PEFT's empty template. The card names the base model by its Hub id, never a local cache path
(the embedded model is `EMBEDDED_HUB_ID` de-quantised from a Q4_1 GGUF, and the card says so), and
`base_model_name_or_path` in adapter_config.json is set to the same name.
Format: https://huggingface.co/docs/hub/model-cards (metadata keys base_model, library_name, license, tags).
"""

import json
from pathlib import Path

from e2wm.benchmark import TASKS, label
from e2wm.files import read_jsonl, write_atomic, write_json
from e2wm.methods import ADAPTER_LABELS, REGULARISER_LABELS, method_label, recorded_method
from e2wm.models import EMBEDDED_DESCRIPTION, EMBEDDED_HUB_ID, EMBEDDED_NAME

LICENSES = {EMBEDDED_HUB_ID: "apache-2.0"}  # base models whose license e2wm knows
CITATION = """@inproceedings{xiang2023language,
  title     = {Language Models Meet World Models: Embodied Experiences Enhance Language Models},
  author    = {Xiang, Jiannan and Tao, Tianhua and Gu, Yi and Shu, Tianmin and Wang, Zirui and Yang, Zichao
               and Hu, Zhiting},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2023},
  note      = {arXiv:2305.10626}
}"""
SETTINGS = [("adapter_kind", "adapter kind"), ("regularisers", "regularisers"), ("lam", "EWC lambda"),
            ("kl_weight", "KL anchor weight"), ("kl_tokens", "KL anchor tokens"),
            ("kl_direction", "KL anchor direction"), ("replay_data", "replay text"),
            ("replay_ratio", "replay texts per example"), ("replay_weight", "replay weight"),
            ("fisher_scale", "Fisher scale"), ("lora_r", "LoRA rank"),
            ("lora_alpha", "LoRA alpha"), ("lora_dropout", "LoRA dropout"),
            ("osf_effective_rank", "OSF frozen singular directions"), ("modules", "adapted modules"),
            ("optimizer", "optimizer"), ("mofo_fraction", "MoFO fraction updated per step"),
            ("lr", "learning rate (linear decay)"), ("weight_decay", "weight decay"),
            ("batch_size", "examples per micro-batch"), ("grad_accum", "micro-batches per step"),
            ("max_steps", "optimiser steps (at most)"), ("epochs", "epochs (at most)"),
            ("max_len", "tokens per example"), ("chat_template", "prompts in the base model's chat template"),
            ("truncation", "truncation"), ("batching", "batching"), ("loss_norm", "loss normalisation"),
            ("seed", "seed")]

KEEPING = {  # how the run kept the base model's general ability, by regularisers
    ("ewc",): ", with an elastic weight consolidation penalty (a diagonal Fisher from general text) that keeps the "
              "base model's general ability",
    (): ", without a regulariser (plain finetuning)",
}


def hub_name(model: str) -> str:
    """The base model's public name: the embedded model's Hub id, else the name as given."""
    return EMBEDDED_HUB_ID if model == EMBEDDED_NAME else model


def model_card(run_dir: Path, evaluation: Path | None = None, name: str | None = None) -> str:
    """The README.md text of run_dir's adapter.

    Args:
        run_dir: an `e2wm train` run directory (config.json, log.jsonl).
        evaluation: an `e2wm eval` run directory of this adapter (metrics.json), or None.
        name: the adapter's name in the heading (default: the run directory's name).
    Raises:
        FileNotFoundError: when run_dir has no config.json (or evaluation no metrics.json).
    """
    recorded = json.loads((run_dir / "config.json").read_text())
    options, settings = recorded["options"], recorded["settings"]
    provenance = recorded.get("provenance", {})
    log = read_jsonl(run_dir / "log.jsonl") if (run_dir / "log.jsonl").is_file() else []
    base = hub_name(options["model"])
    adapter, regularisers = recorded_method(options)
    method = method_label(adapter, regularisers)
    options = {**options, "adapter_kind": adapter, "regularisers": ", ".join(regularisers) or "none"}
    unread = {"ewc": ("lam",), "kl": ("kl_weight", "kl_tokens", "kl_direction"),
              "replay": ("replay_data", "replay_ratio", "replay_weight")}  # settings only a regulariser reads
    skipped = {key for name, keys in unread.items() if name not in regularisers for key in keys}
    if adapter != "lora":  # LoRA's own settings
        skipped |= {"lora_r", "lora_alpha", "lora_dropout"}
    if not options.get("fisher"):
        skipped.add("fisher_scale")
    metadata = [f"base_model: {base}", "library_name: peft"]
    if base in LICENSES:
        metadata.append(f"license: {LICENSES[base]}")
    tag = method.lower().replace(" + ", "-").replace(" ", "-")  # ewc-lora, lora, lora-kl-anchor, ...
    metadata += ["tags:", "- e2wm", f"- {tag}", "- embodied", "- virtualhome",
                 "pipeline_tag: text-generation"]
    lines = ["---", *metadata, "---", "", f"# {name or run_dir.name}: an E2WM {method} adapter for {base}", ""]
    version = provenance.get("versions", {}).get("e2wm", "")
    article = "An" if method[0] in "AEIOU" else "A"
    lines.append(f"{article} {method} adapter trained by e2wm {version} on embodied experiences from the VirtualHome "
                 "world model, the E2WM method of Xiang et al. "
                 f"(NeurIPS 2023): {ADAPTER_LABELS.get(adapter, adapter)} adapters trained on plans and object "
                 "tracking from a simulator"
                 + KEEPING.get(tuple(regularisers), f", with {', '.join(regularisers) or 'no regulariser'}") + ".")
    if options["model"] == EMBEDDED_NAME:
        lines += ["", f"The base weights it was trained on are e2wm's embedded model: {EMBEDDED_DESCRIPTION}. "
                  f"Applied to the original `{base}` weights it behaves close to, not exactly as, measured here."]
    lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {text} | {options[key]} |" for key, text in SETTINGS
              if options.get(key) is not None and key not in skipped]
    lines += ["", f"Inputs (the training mixture `{options['train']}`, and the Fisher when one was used; sha256 of "
              "each file):", ""]
    lines += [f"- `{Path(path).name}`: `{digest}`" for path, digest in settings.get("inputs", {}).items()]
    if log:
        last = log[-1]
        tail = [row["ce"] for row in log[-10:]]
        values = "; ".join(f"{REGULARISER_LABELS[name]} {last[name]:.4g}" for name in regularisers if name in last)
        lines += ["", f"{last['step']} optimiser steps; the last 10 steps' mean cross-entropy on answer tokens "
                  f"{sum(tail) / len(tail):.3f} nats (the first step's {log[0]['ce']:.3f}); regularisers at the end: "
                  f"{values or 'none'}."]
    if provenance:
        versions = ", ".join(f"{k} {v}" for k, v in provenance.get("versions", {}).items())
        lines += ["", f"Trained {provenance.get('date', '')} on {provenance.get('device', '?')} in "
                  f"{provenance.get('wall_seconds', 0):.0f} s; {versions}; e2wm commit "
                  f"{provenance.get('git_commit') or 'unknown'}."]
    lines += ["", "## Evaluation", ""]
    lines += evaluation_lines(evaluation) if evaluation else [
        "Not evaluated with this card. Score it with `e2wm eval --model "
        f"{options['model']} --adapter <this folder> --data <E2WM files> --out <run>`."]
    lines += ["", "## Use", "", "```python", "from peft import PeftModel",
              "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              f'base = AutoModelForCausalLM.from_pretrained("{base}")',
              'model = PeftModel.from_pretrained(base, "<this folder>")',
              f'tokenizer = AutoTokenizer.from_pretrained("{base}")', "```", *chat_use(options), "",
              "## Limitations", "",
              "- Trained on simulated household activities (VirtualHome programs and random exploration), in "
              "English; the skills are those of the E2WM tasks: plans, activity recognition, counting, object paths.",
              "- A small adapter trained briefly: read the evaluation's intervals before trusting a difference.",
              "- The base model's own limitations and license apply.", "",
              "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


def chat_use(options: dict) -> list[str]:
    """How to prompt an adapter trained with --chat-template (nothing for raw prompts, or a run recorded before
    the option existed)."""
    if not options.get("chat_template"):
        return []
    return ["", "Trained with `--chat-template`: give each prompt as the user's message, "
            "`tokenizer.apply_chat_template([{\"role\": \"user\", \"content\": prompt}], tokenize=False, "
            "add_generation_prompt=True)`, and read the answer up to the template's end of turn; evaluate it with "
            "`e2wm eval --chat-template`."]


def evaluation_lines(evaluation: Path) -> list[str]:
    """The metrics of an `e2wm eval` run as a markdown table: task, metric, score (+- stderr), items."""
    metrics = json.loads((evaluation / "metrics.json").read_text())
    rows = ["| task | metric | score | items |", "|---|---|---:|---:|"]
    for task, values in metrics.items():
        if task == "ppl":
            tokens = values.get("tokens", "")
            rows.append(f"| general text | perplexity | {values['perplexity']:.2f} | {tokens} tokens |")
            continue
        # a user's own file: the first headline metric present, in e2wm.eval.metrics.METRICS' order (a stage above)
        metric = TASKS[task].metric if task in TASKS else next(
            (name for name in ("accuracy", "rougeL", "lcs", "task_success") if name in values), None)
        if metric is None:
            continue
        stderr = values.get(f"{metric}_stderr")
        score = "—" if values.get(metric) is None else f"{values[metric]:.3f}"
        score += f" ± {stderr:.3f}" if stderr is not None else ""
        rows.append(f"| {label(task)} | {metric} | {score} | {values.get('n', '')} |")
    return [f"`e2wm eval` of this adapter ({evaluation.name}); ± is one standard error:", "", *rows]


def write_card(run_dir: Path, adapter: Path, evaluation: Path | None = None, name: str | None = None) -> None:
    """Write adapter/README.md (`model_card`) and set base_model_name_or_path in adapter/adapter_config.json to
    the base model's public name (`hub_name`); both atomically."""
    write_atomic(adapter / "README.md", model_card(run_dir, evaluation, name))
    config_file = adapter / "adapter_config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        config["base_model_name_or_path"] = hub_name(json.loads((run_dir / "config.json").read_text())
                                                     ["options"]["model"])
        write_json(config_file, config)


MERGED = {"LORA": ("LoRA", "scaling * B @ A"), "OSF": ("OSF", "(U S V - U0 S0 V0)")}  # PEFT type: name, change


def merged_card(base_model: str, adapter: str, adapter_sha256: str, dtype: str, name: str, kind: str = "LORA",
                scale: float = 1.0) -> str:
    """The README.md text of a merged checkpoint (`e2wm export merged`): an adapter's change folded into its base.

    Args:
        base_model: the base as given to --model (named on the card by `hub_name`).
        adapter: the adapter directory that was merged; its own README.md (the adapter's card, when e2wm wrote
            it) is pointed to, not copied.
        adapter_sha256: `provenance.tree_digest` of the adapter's weight files.
        dtype: the saved weights' dtype.
        name: the checkpoint's name in the heading (its folder's name).
        kind: the adapter's PEFT type (LORA, OSF: `MERGED`; another is named as PEFT names it).
        scale: --adapter-scale, said in a paragraph when not 1.
    """
    base = hub_name(base_model)
    label, change = MERGED.get(kind, (kind, "the adapter's change"))
    metadata = [f"base_model: {base}", "library_name: transformers"]
    if base in LICENSES:
        metadata.append(f"license: {LICENSES[base]}")
    metadata += ["tags:", "- e2wm", f"- merged-{label.lower()}", "- embodied", "- virtualhome",
                 "pipeline_tag: text-generation"]
    lines = ["---", *metadata, "---", "", f"# {name}: {base} with an E2WM {label} adapter merged in", "",
             f"The {label} adapter `{Path(adapter).name}` (sha256 of its weight files `{adapter_sha256}`) merged into "
             f"the weights of {base} by PEFT's `merge_and_unload` (W + {change}, computed in float32), then "
             f"saved in {dtype}: a standard transformers checkpoint that loads without PEFT. It computes what the "
             "base model with the adapter applied computes (up to the rounding of the saved dtype). The adapter "
             "comes from e2wm's training on embodied experiences from the VirtualHome world model, the "
             "E2WM method of Xiang et al. (NeurIPS 2023); its own card (training settings, data digests, evaluation) "
             "is the README.md of the adapter folder."]
    if base_model == EMBEDDED_NAME:
        lines += ["", f"The base weights are e2wm's embedded model: {EMBEDDED_DESCRIPTION}; they are what was "
                  f"merged, not the original `{base}` weights."]
    if scale != 1:
        lines += ["", f"Interpolated with its base (WiSE-FT, Wortsman et al. 2022): the adapter's change was scaled by "
                  f"s = {scale:g} before merging (`e2wm export merged --adapter-scale {scale:g}`), so each adapted "
                  f"weight is W + {scale:g} * {change} and the checkpoint computes what the base with the adapter at "
                  f"scale {scale:g} computes, not the adapter as trained"
                  f"{' (s above 1 extrapolates)' if scale > 1 else ''}."]
    lines += ["", "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              'model = AutoModelForCausalLM.from_pretrained("<this folder>")',
              'tokenizer = AutoTokenizer.from_pretrained("<this folder>")', "```", "",
              "## Limitations", "",
              "- Trained on simulated household activities (VirtualHome programs and random exploration), in "
              "English; the skills are those of the E2WM tasks: plans, activity recognition, counting, object paths.",
              "- The base model's own limitations and license apply.", "",
              "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)
