"""Fisher recipes: the diagonal Fisher of a model's LoRA target weights on general text (resumable), and
the import of a released Fisher checkpoint.

    from e2wm import FisherConfig, compute_fisher
    header = compute_fisher(FisherConfig(model="smollm2-135m", n=64, max_len=128, out="fisher.safetensors"))

An interrupted run leaves OUT.partial/ (the partial sums, and the model samples) and resumes from it when
run again with the same result settings (every FisherConfig field not marked result=False).
"""

import json
import logging
import pickle
import shutil
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from e2wm.config import result_settings
from e2wm.errors import InputError
from e2wm.files import output_file, read_jsonl, write_jsonl, writing
from e2wm.locks import output_lock
from e2wm.models import REFUSED, load_model, pad_id, resolve_model_path
from e2wm.prose import is_prose_file
from e2wm.provenance import model_fingerprint, path_digest
from e2wm.text import read_corpus
from e2wm.train.config import FisherConfig, FisherImportConfig
from e2wm.train.corpus import MODEL_SAMPLES, sample_texts
from e2wm.train.fisher import (
    FisherHeader,
    accumulate,
    encode_texts,
    prepare_for_fisher,
    save_fisher,
    zero_sums,
)
from e2wm.train.targets import default_target_names, parse_modules, target_layers, weight_shape

logger = logging.getLogger(__name__)


def compute_fisher(config: FisherConfig) -> FisherHeader | None:
    """Compute the Fisher as config says and write it to config.out; returns its header (None with samples_only).

    Raises InputError on bad input (a corpus without a text of two or more tokens among them), when
    OUT.partial/ holds sums computed with other settings, or when another process is writing config.out
    (`locks.output_lock`). Partial sums of a corpus or model changed in place since are recomputed (`resume`).
    """
    out = output_file(config.out)
    with output_lock(out):  # one writer: a second run on this --out is refused
        partial = out.with_name(out.name + ".partial")
        texts = None if config.corpus == MODEL_SAMPLES else read_corpus(config.corpus)
        if texts is not None and is_prose_file(config.corpus):
            logger.warning("--corpus %s: the human-written prose of `e2wm data prose`, the drift measure; a Fisher on "
                           "it weighs the penalty by the very text that drift is measured on (docs/prose.md: keep "
                           "them apart)", config.corpus)
        model, tokenizer = load_model(config.model_spec())
        names = parse_modules(config.modules) or default_target_names(model)
        layers = target_layers(model, names)
        header = FisherHeader(
            base_model=config.model, modules=names, shapes={k: list(v.weight.shape) for k, v in layers.items()},
            n=config.n, corpus=config.corpus, max_len=config.max_len, dtype=config.dtype, seed=config.seed,
        )
        key, inputs = fingerprint(config, header), input_digests(config)
        sums, done = resume(partial, key, inputs)
        if texts is None:
            texts = model_samples(model, tokenizer, config, partial)
        if config.write_samples:
            write_jsonl(config.write_samples, [{"text": text} for text in texts])
        if config.samples_only:
            logger.info("wrote %d texts to %s", len(texts), config.write_samples)
            return None
        sequences = encode_texts(tokenizer, texts, config.max_len)[: config.n]
        if not sequences:
            raise InputError(f"--corpus {config.corpus}: no text has two or more tokens (nothing to predict)")
        if len(sequences) < config.n:
            logger.warning("the corpus has %d usable texts (>= 2 tokens); using all of them", len(sequences))
        sums = sums or zero_sums(layers)
        prepare_for_fisher(model, layers)
        with tqdm(total=len(sequences), initial=done, desc="fisher", unit="text") as bar:
            while done < len(sequences):
                chunk = sequences[done : done + config.save_every]
                accumulate(model, layers, chunk, pad_id(tokenizer), sums, config.batch_size, bar.update)
                done += len(chunk)
                save_partial(partial, sums, done, key, inputs)
        header.n = done
        save_fisher(out, {name: total / done for name, total in sums.items()}, header)
        shutil.rmtree(partial, ignore_errors=True)
        size = sum(t.numel() for t in sums.values())
        logger.info("wrote %s: %d matrices, %s values, N=%d", out, len(sums), f"{size:,}", done)
        return header


def fingerprint(config: FisherConfig, header: FisherHeader) -> str:
    """What partial sums depend on: the config's result settings and the adapted matrices' shapes."""
    return json.dumps({"settings": result_settings(config), "shapes": header.shapes}, sort_keys=True)


