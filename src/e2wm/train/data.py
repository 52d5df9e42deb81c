"""Training data: the mixture string, E2WM {"input", "ref"} files, ref-token masks and batches.

Training text = input + " " + ref + "\n"; the loss covers the ref tokens (" " + ref + "\n"), each
weighted by its file's mixture weight. With `--chat-template` the text is the model's chat template's rendering
of the input as the user's message and the ref as the assistant's (e2wm.chat.conversation): the loss covers what
follows the opened assistant turn, the ref and the template's end of turn.
Sequences longer than max_len keep their last max_len tokens by default (truncation "left": the ref, the part
that is learnt, survives and the start of a long story is cut); truncation "right" keeps the first max_len
tokens, as the authors' `run.py` did (a ref past max_len is then lost). Batches are random (the authors'
shuffled DataLoader) or, opt-in, length-grouped.
Source: the authors' `run.py` (text f'{inp} {ref}\\n', loss weights = the file's weight on the tokens after the
input, `truncation=True` at max_src_len 800, `DataLoader(shuffle=True)`); the mixture weights are the paper's
section 4.1.
"""

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from e2wm import benchmark_data
from e2wm.benchmark import TRAINING_TASKS, paper_mixture
from e2wm.chat import conversation, starts_with_bos
from e2wm.errors import InputError, at
from e2wm.files import iter_jsonl, require, why_missing

logger = logging.getLogger(__name__)

PAPER_MIXTURE = "paper"  # the --train value that means the paper's four tasks with their weights
TRUNCATIONS = ("left", "right")  # which end of an over-long example is cut


@dataclass
class Example:
    """One tokenised training text: ids, which of them are ref tokens, and its file's weight."""

    ids: list[int]  # at most max_len token ids
    is_ref: list[bool]  # per id: part of " " + ref + "\n" (chat: of ref + end of turn; the loss covers it)
    weight: float  # its file's mixture weight, > 0
    source: str = ""  # the training file it came from

    @property
    def predicted_refs(self) -> int:
        """Ref tokens the loss covers: those after position 0 (nothing predicts the first token)."""
        return sum(self.is_ref[1:])


def parse_mixture(text: str, data_dir: str | Path | None = None) -> list[tuple[float, str]]:
    """'1 a.json 0.7 plan_gen 1 e2wm:count' -> [(1.0, 'a.json'), (0.7, 'DIR/train_plan_gen.jsonl'), (1.0, CACHED)].

    An item that is a known training task's name (e2wm.benchmark) means that task's training file in
    data_dir: train_<task>.jsonl as `e2wm build` writes it, else train_<task>.json as released; with no data_dir,
    the released file in the cache (`e2wm data download`). e2wm:<task> always means the released file in the
    cache, checked against its checksum (e2wm.benchmark_data). The text 'paper' alone is the paper's mixture of
    its four training tasks and weights (e2wm.benchmark). The 'WEIGHT FILE ...' form is the authors' `run.py`
    --train_file (which also took one file without a weight).

    Args:
        text: the --train string, whitespace-separated pairs of weight and file (or task name).
        data_dir: where task names are looked up (--data-dir); None: the released files in the cache.
    Returns:
        (weight, path) per pair, in order; weights are finite and > 0; every file exists (its contents are
        checked by `read_pairs`).
    Raises:
        InputError: when the string is empty or has an odd number of items, a weight is not a number or not
            a finite positive one, a file is missing or a directory, or a task's training file is missing
            (`task_file`, `benchmark_data.cached`).
    """
    given = text
    if text.strip() == PAPER_MIXTURE:
        text = " ".join(f"{weight} {task}" for task, weight in paper_mixture().items())
    tokens = text.split()
    if not tokens or len(tokens) % 2:
        raise InputError(f"--train '{text}': expected pairs 'WEIGHT FILE ...' (got {len(tokens)} items)")
    mixture = []
    for position in range(0, len(tokens), 2):
        weight, path = tokens[position], tokens[position + 1]
        try:
            value = float(weight)
        except ValueError:
            raise InputError(f"--train '{text}': item {position + 1} '{weight}' is not a weight (a number)") from None
        if not value > 0 or value == float("inf"):
            raise InputError(f"--train '{text}': weight '{weight}' of {path} must be a positive number")
        if benchmark_data.is_name(path):
            path = str(benchmark_data.training_path(path.removeprefix(benchmark_data.NAME + ":")))
        elif path in TRAINING_TASKS:
            path = (task_file(path, Path(data_dir)) if data_dir is not None
                    else str(benchmark_data.training_path(path, f"--train '{given}': task {path} (no --data-dir)")))
        elif Path(path).is_dir():
            raise InputError(f"--train: {path}: a directory, not a file")
        elif not Path(path).is_file():  # found before any model is loaded
            raise InputError(f"--train: {path}: {why_missing(path)} (nor a training task: {', '.join(TRAINING_TASKS)})")
        mixture.append((value, path))
    return mixture


