"""Shared fixtures: tiny random causal LMs with offline-trained tokenizers (no network, seconds to build).

tests/ mirrors the package: unit/<stage>/ (and unit/ for the shared modules) tests components, commands/ goes
through `e2wm <command>`, recipes/ calls a recipe's Python API, helpers/ holds what several folders share;
package-wide checks (architecture, configs, CLI options, README) stay at the top."""

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BENCHMARK = SHARED / "e2wm-benchmark"

CORPUS = [
    "Walk to kitchen. Grab cup. Open fridge. Put cup in fridge. Close fridge.",
    "Q: How to brush teeth? Given items include toothbrush, bathroom, faucet.",
    "A: Walk to bathroom. Grab toothbrush. Turn on faucet. Rinse toothbrush and mouth.",
    "Question: What is the order of the rooms where the wallet appeared?",
    "Answer: hallway, dining room, bathroom, kitchen, bedroom, home office",
    "There are 3 items on the table. They are the apple, the cup, and the plate.",
    "John picked up the apple. Mary went to the office. How many items are there?",
    "Given a task plan: Switch on tv. Look at painting. What is the name of this task?",
] * 20


@pytest.fixture(autouse=True)
def float32_by_default(monkeypatch):
    """`e2wm train`'s default `--autocast auto` computes in bf16 on a CPU with native bf16; the tests compare
    training with float32 computations, so here auto stays float32 (tests of auto itself call the saved
    `e2wm.models.auto_bf16` as `float32_by_default.real`; processes a test starts are not patched)."""
    import e2wm.models

    real = e2wm.models.auto_bf16
    monkeypatch.setattr(e2wm.models, "auto_bf16", lambda device, weights: False)
    return real


def train_tokenizer(style: str, directory: Path):
    """A small tokenizer trained here: 'bpe' (GPT-2 style byte-level) or 'sentencepiece' (Metaspace, with BOS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if style == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
        tok.train_from_iterator(CORPUS, trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"])
        tok.train_from_iterator(CORPUS, trainer)
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.pad_token = fast.eos_token
    fast.save_pretrained(directory)
    return fast


def build_tiny_model(directory: Path, style: str = "bpe", arch: str = "llama", seed: int = 0) -> Path:
    """Save a tiny random causal LM (llama or gpt2 architecture) plus tokenizer to directory."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(style, directory)
    vocab = len(tokenizer)
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        )
    else:
        config = GPT2Config(
            vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=512,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny Llama with a SentencePiece-style (Metaspace, BOS-adding) tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), style="sentencepiece", arch="llama")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A tiny GPT-2 with a byte-level BPE tokenizer (fan-in-fan-out Conv1D layers)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), style="bpe", arch="gpt2")


@pytest.fixture
def benchmark_dir() -> Path:
    if not BENCHMARK.is_dir():
        pytest.skip(f"{BENCHMARK} is absent (the released E2WM data is only beside a developer checkout)")
    return BENCHMARK
