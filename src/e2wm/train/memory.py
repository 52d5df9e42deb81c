"""Expected training memory, from a model's config alone (a meta-device model: shapes, no weights).

Components: base weights (dtype, or 8/4-bit linear layers), trainable parameters with their gradients and
AdamW states, the Fisher (the ewc regulariser: the adapted matrices in float32; full EWC adds the starting
weights), the EWC term's saved deltas, the regularisers' own tensors (kl: the base pass's logits and the
log-probabilities both distributions keep for backward; replay: the activations of its texts' forward pass), and
activations saved for backward, with and without gradient checkpointing. Activations are an estimate: per
token and layer, the tensors the forward keeps for backward (norm inputs, attention q/k/v/output with fused
attention kernels, MLP activations, LoRA inputs), the float32 logits, their log-softmax and both gradients,
and, for eager attention (and PyTorch's CPU path), the heads x length^2 attention probabilities of every
layer. The peak is the fixed part (weights, trainable parameters and gradients, Fisher) plus the larger of the
backward phase (activations, EWC deltas, the regularisers' tensors) and the AdamW states, which are made at
the first update, after the activations are freed. Not included: the CUDA context and allocator slack
(typically 0.5-1 GiB).
"""

from dataclasses import asdict, dataclass

import torch

from e2wm.errors import InputError
from e2wm.methods import method_label, regulariser_names
from e2wm.models import resolve_model_path
from e2wm.train.config import PlanMemoryConfig
from e2wm.train.rehearsal import texts_per_step
from e2wm.train.targets import default_target_names, no_targets, parse_modules

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class ModelShapes:
    """What the estimate needs to know about a model, read off a meta-device instance."""

    params: int
    linear_params: int  # in Linear/Conv1D layers other than the output head (what 8/4-bit quantises)
    layers: int
    hidden: int
    kv_dim: int
    heads: int
    intermediate: int
    vocab: int
    gated_mlp: bool
    targets: list[tuple[int, int]]  # (out, in) of each adapted matrix


@dataclass
class MemoryPlan:
    weights: int
    adapter: int  # LoRA parameters (0 for full finetuning, whose trainable parameters are the weights)
    gradients: int
    optimizer: int
    fisher: int
    ewc_saved: int
    kl: int  # the KL anchor's base logits and log-probabilities (float32), 0 without it
    replay: int  # the replay texts' activations (their share of the activations), 0 without it
    activations: int
    activations_checkpointed: int

    def total(self, checkpointing: bool) -> int:
        fixed = self.weights + self.adapter + self.gradients + self.fisher
        activations = self.activations_checkpointed if checkpointing else self.activations
        scale = 1 + self.replay / max(self.activations, 1)  # the replay batch is checkpointed the same way
        return fixed + max(self.optimizer, round(activations * scale) + self.ewc_saved + self.kl)


def model_shapes(config, target_names: list[str] | None = None) -> ModelShapes:
    """Build the model on the meta device and read its shapes (no memory, no weights).

    target_names default to PEFT's LoRA target modules for the architecture.
    """
    from transformers import AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    target_names = target_names or default_target_names(model)
    head = model.get_output_embeddings()
    linear_params, targets, gated = 0, [], False
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear | Conv1D) or module is head:
            continue
        linear_params += module.weight.numel()
        short = name.rsplit(".", 1)[-1]
        gated = gated or short in ("gate_proj", "w1", "gate_up_proj")
        if short in target_names:
            rows, cols = module.weight.shape
            targets.append((cols, rows) if isinstance(module, Conv1D) else (rows, cols))
    text = config.get_text_config()
    hidden = text.hidden_size
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    intermediate = getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * hidden
    return ModelShapes(
        params=sum(p.numel() for p in model.parameters()), linear_params=linear_params,
        layers=text.num_hidden_layers, hidden=hidden, kv_dim=kv_heads * head_dim, heads=heads,
        intermediate=intermediate,
        vocab=text.vocab_size, gated_mlp=gated, targets=targets,
    )


def weight_bytes(shapes: ModelShapes, dtype: str, quant: str | None) -> int:
    """Base weights: all in dtype, or linear layers in 8-bit (1 B + row scales) / 4-bit NF4 (0.5 B + absmax)."""
    element = DTYPE_BYTES[dtype]
    if quant is None:
        return shapes.params * element
    rest = (shapes.params - shapes.linear_params) * element
    if quant == "8bit":
        return rest + shapes.linear_params + 4 * sum(out for out, _ in shapes.targets)
    return rest + shapes.linear_params // 2 + shapes.linear_params // 64 * 4


def activation_bytes_per_token_layer(shapes: ModelShapes, element: int, method: str, lora_r: int) -> int:
    """Bytes one token keeps for backward in one decoder layer (see the module docstring)."""
    h, kv, i = shapes.hidden, shapes.kv_dim, shapes.intermediate
    saved = 2 * h + (2 * h + 2 * kv)  # two norm inputs; attention q, k, v and output
    saved += 3 * i if shapes.gated_mlp else i  # SiLU input and both factors of the gate product / GELU input
    if method == "full":
        saved += 2 * h + i  # inputs of every linear layer: normed states and the down projection's input
    elif method == "osf":  # factored like LoRA: base(x) + (x @ B^T) @ A^T, B of rank lora_r = 2 (m - k)
        saved += len(shapes.targets) // shapes.layers * (h + lora_r)
    else:
        per_layer_targets = len(shapes.targets) // shapes.layers
        saved += per_layer_targets * (h + lora_r)  # LoRA: dropout output into A, A's output into B
        return saved * element + per_layer_targets * h  # plus the dropout masks, a byte per element
    return saved * element