def task_file(task: str, data_dir: Path) -> str:
    """The path of a task's training file in data_dir: train_<task>.jsonl, else train_<task>.json.

    Raises:
        InputError: when neither file is there.
    """
    for suffix in (".jsonl", ".json"):
        path = data_dir / f"train_{task}{suffix}"
        if path.is_file():
            return str(path)
    raise InputError(f"--train: task {task}: no train_{task}.jsonl or train_{task}.json in {data_dir} (--data-dir; "
                     f"without it, or as e2wm:{task}, the released file after `e2wm data download`)")


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(input, ref) of each line of an E2WM training file ({"input": str, "ref": str} per line).

    Raises:
        InputError: with file, line and field: the file is missing or has no lines, a line is not a JSON
            object, "input" or "ref" is missing or not a string, or "ref" is blank.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--train: {path}: {why_missing(path)}")
    pairs = []
    for line, record in iter_jsonl(path):
        text = require(record, "input", str, path, line)
        ref = require(record, "ref", str, path, line)
        if not ref.strip():
            raise InputError(f"{at(path, line, 'ref')} is empty")
        pairs.append((text, ref))
    if not pairs:
        raise InputError(f"--train: {path}: the file is empty")
    return pairs


def encode_example(tokenizer, text: str, ref: str, weight: float, max_len: int, truncation: str = "left",
                   source: str = "", chat: bool = False) -> Example:
    """Tokenise input + " " + ref + "\\n" once; ref tokens are those whose characters end past the input.

    Needs a fast tokenizer (`return_offsets_mapping`). A token that straddles the boundary counts as ref;
    special tokens (offsets (0, 0)) never do. The tokenizer's own special tokens are added.
    With chat (the tokenizer has a chat template: `chat.check_template`) the text is
    `chat.conversation`'s rendering of input as the user's turn and ref as the assistant's; ref tokens are those
    ending past the opened assistant turn (the ref and the template's end of turn, e.g. "<|im_end|>\\n"). The
    tokenizer's special tokens are then added only when the rendering does not start with its BOS already
    (lm-evaluation-harness's `has_bos_prefix`).

    Args:
        text, ref: the training line's "input" and "ref".
        weight: its file's mixture weight.
        max_len: the most tokens kept.
        truncation: "left" keeps the last max_len tokens (the ref's end); "right" the first max_len (the
            authors' run.py: a long input pushes its ref out, and such an example adds no loss).
        source: the file it came from (kept on the Example).
        chat: wrap the text in the tokenizer's chat template (`--chat-template`).
    Returns:
        an Example with ids and is_ref of the same length, at most max_len.
    """
    if chat:
        prompt, full = conversation(tokenizer, text, ref)
        special = not starts_with_bos(tokenizer, full)
    else:
        prompt, full, special = text, text + " " + ref + "\n", True
    encoding = tokenizer(full, return_offsets_mapping=True, add_special_tokens=special)
    is_ref = [end > len(prompt) for _, end in encoding["offset_mapping"]]
    ids = list(encoding["input_ids"])
    kept = slice(None, max_len) if truncation == "right" else slice(-max_len, None)
    return Example(ids[kept], is_ref[kept], weight, source)


