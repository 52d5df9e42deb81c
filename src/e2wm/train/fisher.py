"""Diagonal Fisher information of a causal LM's adapted weight matrices.

F = mean over texts of (d loss_text / d W)**2, loss_text being the mean token NLL of one text. The
per-sample gradients come from one batched backward pass: for a linear layer y = x W^T the gradient
of text b is sum_t g[b, t]^T x[b, t], with x the layer's input and g the gradient at its output, both
captured by hooks. Right padding does not leak into them (causal attention, masked loss), so this
equals a loop over the texts one by one (tested), in one batched pass per batch: on a compute-bound
CPU it is as fast as the loop (benchmarks/train_speed.py); on a GPU batching is what fills the device
(not measured here). Transient memory: batch x out x in floats for one layer at a time. Sums
are kept in float32.
Source: the authors' `compute_fisher_matrix.py` (per text, batch size 1: the squared gradient of its mean
token NLL, averaged over 20000 Pile validation texts cut to 800 tokens); the paper's method section (EWC-LoRA).
"""

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import get_origin, get_type_hints

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from e2wm.errors import InputError
from e2wm.files import parse_json, require, usual_permissions, why_missing, writing
from e2wm.train.targets import is_fan_in_fan_out, weight_shape

HEADER_KEY = "e2wm_fisher"


@dataclass
class FisherHeader:
    """What a Fisher file was computed from (stored as JSON in the safetensors metadata)."""

    base_model: str  # the --model it was computed on
    modules: list[str]  # the target names (e.g. q_proj, v_proj)
    shapes: dict[str, list[int]]  # full module name -> its weight's shape
    n: int  # texts averaged over
    corpus: str  # the --corpus (a path, or model-samples); 'imported from ...' for `e2wm fisher import`
    max_len: int  # tokens per text at most (0 for an imported Fisher)
    dtype: str  # the --dtype the model ran in (the sums are float32 whatever it is)
    seed: int = 0
    extra: dict = field(default_factory=dict)


def encode_texts(tokenizer, texts: list[str], max_len: int) -> list[list[int]]:
    """Token ids of each text, cut to its first max_len tokens; texts of fewer than 2 tokens are dropped (no loss).

    The tokenizer's own special tokens are added (`tokenizer(text)`), as in `compute_fisher_matrix.py`.
    """
    encoded = [tokenizer(text).input_ids[:max_len] for text in texts]
    return [ids for ids in encoded if len(ids) >= 2]


def pad_batch(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (ids, attention mask) of the longest sequence's length.

    Returns:
        input_ids: (B, T) long, pad_id after each sequence; attention_mask: (B, T) long, 1 on real tokens.
        B = len(sequences), T = the longest sequence's length, in tokens.
    """
    width = max(len(s) for s in sequences)
    ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences], device=device)  # (B, T) long
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=device)  # (B, T) long
    return ids, mask


def per_text_losses(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each row (padding excluded), the loss_text of the Fisher.

    Args:
        ids: (B, T) long, right-padded; mask: (B, T) long, 1 on real tokens. Each row needs >= 2 real tokens.
    Returns:
        (B,) float32, in nats per predicted token: row b's sum of NLL over its real tokens 1.. / their count,
        as `compute_fisher_matrix.py`'s CrossEntropyLoss (mean over one text's tokens, padding at -100).
        Differentiable (not under no_grad).
    """
    logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V) float32
    # logits[:, :-1]: (B, T - 1, V) predict ids[:, 1:]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T - 1)
    keep = mask[:, 1:].to(nll.dtype)  # (B, T - 1) float32: 1 where the predicted token is real
    return (nll * keep).sum(1) / keep.sum(1)


