"""`e2wm export merged`: the merged checkpoint computes what base + adapter compute (tied embeddings too, checked
inside the export itself); atomic; --push fails cleanly."""

import json
import os
import socket
import stat

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.pytorch_utils import Conv1D

from e2wm.cli import main
from e2wm.models import ModelSpec, load_model

TEXT = "Walk to kitchen. Grab cup. Open fridge. Put cup in fridge."


def make_adapter(base, folder, modules: list[str]):
    """A LoRA adapter with random (non-zero) A and B, so that merging changes the weights."""
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=modules, init_lora_weights=False,
                        fan_in_fan_out=modules == ["c_attn"])  # PEFT sets it per layer where modules mix
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def export(*args):
    try:
        main(["export", "merged", *map(str, args)])
    except SystemExit as stop:
        return stop.code
    return 0


@torch.no_grad()
def logits(model, tokenizer):
    return model(**tokenizer(TEXT, return_tensors="pt")).logits[0]  # (T, V) float32


@pytest.mark.parametrize(("fixture", "modules"), [("tiny_llama", ["q_proj", "v_proj"]), ("tiny_gpt2", ["c_attn"])])
def test_merged_logits_equal_base_plus_adapter(fixture, modules, request, tmp_path, capsys):
    base = request.getfixturevalue(fixture)
    adapter = make_adapter(base, tmp_path / "adapter", modules)
    out = tmp_path / "merged"
    assert export("--model", base, "--adapter", adapter, "--out", out, "--device", "cpu") == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}: {base} with {adapter} merged in, float32"
    files = sorted(p.name for p in out.iterdir())
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert not any(name.startswith("adapter") for name in files)  # a plain transformers checkpoint, no PEFT files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "merged"]  # no staging folder left
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer(TEXT).input_ids == AutoTokenizer.from_pretrained(base)(TEXT).input_ids
    adapted, _ = load_model(ModelSpec(str(base), str(adapter), device="cpu"))
    plain, _ = load_model(ModelSpec(str(base), device="cpu"))
    expected = logits(adapted, tokenizer)
    assert (logits(merged, tokenizer) - expected).abs().max().item() < 1e-5
    assert (logits(plain, tokenizer) - expected).abs().max().item() > 1e-3  # the adapter really changes them
    # the base ties lm_head to the input embeddings and the adapter leaves both alone: saved tied, as the base is
    assert merged.config.tie_word_embeddings
    assert merged.lm_head.weight.data_ptr() == merged.get_input_embeddings().weight.data_ptr()
    assert "lm_head.weight" not in load_file(str(out / "model.safetensors"))
    card = (out / "README.md").read_text()
    assert card.startswith(f"---\nbase_model: {base}\nlibrary_name: transformers\n")
    assert "merged into the weights of" in card and "merge_and_unload" in card and "saved in float32" in card


@torch.no_grad()
def independent_logits(base, adapter, ids: torch.Tensor) -> torch.Tensor:
    """base + adapter computed by hand: an untied copy of the base whose lm_head starts as the input embeddings,
    each adapted weight plus (alpha / r) B A (transposed for GPT-2's Conv1D, which stores (in, out)), the input
    embeddings left as they are."""
    settings = json.loads((adapter / "adapter_config.json").read_text())
    config = AutoConfig.from_pretrained(base)
    config.tie_word_embeddings = False
    model = AutoModelForCausalLM.from_pretrained(base, config=config).eval()
    model.lm_head.weight.copy_(AutoModelForCausalLM.from_pretrained(base).get_input_embeddings().weight)
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    modules = dict(model.named_modules())
    for key in weights:
        for a, b in (("lora_A", "lora_B"), ("lora_embedding_A", "lora_embedding_B")):
            if key.endswith(f".{a}") or key.endswith(f".{a}.weight"):
                layer = modules[key.removeprefix("base_model.model.").rpartition(f".{a}")[0]]
                delta = settings["lora_alpha"] / settings["r"] * weights[key.replace(a, b)] @ weights[key]
                layer.weight += delta.T if isinstance(layer, (Conv1D, torch.nn.Embedding)) else delta
    return model(ids).logits[0]


