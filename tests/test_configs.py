"""Every shipped config loads against the parser of its command, so a renamed option breaks this test."""

from pathlib import Path

import pytest

from e2wm.cli import command_parser, load_config
from e2wm.train.data import parse_mixture

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MODELS = ["gpt-neo-1.3b", "gpt-j-6b", "smollm2-135m", "llama-3.2-1b"]
PAPER_MIXTURE = {"plan_gen": 1.0, "act_recog": 0.7, "count": 1.0, "obj_move": 1.0}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("command", ["fisher", "train", "eval"])
def test_config_fits_its_command(model, command):
    parser, _ = command_parser(command)
    values = load_config(str(CONFIGS / model / f"{command}.yaml"), parser)
    parser.set_defaults(**values)
    args = parser.parse_args([])  # every required option comes from the file
    assert args.model and args.out.startswith(f"runs/{model}")


@pytest.mark.parametrize("model", MODELS)
def test_training_recipe_is_the_papers(model):
    parser, _ = command_parser("train")
    parser.set_defaults(**load_config(str(CONFIGS / model / "train.yaml"), parser))
    args = parser.parse_args([])
    assert (args.method, args.lora_r, args.lora_alpha, args.lora_dropout, args.lr) == ("ewc-lora", 8, 32, 0.1, 8e-4)
    assert args.max_len == 800
    weights = {Path(path).stem.removeprefix("train_"): weight for weight, path in parse_mixture(args.train)}
    assert weights == PAPER_MIXTURE
    fisher_parser, _ = command_parser("fisher")
    fisher = load_config(str(CONFIGS / model / "fisher.yaml"), fisher_parser)
    assert args.fisher == fisher["out"] and args.model == fisher["model"]


def test_paper_sizes():
    def train_args(model):
        parser, _ = command_parser("train")
        parser.set_defaults(**load_config(str(CONFIGS / model / "train.yaml"), parser))
        return parser.parse_args([])

    neo, gptj = train_args("gpt-neo-1.3b"), train_args("gpt-j-6b")
    assert (neo.batch_size, neo.grad_accum, neo.epochs, neo.lam) == (20, 1, 3, 2.0)
    assert (gptj.batch_size, gptj.grad_accum, gptj.epochs, gptj.lam) == (5, 4, 5, 0.5)
