"""Decoding that means what it says (transformers issue 29080): `e2wm eval` decodes greedily (or with beams) and the
Fisher's model samples are drawn with e2wm's settings, whatever the model's generation_config.json asks for
(sampling, temperature, penalties, no-repeat n-grams, minimum lengths); what was ignored is logged and recorded."""

import json
import shutil
import sys
import types

import pytest
import torch
from helpers.decoding import naive_greedy
from helpers.files import write

from e2wm.cli import main
from e2wm.eval import generation, vllm_backend
from e2wm.eval.encoding import encode
from e2wm.models import ModelSpec, load_model
from e2wm.train.corpus import sample_texts

# what some Hub models ship: each of these changes "greedy" decoding when generate() follows the file
SAMPLING = {"do_sample": True, "temperature": 3.0, "top_k": 0, "repetition_penalty": 5.0,
            "no_repeat_ngram_size": 1, "min_new_tokens": 4}
PROMPTS = ["Q: How to brush teeth?\nA:", "Walk to kitchen. Grab cup.", "Question: How many items are there?\nAnswer:",
           "Given a task plan: Switch on tv.", "John picked up the apple. Mary"]


@pytest.fixture(scope="module")
def sampling_gpt2(tiny_gpt2, tmp_path_factory):
    """The tiny GPT-2 whose generation_config.json asks for sampling and decoding penalties."""
    model_dir = tmp_path_factory.mktemp("sampling") / "model"
    shutil.copytree(tiny_gpt2, model_dir)
    config = json.loads((model_dir / "generation_config.json").read_text())
    (model_dir / "generation_config.json").write_text(json.dumps(config | SAMPLING))
    return model_dir


def eval_predictions(model_dir, tmp_path, name: str, *extra) -> tuple[list[str], dict]:
    data = write(tmp_path / "gen" / "plan_gen.json", [{"input": p, "ref": "Walk to bathroom."} for p in PROMPTS])
    out = tmp_path / name
    main(["eval", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--max-new-tokens", "10",
          *map(str, extra)])
    rows = [json.loads(line) for line in (out / "predictions" / "plan_gen.jsonl").read_text().splitlines()]
    return [row["prediction"] for row in rows], json.loads((out / "config.json").read_text())


@pytest.mark.parametrize("batch_size", [1, 4])
def test_eval_decodes_greedily_whatever_the_generation_config(sampling_gpt2, tmp_path, capsys, batch_size):
    predictions, record = eval_predictions(sampling_gpt2, tmp_path, "run", "--batch-size", batch_size)
    model, tokenizer = load_model(ModelSpec(str(sampling_gpt2), device="cpu"))
    assert model.generation_config.repetition_penalty == 5.0  # the file is read, and left as it is after decoding
    assert predictions == [naive_greedy(model, tokenizer, p, 10) for p in PROMPTS]
    assert len(set(predictions)) > 1 and any(predictions)  # a real check: varied, non-empty continuations
    assert record["ignored_generation_config"] == SAMPLING
    printed = capsys.readouterr().out
    assert printed.count("generation_config.json settings ignored") == 1
    assert json.dumps(SAMPLING, sort_keys=True) in printed


def test_plain_generation_config_is_not_reported(tiny_gpt2, tmp_path):
    _, record = eval_predictions(tiny_gpt2, tmp_path, "run")
    assert record["ignored_generation_config"] == {}


def test_beam_search_ignores_the_generation_config(sampling_gpt2, tiny_gpt2, tmp_path):
    penalised, _ = eval_predictions(sampling_gpt2, tmp_path, "penalised", "--num-beams", 3, "--batch-size", 2)
    plain, _ = eval_predictions(tiny_gpt2, tmp_path, "plain", "--num-beams", 3, "--batch-size", 2)
    assert penalised == plain  # the same weights: only the generation_config.json differs


def test_adapter_decodes_greedily_and_leaves_the_configs_alone(sampling_gpt2):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model(ModelSpec(str(sampling_gpt2), device="cpu"))
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["c_attn"], init_lora_weights=False)).eval()
    base_config = peft_model.get_base_model().generation_config
    prompts = [encode(tokenizer, p) for p in PROMPTS]
    texts = generation.generate(peft_model, tokenizer, prompts, max_new_tokens=10, batch_size=2)
    assert [generation.first_line(t) for t in texts] == [naive_greedy(peft_model, tokenizer, p, 10) for p in PROMPTS]
    assert peft_model.get_base_model().generation_config is base_config  # restored, not replaced
    assert "generation_config" not in vars(peft_model)  # nothing set on the wrapper
    assert generation.ignored_model_settings(peft_model, tokenizer, 10, 1) == SAMPLING


def test_model_samples_follow_e2wm_settings_only(sampling_gpt2, tiny_gpt2):
    penalised, tokenizer = load_model(ModelSpec(str(sampling_gpt2), device="cpu"))
    plain, _ = load_model(ModelSpec(str(tiny_gpt2), device="cpu"))
    texts = sample_texts(penalised, tokenizer, 4, max_len=12, seed=5, batch_size=2)
    assert texts == sample_texts(plain, tokenizer, 4, max_len=12, seed=5, batch_size=2)
    assert penalised.generation_config.temperature == 3.0  # the model's file is left as it is


def test_vllm_engine_reads_no_generation_config(monkeypatch):
    """vLLM (0.8 on) merges the model's generation_config.json into every request unless told "vllm"; vLLM needs a
    CUDA GPU, so the engine is a stand-in that records what it was given."""
    seen = {}

    class LLM:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    vllm_backend.VllmGenerator("some/model", None, "float32", 128)
    assert seen["generation_config"] == "vllm" and seen["model"] == "some/model"


def test_what_the_model_s_file_sets_is_recorded_as_valid_json():
    """A temperature of 1e999 (JSON's Infinity, which Python reads) is recorded as the string "Infinity", so
    config.json stays standard JSON."""
    import json as json_module

    from transformers import GenerationConfig

    from e2wm.decoding import ignored_settings

    class Model:
        generation_config = GenerationConfig(temperature=float("inf"), top_k=7)

    ignored = ignored_settings(Model(), GenerationConfig(max_new_tokens=4))
    assert ignored == {"temperature": "Infinity", "top_k": 7}
    json_module.dumps(ignored, allow_nan=False)
