"""General text (for the Fisher and for perplexity): a JSONL or plain-text file, or a saved HF dataset."""

from pathlib import Path

from e2wm.errors import InputError, at
from e2wm.files import iter_jsonl, read_text, require


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
        texts = read_text(path).split("\n\n")
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