def plan_memory(shapes: ModelShapes, adapter_kind: str, batch_size: int, max_len: int, dtype: str = "float32",
                quant: str | None = None, lora_r: int = 8, regularisers: tuple[str, ...] = ("ewc",),
                attention: str = "fused", replay_texts: int = 0) -> MemoryPlan:
    """The expected peak memory of one training step, by component, in bytes.

    adapter_kind: "lora", "osf" or "full" (e2wm.methods.ADAPTERS); regularisers: names among
    e2wm.methods.REGULARISERS; replay_texts: the replay regulariser's texts per step (of max_len tokens at most).
    OSF (PEFT's defaults): per adapted (out, in) weight, the trained low part of its SVD, U (out, m - k), S (m - k)
    and V (m - k, in) with m = min(out, in) and k = m // 2 frozen directions, in float32, plus PEFT's copy of their
    starting values (counted in `adapter`); its forward is factored as LoRA's, through a rank 2 (m - k)."""
    method = adapter_kind
    ewc = "ewc" in regularisers
    element = DTYPE_BYTES[dtype]
    weights = weight_bytes(shapes, dtype, quant)
    target_elements = sum(out * inp for out, inp in shapes.targets)
    if method == "full":
        adapter = 0
        gradients = shapes.params * element
        optimizer = 2 * gradients  # AdamW moments in the parameters' dtype
        fisher = 2 * 4 * target_elements if ewc else 0  # Fisher and starting weights, float32
        ewc_saved = 4 * target_elements if ewc else 0
    elif method == "osf":
        trained = 4 * sum((out + inp + 1) * (min(out, inp) - min(out, inp) // 2) for out, inp in shapes.targets)
        adapter = 2 * trained  # the trained factors and their starting copies
        gradients = trained
        optimizer = 2 * trained
        fisher = 4 * target_elements if ewc else 0
        ewc_saved = 4 * target_elements if ewc else 0
    else:
        adapter = 4 * sum(lora_r * (out + inp) for out, inp in shapes.targets)  # PEFT keeps adapters in float32
        gradients = adapter
        optimizer = 2 * adapter
        fisher = 4 * target_elements if ewc else 0
        ewc_saved = 4 * target_elements if ewc else 0  # dW of every layer, kept for backward
    tokens = batch_size * max_len
    rank = lora_r
    if method == "osf":  # the mean factored rank of the adapted weights
        rank = round(sum(2 * (min(o, i) - min(o, i) // 2) for o, i in shapes.targets) / len(shapes.targets))
    layer = tokens * activation_bytes_per_token_layer(shapes, element, method, rank)
    if attention == "eager":
        layer += batch_size * shapes.heads * max_len * max_len * element  # attention probabilities
    logits = tokens * shapes.vocab * 4 * 4  # float32 logits, log-softmax, and their gradients
    activations = shapes.layers * layer + logits
    checkpointed = tokens * shapes.layers * shapes.hidden * element + layer + logits  # inputs + one layer redone
    kl = tokens * shapes.vocab * 4 * 4 if "kl" in regularisers else 0  # base logits, log q, log p, p: all tokens
    replay = round(activations * replay_texts / batch_size) if "replay" in regularisers else 0
    return MemoryPlan(weights, adapter, gradients, optimizer, fisher, ewc_saved, kl, replay, activations,
                      checkpointed)


def format_plan(plan: MemoryPlan, title: str) -> str:
    """A readable table in GiB."""
    lines = [title, ""]
    rows = asdict(plan)
    names = {"weights": "base weights", "adapter": "adapter (LoRA, or OSF's factors)", "gradients": "gradients",
             "optimizer": "AdamW (or MoFO) states", "fisher": "Fisher (+ start weights for full)",
             "ewc_saved": "EWC deltas kept for backward", "kl": "KL anchor logits and log-probabilities",
             "replay": "replay texts' activations", "activations": "activations",
             "activations_checkpointed": "activations, gradient checkpointing"}
    for key, label in names.items():
        lines.append(f"  {label:<38} {rows[key] / GIB:9.3f} GiB")
    lines.append(f"  {'total':<38} {plan.total(False) / GIB:9.3f} GiB")
    lines.append(f"  {'total with gradient checkpointing':<38} {plan.total(True) / GIB:9.3f} GiB")
    lines.append("  (plus the CUDA context and allocator slack, typically 0.5-1 GiB)")
    return "\n".join(lines)


def plan_for(config: PlanMemoryConfig) -> tuple[MemoryPlan, str]:
    """(the plan, a one-line title) for `e2wm plan-memory`: reads only the model's config (no weights).

    Raises InputError when the model's config cannot be read or no module has the --modules names.
    """
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(resolve_model_path(config.model))
    except OSError as error:
        raise InputError(f"--model {config.model}: cannot read its config ({str(error).splitlines()[0]})") from None
    names = parse_modules(config.modules)
    shapes = model_shapes(model_config, names)
    if not shapes.targets:
        raise no_targets(names or [])
    quant = "8bit" if config.load_in_8bit else "4bit" if config.load_in_4bit else None
    regularisers = tuple(regulariser_names(config.regularisers))
    replay_texts = texts_per_step(config.replay_ratio, config.batch_size) if "replay" in regularisers else 0
    plan = plan_memory(shapes, config.adapter_kind, config.batch_size, config.max_len, config.dtype, quant,
                       config.lora_r, regularisers, attention=config.attention, replay_texts=replay_texts)
    title = (f"{config.model}: {method_label(config.adapter_kind, list(regularisers))}, batch {config.batch_size} x "
             f"{config.max_len} tokens, {config.dtype}"
             f"{', ' + quant if quant else ''}; {shapes.params / 1e6:.1f}M parameters, "
             f"{len(shapes.targets)} adapted matrices")
    return plan, title