def squared_grad_sums(model, layers: dict[str, torch.nn.Module], ids, mask) -> dict[str, torch.Tensor]:
    """For each layer, the sum over the batch's texts of the squared per-text weight gradient (float32).

    One forward and one backward pass: hooks capture each layer's input x and output; the gradient g of
    sum_b loss_b at each output is row b's own gradient (rows do not interact), so text b's weight gradient
    is sum_t g[b, t]^T x[b, t], formed for all b at once by an einsum.

    Args:
        layers: full module name -> Linear/Conv1D layer (`target_layers`), weights requiring grad
            (`prepare_for_fisher`).
        ids, mask: (B, T) long each, as from `pad_batch`.
    Returns:
        name -> sum_b (d loss_b / d W)**2, float32 on the layer's device, shape (out, in) for a Linear and
        (in, out) for a Conv1D (the weight's own layout).
    """
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def capture(name):
        def hook(module, args, output):
            inputs[name] = args[0].detach()
            outputs[name] = output
        return hook

    handles = [layer.register_forward_hook(capture(name)) for name, layer in layers.items()]
    try:
        losses = per_text_losses(model, ids, mask)
    finally:
        for handle in handles:
            handle.remove()
    names = list(layers)
    grads = torch.autograd.grad(losses.sum(), [outputs[name] for name in names])  # d sum_b loss_b / d output
    sums = {}
    for name, grad in zip(names, grads):
        x, g = inputs[name].float(), grad.float()  # x: (B, T, in), g: (B, T, out)
        pattern = "bti,bto->bio" if is_fan_in_fan_out(layers[name]) else "bti,bto->boi"
        sums[name] = torch.einsum(pattern, x, g).pow(2).sum(0)  # per-text grads (B, out, in) or (B, in, out), summed
    return sums


def prepare_for_fisher(model, layers: dict[str, torch.nn.Module]) -> None:
    """Gradients flow only to the adapted weights (so their outputs are in the graph); dropout off.

    In place: model.eval(), requires_grad off for every parameter, then on for each layer's weight.
    """
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for layer in layers.values():
        layer.weight.requires_grad_(True)


def accumulate(model, layers, sequences: list[list[int]], pad_id: int, sums: dict[str, torch.Tensor],
               batch_size: int, progress=None) -> None:
    """Add the squared per-text gradients of sequences (in batches) into sums, in place.

    Dividing the sums by the number of texts gives the Fisher (mean over texts), as `e2wm fisher` does.

    Args:
        layers: full module name -> adapted layer, as for `squared_grad_sums`.
        sequences: token ids per text (from `encode_texts`), each of 2..max_len tokens.
        pad_id: right padding id (its positions are masked out of the loss).
        sums: name -> float32 running sum of squared gradients, the weight's shape (from `zero_sums`); each
            batch's contribution is moved to the sum's device and added.
        batch_size: texts per forward/backward pass.
        progress: called with the number of texts done after each batch.
    """
    device = next(model.parameters()).device
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        ids, mask = pad_batch(batch, pad_id, device)
        for name, value in squared_grad_sums(model, layers, ids, mask).items():
            sums[name] += value.to(sums[name].device)
        if progress is not None:
            progress(len(batch))


