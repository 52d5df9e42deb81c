"""`e2wm fisher`: the diagonal Fisher of a model's LoRA target weights on general text, resumable."""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from e2wm.errors import InputError
from e2wm.files import read_jsonl, write_jsonl
from e2wm.models import add_model_arguments, load_model, spec_from_args
from e2wm.train.corpus import MODEL_SAMPLES, read_corpus, sample_texts
from e2wm.train.fisher import (
    FisherHeader,
    accumulate,
    encode_texts,
    prepare_for_fisher,
    save_fisher,
    zero_sums,
)
from e2wm.train.targets import default_target_names, parse_modules, target_layers


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--corpus", default=MODEL_SAMPLES,
                        help=f"JSONL with 'text', a plain-text file (one text per paragraph), a saved HF dataset "
                        f"directory, or '{MODEL_SAMPLES}'")
    parser.add_argument("--n", type=int, default=1000, help="number of texts (the paper: 20000)")
    parser.add_argument("--max-len", type=int, default=800, help="tokens per text at most")
    parser.add_argument("--modules", help="comma-separated module names (default: PEFT's LoRA targets)")
    parser.add_argument("--batch-size", type=int, default=8, help="texts per batch (sampling and gradients)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model samples")
    parser.add_argument("--save-every", type=int, default=200, help="checkpoint the partial sums every N texts")
    parser.add_argument("--write-samples", help="also write the texts used to this JSONL file")
    parser.add_argument("--samples-only", action="store_true", help="only draw/write the texts (needs --write-samples)")
    parser.add_argument("--out", required=True, help="output .safetensors file")


def run(args) -> None:
    if args.n < 1 or args.max_len < 2 or args.batch_size < 1 or args.save_every < 1:
        raise InputError("--n, --batch-size and --save-every must be >= 1 and --max-len >= 2")
    if args.samples_only and not args.write_samples:
        raise InputError("--samples-only needs --write-samples FILE")
    if args.adapter:
        raise InputError("--adapter: the Fisher is of the base model; leave --adapter out")
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    texts = None if args.corpus == MODEL_SAMPLES else read_corpus(args.corpus)
    model, tokenizer = load_model(spec_from_args(args))
    names = parse_modules(args.modules) or default_target_names(model)
    layers = target_layers(model, names)
    header = FisherHeader(
        base_model=args.model, modules=names, shapes={k: list(v.weight.shape) for k, v in layers.items()},
        n=args.n, corpus=args.corpus, max_len=args.max_len, dtype=args.dtype, seed=args.seed,
    )
    sums, done = resume(partial, header)
    if texts is None:
        texts = model_samples(model, tokenizer, args, partial)
    if args.write_samples:
        write_jsonl(args.write_samples, [{"text": text} for text in texts])
    if args.samples_only:
        print(f"wrote {len(texts)} texts to {args.write_samples}")
        return
    sequences = encode_texts(tokenizer, texts, args.max_len)[: args.n]
    if len(sequences) < args.n:
        print(f"the corpus has {len(sequences)} usable texts (>= 2 tokens); using all of them")
    sums = sums or zero_sums(layers)
    prepare_for_fisher(model, layers)
    with tqdm(total=len(sequences), initial=done, desc="fisher", unit="text") as bar:
        while done < len(sequences):
            chunk = sequences[done : done + args.save_every]
            accumulate(model, layers, chunk, tokenizer.pad_token_id, sums, args.batch_size, bar.update)
            done += len(chunk)
            save_partial(partial, sums, done, header)
    header.n = done
    save_fisher(out, {name: total / done for name, total in sums.items()}, header)
    shutil.rmtree(partial, ignore_errors=True)
    size = sum(t.numel() for t in sums.values())
    print(f"wrote {out}: {len(sums)} matrices, {size:,} values, N={done}")


def fingerprint(header: FisherHeader) -> str:
    return json.dumps(asdict(header), sort_keys=True)


def resume(partial: Path, header: FisherHeader) -> tuple[dict[str, torch.Tensor] | None, int]:
    """(partial sums, texts done) from an interrupted run with the same settings, else (None, 0)."""
    sums_file = partial / "sums.safetensors"
    if not sums_file.is_file():
        return None, 0
    with safe_open(str(sums_file), framework="pt") as handle:
        metadata = handle.metadata()
        if metadata.get("settings") != fingerprint(header):
            raise InputError(
                f"{partial}: a partial Fisher with other settings is there; delete it or choose another --out"
            )
        sums = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    done = int(metadata["done"])
    print(f"resuming from {partial}: {done} texts done")
    return sums, done


def save_partial(partial: Path, sums: dict[str, torch.Tensor], done: int, header: FisherHeader) -> None:
    partial.mkdir(parents=True, exist_ok=True)
    staging = partial / "sums.safetensors.tmp"
    save_file(sums, str(staging), metadata={"done": str(done), "settings": fingerprint(header)})
    staging.replace(partial / "sums.safetensors")


def model_samples(model, tokenizer, args, partial: Path) -> list[str]:
    """The seeded model samples, drawn once and kept beside the partial sums for a resumed run."""
    kept = partial / "samples.jsonl"
    if kept.is_file():
        return [record["text"] for record in read_jsonl(kept)]
    with tqdm(total=args.n, desc="sampling", unit="text") as bar:
        texts = sample_texts(model, tokenizer, args.n, args.max_len, args.seed, args.batch_size, bar.update)
    if not args.samples_only:
        write_jsonl(kept, [{"text": text} for text in texts])
    return texts
