"""`e2wm fisher import`: turn a released Fisher checkpoint into an e2wm Fisher file.

The paper's authors published Fisher matrices as Hugging Face model checkpoints whose weights are the
Fisher values (one tensor per parameter, named as in the base model). This keeps only the matrices
LoRA adapts, in float32, checked by name and shape against the base model's config (no weights loaded).
"""

from pathlib import Path

import torch

from e2wm.errors import InputError
from e2wm.models import resolve_model_path
from e2wm.train.fisher import FisherHeader, save_fisher
from e2wm.train.targets import default_target_names, parse_modules, target_layers, weight_shape


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="directory or Hub id of the Fisher checkpoint")
    parser.add_argument("--model", required=True, help="the base model the Fisher belongs to (Hub id or dir)")
    parser.add_argument("--modules", help="comma-separated module names (default: PEFT's LoRA targets)")
    parser.add_argument("--n", type=int, default=0, help="number of texts behind the Fisher, if known")
    parser.add_argument("--out", required=True, help="output .safetensors file")


def checkpoint_files(checkpoint: str) -> list[Path]:
    """The weight files of a checkpoint directory (safetensors preferred), downloading a Hub id first."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        if checkpoint.startswith((".", "/", "~")):
            raise InputError(f"--checkpoint {checkpoint}: no such directory")
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(checkpoint, allow_patterns=["*.safetensors", "*.bin", "*.json"]))
        except Exception as error:  # hub errors come in many types
            raise InputError(f"--checkpoint {checkpoint}: cannot fetch ({str(error).splitlines()[0]})") from None
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    if not files:
        raise InputError(f"--checkpoint {checkpoint}: no *.safetensors or pytorch_model*.bin files in {path}")
    return files


def read_tensors(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            part = load_file(str(file)) if file.suffix == ".safetensors" else torch.load(file, weights_only=True)
        except Exception as error:  # corrupt or foreign files
            raise InputError(f"{file}: cannot read ({str(error).splitlines()[0]})") from None
        tensors.update(part)
    return tensors


def find_tensor(tensors: dict[str, torch.Tensor], module: str) -> torch.Tensor | None:
    """The checkpoint's tensor for module's weight: same name, or the one name that ends like it."""
    exact = tensors.get(module + ".weight")
    if exact is not None:
        return exact
    tail = "." + module.split(".", 1)[-1] + ".weight"
    matches = [name for name in tensors if name.endswith(tail) or ("." + name).endswith(tail)]
    return tensors[matches[0]] if len(matches) == 1 else None


def import_fisher(checkpoint: str, model: str, modules: list[str] | None, out: str, n: int = 0) -> FisherHeader:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(resolve_model_path(model))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    names = modules or default_target_names(skeleton)
    layers = target_layers(skeleton, names)
    tensors = read_tensors(checkpoint_files(checkpoint))
    fisher, source_dtypes = {}, set()
    for name, layer in layers.items():
        tensor = find_tensor(tensors, name)
        if tensor is None:
            raise InputError(f"--checkpoint {checkpoint}: no tensor for {name}.weight (a Fisher of another model?)")
        if tuple(tensor.shape) != weight_shape(layer):
            raise InputError(f"--checkpoint {checkpoint}: {name}.weight has shape {list(tensor.shape)} but the "
                             f"model's is {list(weight_shape(layer))}")
        if not torch.isfinite(tensor).all() or (tensor < 0).any():
            raise InputError(f"--checkpoint {checkpoint}: {name}.weight has negative or non-finite values")
        source_dtypes.add(str(tensor.dtype).removeprefix("torch."))
        fisher[name] = tensor.float()
    header = FisherHeader(
        base_model=model, modules=names, shapes={k: list(weight_shape(v)) for k, v in layers.items()}, n=n,
        corpus=f"imported from {checkpoint}", max_len=0, dtype="float32",
        extra={"source": checkpoint, "source_dtype": sorted(source_dtypes)},
    )
    save_fisher(out, fisher, header)
    return header


def run(args) -> None:
    header = import_fisher(args.checkpoint, args.model, parse_modules(args.modules), args.out, args.n)
    values = sum(torch.Size(shape).numel() for shape in header.shapes.values())
    print(f"wrote {args.out}: {len(header.shapes)} matrices ({','.join(header.modules)}), {values:,} values, "
          f"from {args.checkpoint}")