def zero_sums(layers: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """name -> zeros of the layer's weight shape, float32 on the CPU: the start of `accumulate`'s sums."""
    return {name: torch.zeros(layer.weight.shape, dtype=torch.float32) for name, layer in layers.items()}


def save_fisher(path: str | Path, tensors: dict[str, torch.Tensor], header: FisherHeader) -> None:
    """Write the tensors plus the JSON header atomically (a temporary file, then a rename).

    The file is safetensors: one tensor per full module name (the weight's shape, float32 as e2wm writes it),
    and the header as JSON under the metadata key "e2wm_fisher". Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    try:
        with writing(path):  # a full disk: OSError naming the file (the command's one line)
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(staging),
                      metadata={HEADER_KEY: json.dumps(asdict(header))})
        usual_permissions(staging)
        staging.replace(path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def parse_header(text: str, where: str) -> FisherHeader:
    """The FisherHeader in text (the JSON under HEADER_KEY), checked: a JSON object with every field of
    FisherHeader (seed and extra may be missing), each of its type, and no other field.

    Raises:
        InputError: `WHERE (its e2wm_fisher header): field 'n' must be int, got str` and the like, or bad JSON.
    """
    source = f"{where} (its {HEADER_KEY} header)"
    value = parse_json(text, source)
    if not isinstance(value, dict):
        raise InputError(f"{source}: expected a JSON object, got {type(value).__name__}")
    kinds = header_kinds()
    optional = {f.name for f in fields(FisherHeader) if f.default is not MISSING or f.default_factory is not MISSING}
    known = {name: kind for name, kind in kinds.items() if name in value or name not in optional}
    for name in value:
        if name not in kinds:
            raise InputError(f"{source}: field '{name}' is not a field of an e2wm Fisher header")
    checked = {name: require(value, name, kind, source, None) for name, kind in known.items()}
    if not all(isinstance(module, str) for module in checked["modules"]):
        raise InputError(f"{source}: field 'modules' must hold strings only")
    for name, shape in checked["shapes"].items():
        if not isinstance(shape, list) or not all(isinstance(size, int) for size in shape):
            raise InputError(f"{source}: field 'shapes.{name}' must be a list of integers")
    return FisherHeader(**checked)


def header_kinds() -> dict[str, type]:
    """FisherHeader's fields and the JSON type of each (`list` for list[str], ...), from its annotations."""
    hints = get_type_hints(FisherHeader)
    return {f.name: get_origin(hints[f.name]) or hints[f.name] for f in fields(FisherHeader)}


def load_fisher(path: str | Path) -> tuple[FisherHeader, dict[str, torch.Tensor]]:
    """(header, name -> tensor) of a Fisher file; the tensors as stored (float32 from `e2wm fisher`), on the CPU.

    Raises:
        InputError: (naming --fisher) when the path is not a file, not a safetensors file, has no
            e2wm Fisher header, or a tensor holds a NaN, an infinity or a negative value (a mean of squared
            gradients is finite and >= 0; the paper scale would silently zero such a row, raw would end in NaN).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--fisher {path}: {why_missing(path)}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as error:  # safetensors raises its own error types
        raise InputError(f"--fisher {path}: not a safetensors file ({error})") from None
    if HEADER_KEY not in metadata:
        raise InputError(f"--fisher {path}: no e2wm Fisher header (was it written by `e2wm fisher`?)")
    for name, tensor in tensors.items():
        bad = ~torch.isfinite(tensor) | (tensor < 0)
        if bad.any():
            where = tuple(int(i) for i in bad.nonzero()[0])
            raise InputError(f"--fisher {path}: tensor {name} holds {tensor[where].item()} at {list(where)} "
                             f"({int(bad.sum())} entries not finite or negative; a Fisher is a mean of squares)")
    return parse_header(metadata[HEADER_KEY], f"--fisher {path}"), tensors


def check_fisher(source: str, tensors: dict[str, torch.Tensor], layers: dict[str, torch.nn.Module]) -> None:
    """The Fisher must cover exactly the adapted layers, with the same shapes.

    Args:
        source: the Fisher as messages name it ("--fisher FILE", "Penalties.fisher FILE").
        tensors: name -> Fisher tensor (from `load_fisher`).
        layers: full module name -> layer the run adapts (`target_layers` on the base model).
    Raises:
        InputError: naming the first misfit: a layer without a Fisher tensor, a Fisher tensor without a
            layer, or a shape that differs from the layer's `weight_shape`.
    """
    missing = sorted(set(layers) - set(tensors))
    extra = sorted(set(tensors) - set(layers))
    if missing or extra:
        detail = f"model's {missing[0]} not in the Fisher" if missing else f"Fisher's {extra[0]} not adapted"
        raise InputError(
            f"{source}: its modules do not match the model ({detail}; "
            f"{len(tensors)} Fisher tensors vs {len(layers)} adapted layers)"
        )
    for name, layer in layers.items():
        if tuple(tensors[name].shape) != weight_shape(layer):
            raise InputError(
                f"{source}: {name} has shape {list(tensors[name].shape)} "
                f"but the model's weight is {list(weight_shape(layer))} (a Fisher of another model?)"
            )