@pytest.mark.parametrize(("fixture", "modules"), [("tiny_llama", ["q_proj", "lm_head"]),
                                                  ("tiny_gpt2", ["c_attn", "lm_head"]),
                                                  ("tiny_llama", ["q_proj", "embed_tokens"])])
def test_an_adapter_on_a_tied_weight_is_merged_untied(fixture, modules, request, tmp_path, capsys):
    """lm_head shares the input embeddings' matrix (peft PR 2972): base + adapter changes only the layer adapted
    (the output layer, or the input embeddings), and so must the merged checkpoint, reloaded by plain transformers;
    e2wm's own base + --adapter agrees."""
    base = request.getfixturevalue(fixture)
    adapter = make_adapter(base, tmp_path / "adapter", modules)
    out = tmp_path / "merged"
    assert export("--model", base, "--adapter", adapter, "--out", out, "--device", "cpu") == 0
    assert "saved untied (tie_word_embeddings false, each matrix stored)" in capsys.readouterr().out
    ids = AutoTokenizer.from_pretrained(base)(TEXT, return_tensors="pt").input_ids
    expected = independent_logits(base, adapter, ids)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    plain = AutoModelForCausalLM.from_pretrained(base)
    assert not merged.config.tie_word_embeddings and json.loads((out / "config.json").read_text())[
        "tie_word_embeddings"] is False
    stored = set(load_file(str(out / "model.safetensors")))
    assert "lm_head.weight" in stored and any(k.endswith(("wte.weight", "embed_tokens.weight")) for k in stored)
    output_adapted = "lm_head" in modules  # the other layer is unchanged
    assert torch.equal(merged.get_input_embeddings().weight, plain.get_input_embeddings().weight) == output_adapted
    assert torch.equal(merged.lm_head.weight, plain.lm_head.weight) != output_adapted
    with torch.no_grad():
        assert (merged(ids).logits[0] - expected).abs().max().item() < 1e-4
        assert (plain(ids).logits[0] - expected).abs().max().item() > 0.1  # the adapter really changes them
        adapted, _ = load_model(ModelSpec(str(base), str(adapter), device="cpu"))  # what `e2wm eval` computes
        assert (adapted(ids).logits[0] - expected).abs().max().item() < 1e-4


def test_an_untied_base_exports_as_before(tiny_llama, tmp_path, capsys):
    """A base whose lm_head is its own matrix: merged into both layers that the adapter adapts, stored untied."""
    config = AutoConfig.from_pretrained(tiny_llama)
    config.tie_word_embeddings = False
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, config=config)
    torch.manual_seed(5)
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.05)
    base = tmp_path / "untied"
    model.save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(base)
    adapter = make_adapter(base, tmp_path / "adapter", ["q_proj", "lm_head"])
    out = tmp_path / "merged"
    assert export("--model", base, "--adapter", adapter, "--out", out, "--device", "cpu") == 0
    assert "saved untied" not in capsys.readouterr().out  # nothing was tied
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    adapted, tokenizer = load_model(ModelSpec(str(base), str(adapter), device="cpu"))
    assert not merged.config.tie_word_embeddings
    assert torch.equal(merged.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert (logits(merged, tokenizer) - logits(adapted, tokenizer)).abs().max().item() < 1e-5
    mask = os.umask(0)
    os.umask(mask)
    for file in out.iterdir():  # safetensors writes 0600; the checkpoint gets a new file's usual permissions
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~mask, file


def corrupt_the_merge(monkeypatch):
    """PEFT's merge, then the input embeddings changed: a merge that spills into a weight it should leave alone."""
    from peft.tuners.lora import LoraModel

    real = LoraModel.merge_and_unload

    def merge_and_spill(self, *args, **kwargs):
        merged = real(self, *args, **kwargs)
        with torch.no_grad():
            merged.get_input_embeddings().weight.mul_(1.5)
        return merged

    monkeypatch.setattr(LoraModel, "merge_and_unload", merge_and_spill)


def save_tied(monkeypatch):
    """transformers' save, then the checkpoint made tied again: lm_head.weight dropped and the config saying "tied",
    as a save of a merged tied lm_head did (the embeddings' matrix is then shared again on loading)."""
    from safetensors.torch import save_file
    from transformers import PreTrainedModel

    real = PreTrainedModel.save_pretrained

    def save(self, folder, *args, **kwargs):
        real(self, folder, *args, **kwargs)
        weights = load_file(str(folder / "model.safetensors"))
        del weights["lm_head.weight"]
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {"tie_word_embeddings": True}))

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", save)