def load_examples(mixture: list[tuple[float, str]], tokenizer, max_len: int, truncation: str = "left",
                  chat: bool = False) -> list[Example]:
    """All examples of the mixture's files, in file order, each file's lines with its weight and path; with chat
    wrapped in the tokenizer's chat template (`encode_example`).

    Logs a warning per file with examples that lost every ref token to right truncation (they add no loss).

    Raises:
        InputError: from `read_pairs`, for a missing or malformed file; when every example of a file lost its
            ref tokens (the file would add nothing).
    """
    examples = []
    for weight, path in mixture:
        encoded = [encode_example(tokenizer, text, ref, weight, max_len, truncation, path, chat)
                   for text, ref in read_pairs(path)]
        lost = sum(not example.predicted_refs for example in encoded)
        if lost == len(encoded):
            raise InputError(f"--train: {path}: none of its {lost} examples keeps an answer token within --max-len "
                             f"{max_len} (--truncation {truncation}); raise --max-len or use --truncation left")
        if lost:
            logger.warning("%s: %d of %d examples keep no answer token within --max-len %d (--truncation %s): they "
                           "add no loss", path, lost, len(encoded), max_len, truncation)
        examples += encoded
    return examples


def random_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """Indices 0..n-1 shuffled and cut into consecutive batches (the last may be smaller), as a shuffled
    DataLoader draws them (the authors' run.py). Seeded: the same seed gives the same batches."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def sequential_batches(n: int, batch_size: int) -> list[list[int]]:
    """Indices 0..n-1 in order, cut into consecutive batches (the last may be smaller): the examples as the
    training files list them, every epoch, for a curriculum that the files' order states."""
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, group: int = 64) -> list[list[int]]:
    """Indices in batches of similar length: shuffle, sort within groups of group*batch_size, shuffle the batches.

    A batch then holds mostly one task (tasks differ in length): train.loop.Schedule divides such a step's loss
    by a fixed expected weight, so that a file's mixture weight still scales its gradient.

    Seeded by (seed, epoch) through `seed`, so a resumed run rebuilds exactly the same order.

    Args:
        lengths: each example's length, in tokens.
        batch_size: examples per batch (the last batch of a group may be smaller).
        seed: the random.Random seed; the same seed gives the same batches.
        group: batches per length-sorted group (larger: less padding, less randomness).
    Returns:
        batches of example indices; every index appears exactly once.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = group * batch_size
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded to the longest example of the batch: input_ids, attention_mask, token weights.

    weights[b, t] is the weight of predicting token t (0 for non-ref and padding); position 0 is never
    predicted. The run.py equivalent is its label_weights (attention mask * not-input * file weight).

    Returns:
        {"input_ids": (B, T) long, pad_id after each example; "attention_mask": (B, T) long, 1 on real
        tokens; "weights": (B, T) float32, the example's weight on its ref tokens, 0 elsewhere and at t = 0},
        on the CPU. B = len(examples), T = the longest example's length, in tokens.
    """
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(examples), width), dtype=torch.long)  # (B, T)
    weights = torch.zeros((len(examples), width), dtype=torch.float32)  # (B, T)
    for row, example in enumerate(examples):
        n = len(example.ids)
        ids[row, :n] = torch.tensor(example.ids)
        mask[row, :n] = 1
        weights[row, :n] = torch.tensor(example.is_ref, dtype=torch.float32) * example.weight
    weights[:, 0] = 0.0  # nothing predicts the first token
    return {"input_ids": ids, "attention_mask": mask, "weights": weights}


def ref_weight(examples: list[Example]) -> float:
    """Sum of token weights over predicted ref tokens (the step loss's denominator).

    Equals collate(examples, pad_id)["weights"].sum(): sum over examples of weight * (ref tokens after
    position 0). A step's cross-entropy is the weighted_nll_sum of its batches / this: nats per weighted ref token.
    """
    return sum(e.weight * e.predicted_refs for e in examples)


def ref_tokens(examples: list[Example]) -> int:
    """Number of predicted ref tokens (after position 0): the authors' micro-batch denominator
    (run.py: `torch.sum(label_weights > 0)`)."""
    return sum(e.predicted_refs for e in examples)
