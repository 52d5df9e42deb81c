"""Every shipped config loads into the typed config of its command, so a renamed option breaks this test."""

from pathlib import Path

import pytest

from e2wm.benchmark import paper_mixture
from e2wm.cli import parse
from e2wm.train.data import parse_mixture

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MODELS = ["gpt-neo-1.3b", "gpt-j-6b", "smollm2-135m", "llama-3.2-1b"]


def load(model: str, command: str, file: str | None = None):
    return parse(command, ["--config", str(CONFIGS / model / f"{file or command}.yaml")])[0]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("command", ["fisher", "train", "eval"])
def test_config_fits_its_command(model, command):
    config = load(model, command)  # every required option comes from the file, every value passes its checks
    assert config.model and config.out.startswith(f"runs/{model}")


@pytest.mark.parametrize("model", MODELS)
def test_training_recipe_is_the_papers(model, tmp_path):
    config = load(model, "train")
    assert (config.method, config.lora_r, config.lora_alpha, config.lora_dropout, config.lr) == (
        "ewc-lora", 8, 32, 0.1, 8e-4)
    assert config.max_len == 800 and config.data_dir is None  # the released files, from `e2wm data download`
    assert config.fisher_scale == "paper"  # the lambdas are the scripts', on the authors' 8-bit Fisher codes
    for task in paper_mixture():  # 'paper' means the registry's four tasks and weights, files in --data-dir
        (tmp_path / f"train_{task}.json").write_text("")
    assert config.train == "paper" and parse_mixture(config.train, tmp_path) == [
        (weight, str(tmp_path / f"train_{task}.json")) for task, weight in paper_mixture().items()]
    assert paper_mixture() == {"plan_gen": 1.0, "act_recog": 0.7, "count": 1.0, "obj_move": 1.0}  # section 4.1
    fisher = load(model, "fisher")
    assert config.fisher == fisher.out and config.model == fisher.model


def test_paper_sizes():
    neo, gptj = load("gpt-neo-1.3b", "train"), load("gpt-j-6b", "train")
    assert (neo.batch_size, neo.grad_accum, neo.epochs, neo.lam) == (20, 1, 3, 2.0)
    assert (gptj.batch_size, gptj.grad_accum, gptj.epochs, gptj.lam) == (5, 4, 5, 0.5)
    assert neo.scheduler_steps is None and gptj.scheduler_steps == 5320  # 1064 micro-batches x 5 epochs


@pytest.mark.parametrize("file", ["train", "train-paper-text"])
@pytest.mark.parametrize("model", ["gpt-neo-1.3b", "gpt-j-6b"])
def test_paper_configs_batch_and_normalise_as_the_authors(model, file):
    config = load(model, "train", file)  # run.py: shuffled DataLoader, per-micro-batch loss, AdamW default decay
    assert (config.batching, config.loss_norm, config.weight_decay, config.truncation) == (
        "random", "micro-batch", 0.01, "right")


def test_paper_text_variants_differ_from_the_scripts_only_in_lambda_and_lr():
    for model, lam in (("gpt-neo-1.3b", 0.5), ("gpt-j-6b", 2.0)):
        scripts, text = load(model, "train"), load(model, "train", "train-paper-text")
        assert (text.lam, text.lr) == (lam, 8e-5) and text.out.endswith("train-paper-text")
        same = {k: v for k, v in vars(text).items() if k not in ("lam", "lr", "out")}
        assert same == {k: v for k, v in vars(scripts).items() if k not in ("lam", "lr", "out")}


@pytest.mark.parametrize("model", ["gpt-neo-1.3b", "gpt-j-6b"])
def test_paper_eval_configs_use_the_authors_decoding_and_perplexity(model):
    config = load(model, "eval")
    assert (config.num_beams, config.beam_stop, config.max_new_tokens) == (4, "full", 256)
    assert (config.ppl_mode, config.ppl_texts) == ("paper", 5000)