@pytest.mark.parametrize(("fault", "what"), [(corrupt_the_merge, "the merged model (in memory)"),
                                             (save_tied, "the saved checkpoint, reloaded with transformers,")])
def test_the_export_checks_itself_and_writes_nothing_wrong(fault, what, tiny_gpt2, tmp_path, capsys, monkeypatch):
    adapter = make_adapter(tiny_gpt2, tmp_path / "adapter", ["c_attn", "lm_head"])
    fault(monkeypatch)
    out = tmp_path / "merged"
    assert export("--model", tiny_gpt2, "--adapter", adapter, "--out", out, "--device", "cpu") == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "e2wm" in line]
    assert len(err) == 1 and err[0].startswith(f"e2wm export merged: stopped: {what} gives logits that differ from "
                                               "base + adapter by up to "), err
    assert "(allowed for float32: " in err[0] and err[0].endswith(f"; nothing written to --out {out}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # neither --out nor its staging folder


def test_dtype_and_refusals(tiny_gpt2, tmp_path, capsys):
    adapter = make_adapter(tiny_gpt2, tmp_path / "adapter", ["c_attn", "lm_head"])
    out = tmp_path / "merged"
    assert export("--model", tiny_gpt2, "--adapter", adapter, "--out", out, "--dtype", "bfloat16") == 0
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    merged = AutoModelForCausalLM.from_pretrained(out, dtype="auto")
    assert merged.transformer.h[0].attn.c_attn.weight.dtype == torch.bfloat16
    assert merged.lm_head.weight.dtype == torch.bfloat16 and not merged.config.tie_word_embeddings
    capsys.readouterr()
    for args, message in [
        (["--adapter", adapter, "--out", out], f"e2wm export merged: error: --out {out}: already exists; give a new "
                                               "directory"),
        (["--adapter", tmp_path, "--out", tmp_path / "new"], f"--adapter {tmp_path}: no adapter_config.json there"),
    ]:
        assert export("--model", tiny_gpt2, *args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "new").exists()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once closed: connections to it are refused


def test_push_offline_fails_in_one_line(tiny_gpt2, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from e2wm import models
    from e2wm.recipes import export as recipe

    adapter = make_adapter(tiny_gpt2, tmp_path / "adapter", ["c_attn"])
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # HF_ENDPOINT, as huggingface_hub read it at import
    models.hub_reachable.cache_clear()
    capsys.readouterr()
    try:
        code = export("--model", tiny_gpt2, "--adapter", adapter, "--out", tmp_path / "a", "--push", "someone/model")
    finally:
        models.hub_reachable.cache_clear()
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == (f"e2wm export merged: stopped: --push someone/model: the Hub ({endpoint}) is "
                                 "unreachable (offline); export without --push and upload the folder later")
    assert not (tmp_path / "a").exists()  # refused before any work
    # reachable by the check but the upload itself fails: one line, and the merged folder is kept
    monkeypatch.setattr(recipe, "hub_reachable", lambda: True)
    code = export("--model", tiny_gpt2, "--adapter", adapter, "--out", tmp_path / "b", "--push", "someone/model")
    err = capsys.readouterr().err.strip()
    assert code == 1 and len([line for line in err.splitlines() if "stopped" in line]) == 1, err
    assert err.splitlines()[-1].startswith("e2wm export merged: stopped: --push someone/model: upload failed (")
    assert err.endswith(f"the merged checkpoint is in {tmp_path / 'b'}")
    assert (tmp_path / "b" / "model.safetensors").is_file()


def test_push_creates_a_private_repository(monkeypatch, tmp_path):
    """A repository --push creates is private (a merged model is not published by accident)."""
    import huggingface_hub

    from e2wm.recipes.export import push_folder

    calls = []

    class Api:
        def create_repo(self, repo, **kwargs):
            calls.append(("create", repo, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs["repo_id"]))

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    push_folder(tmp_path, "me/merged")
    assert calls == [("create", "me/merged", {"repo_type": "model", "exist_ok": True, "private": True}),
                     ("upload", "me/merged")]


@pytest.mark.parametrize(("fixture", "modules"), [("tiny_llama", ["q_proj", "v_proj"]), ("tiny_gpt2", ["c_attn"])])
def test_an_adapter_scale_merges_w0_plus_s_delta(fixture, modules, request, tmp_path, capsys):
    """--adapter-scale 0.5: the checkpoint, reloaded by plain transformers, computes W0 + 0.5 * scaling * B @ A
    (built by hand from the adapter's files) and what `e2wm eval --adapter-scale 0.5` computes; its card says so.
    The export's own check compares with the scaled unmerged model (against the unscaled one it would stop)."""
    from helpers.lora_formula import formula_model, logits_for

    base = request.getfixturevalue(fixture)
    adapter = make_adapter(base, tmp_path / "adapter", modules)
    out = tmp_path / "merged"
    assert export("--model", base, "--adapter", adapter, "--out", out, "--device", "cpu", "--adapter-scale", 0.5) == 0
    capsys.readouterr()
    tokenizer = AutoTokenizer.from_pretrained(out)
    merged = logits_for(AutoModelForCausalLM.from_pretrained(out).eval(), tokenizer)
    torch.testing.assert_close(merged, logits_for(formula_model(base, adapter, 0.5), tokenizer), rtol=1e-5, atol=1e-5)
    evaluated, _ = load_model(ModelSpec(str(base), str(adapter), device="cpu", adapter_scale=0.5))
    torch.testing.assert_close(merged, logits_for(evaluated, tokenizer), rtol=1e-5, atol=1e-5)
    full = logits_for(formula_model(base, adapter, 1.0), tokenizer)
    assert (merged - full).abs().max().item() > 1e-3  # not the adapter as trained
    card = (out / "README.md").read_text()
    assert ("the adapter's change was scaled by s = 0.5 before merging (`e2wm export merged --adapter-scale 0.5`), so "
            "each adapted weight is W + 0.5 * scaling * B @ A") in card
    assert card.index("--adapter-scale 0.5") < card.index("## Use")
    assert export("--model", base, "--adapter", adapter, "--out", tmp_path / "zero", "--adapter-scale", 0) == 0
    plain = logits_for(AutoModelForCausalLM.from_pretrained(base).eval(), tokenizer)
    assert torch.equal(logits_for(AutoModelForCausalLM.from_pretrained(tmp_path / "zero").eval(), tokenizer), plain)
    assert "--adapter-scale" not in (tmp_path / "zero" / "README.md").read_text().split("## Use")[1]


def test_an_adapter_scale_refuses_adapters_other_than_plain_lora(tiny_gpt2, tmp_path, capsys):
    from peft import LoraConfig, get_peft_model

    adapter = tmp_path / "dora"
    config = LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True, use_dora=True)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_gpt2), config).save_pretrained(adapter)
    capsys.readouterr()
    out = tmp_path / "merged"
    assert export("--model", tiny_gpt2, "--adapter", adapter, "--out", out, "--adapter-scale", 0.5) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and (f"--adapter-scale 0.5: --adapter {adapter} is a LoRA variant (use_dora in "
                                           "adapter_config.json)") in err, err
    assert export("--model", tiny_gpt2, "--adapter", adapter, "--out", out, "--adapter-scale", -0.5) == 2
    assert "--adapter-scale must be at least 0, got -0.5" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dora"]