def input_digests(config: FisherConfig) -> str:
    """The content of what partial sums were computed from: the corpus's bytes (a file, or a dataset folder's
    files; nothing for the model's own samples, which the base model's digest covers) and the base model's
    fingerprint (`provenance.model_fingerprint`: its files' digest, or a Hub snapshot's commit)."""
    corpus = None if config.corpus == MODEL_SAMPLES else path_digest(config.corpus)
    return json.dumps({"corpus": corpus, "model": model_fingerprint(config.model)}, sort_keys=True)


def resume(partial: Path, key: str, inputs: str) -> tuple[dict[str, torch.Tensor] | None, int]:
    """(partial sums, texts done) from an interrupted run with the same settings and inputs, else (None, 0).

    Partial sums of the same settings whose corpus or model changed since (same names, other bytes) are
    discarded with a warning, and the Fisher is computed afresh. Raises InputError when OUT.partial/ holds
    sums of other settings (a run the user may still want to finish).
    """
    sums_file = partial / "sums.safetensors"
    if not sums_file.is_file():
        return None, 0
    with safe_open(str(sums_file), framework="pt") as handle:
        metadata = handle.metadata()
        if metadata.get("settings") != key:
            raise InputError(
                f"{partial}: a partial Fisher with other settings is there; delete it or choose another --out"
            )
        if metadata.get("inputs") != inputs:
            logger.warning("%s: its partial sums were computed from another corpus or model content (changed "
                           "in place since); starting over", partial)
            shutil.rmtree(partial)
            return None, 0
        sums = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    done = int(metadata["done"])
    logger.info("resuming from %s: %d texts done", partial, done)
    return sums, done


def save_partial(partial: Path, sums: dict[str, torch.Tensor], done: int, key: str, inputs: str) -> None:
    partial.mkdir(parents=True, exist_ok=True)
    staging = partial / "sums.safetensors.tmp"
    try:
        with writing(partial / "sums.safetensors"):  # a full disk: OSError naming the file
            save_file(sums, str(staging), metadata={"done": str(done), "settings": key, "inputs": inputs})
        staging.replace(partial / "sums.safetensors")
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def model_samples(model, tokenizer, config: FisherConfig, partial: Path) -> list[str]:
    """The seeded model samples, drawn once and kept beside the partial sums for a resumed run."""
    kept = partial / "samples.jsonl"
    if kept.is_file():
        return [record["text"] for record in read_jsonl(kept)]
    with tqdm(total=config.n, desc="sampling", unit="text") as bar:
        texts = sample_texts(model, tokenizer, config.n, config.max_len, config.seed, config.batch_size, bar.update)
    if not config.samples_only:
        write_jsonl(kept, [{"text": text} for text in texts])
    return texts


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
            with warnings.catch_warnings():  # torch warns about a foreign pickle's protocol before refusing it
                warnings.simplefilter("ignore", UserWarning)
                part = load_file(str(file)) if file.suffix == ".safetensors" else torch.load(file, weights_only=True)
        except pickle.UnpicklingError:  # torch's message goes on to suggest weights_only=False
            raise InputError(f"{file}: refused: {REFUSED}") from None
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


def import_fisher(config: FisherImportConfig) -> FisherHeader:
    """Convert the released Fisher checkpoint config.checkpoint into an e2wm Fisher file at config.out.

    The authors published Fisher matrices as Hugging Face model checkpoints whose weights are the Fisher
    values (one tensor per parameter, named as in the base model). This keeps only the matrices LoRA
    adapts, in float32, checked by name and shape against the base model's config (no weights loaded).
    Raises InputError naming the tensor when one is missing, misshapen, negative or not finite.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    checkpoint, model, out = config.checkpoint, config.model, output_file(config.out)

    with output_lock(out):
        model_config = AutoConfig.from_pretrained(resolve_model_path(model))
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(model_config)
        names = parse_modules(config.modules) or default_target_names(skeleton)
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
            base_model=model, modules=names, shapes={k: list(weight_shape(v)) for k, v in layers.items()}, n=config.n,
            corpus=f"imported from {checkpoint}", max_len=0, dtype="float32",
            extra={"source": checkpoint, "source_dtype": sorted(source_dtypes)},
        )
        save_fisher(out, fisher, header)
        return header
