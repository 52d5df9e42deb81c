"""General text for the Fisher: a JSONL/text file, or samples drawn from the base model itself (offline)."""

from pathlib import Path

import torch

from e2wm.errors import InputError, at
from e2wm.files import iter_jsonl, require

MODEL_SAMPLES = "model-samples"


def read_corpus(path: str | Path, option: str = "--corpus") -> list[str]:
    """Texts of a JSONL file ("text" per line), a plain-text file (one text per blank-line paragraph),
    or a local Hugging Face dataset saved with `save_to_disk` (its "text" column; the train split of a
    DatasetDict)."""
    path = Path(path)
    if path.is_dir():
        texts = read_dataset(path, option)
    elif not path.is_file():
        raise InputError(f"{option} {path}: no such file or dataset directory")
    elif path.suffix in (".jsonl", ".json"):
        texts = [require(record, "text", str, path, line) for line, record in iter_jsonl(path)]
    else:
        texts = path.read_text(encoding="utf-8").split("\n\n")
    texts = [text.strip() for text in texts if text.strip()]
    if not texts:
        raise InputError(f"{at(path)}: no text in the corpus")
    return texts


def read_dataset(path: Path, option: str) -> list[str]:
    """The "text" column of a dataset saved with `datasets`' save_to_disk."""
    from datasets import DatasetDict, load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise InputError(f"{option} {path}: not a saved Hugging Face dataset ({error})") from None
    if isinstance(dataset, DatasetDict):
        split = "train" if "train" in dataset else next(iter(dataset))
        dataset = dataset[split]
    if "text" not in dataset.column_names:
        raise InputError(f"{option} {path}: field 'text' is missing (columns: {', '.join(dataset.column_names)})")
    return [text for text in dataset["text"] if isinstance(text, str)]


def start_token(tokenizer) -> int:
    """The token generation starts from: BOS, else EOS (a document boundary for GPT-2 style models)."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise InputError("the tokenizer has neither a BOS nor an EOS token to start sampling from")
    return token


@torch.no_grad()
def sample_texts(model, tokenizer, n: int, max_len: int, seed: int, batch_size: int = 8, progress=None) -> list[str]:
    """n texts sampled (temperature 1, no top-k/top-p) from the model, started at BOS; seeded, so reproducible."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    texts: list[str] = []
    try:
        while len(texts) < n:
            prompt = torch.full((batch_size, 1), start_token(tokenizer), device=device)
            out = model.generate(
                prompt, attention_mask=torch.ones_like(prompt), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                max_new_tokens=max_len - 1, pad_token_id=tokenizer.pad_token_id,
            )
            for row in out[:, 1:]:
                text = tokenizer.decode(row, skip_special_tokens=True).strip()
                if text and len(texts) < n:
                    texts.append(text)
                    if progress is not None:
                        progress(1)
    finally:
        torch.random.set_rng_state(generator_state)
    return texts
