"""`e2wm export merged`: the merged checkpoint computes what base + adapter compute; atomic; --push fails cleanly."""

import json
import socket

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from e2wm.cli import main
from e2wm.models import ModelSpec, load_model

TEXT = "Walk to kitchen. Grab cup. Open fridge. Put cup in fridge."


def make_adapter(base, folder, modules: list[str]):
    """A LoRA adapter with random (non-zero) A and B, so that merging changes the weights."""
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=modules, init_lora_weights=False,
                        fan_in_fan_out=modules == ["c_attn"])
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
    card = (out / "README.md").read_text()
    assert card.startswith(f"---\nbase_model: {base}\nlibrary_name: transformers\n")
    assert "merged into the weights of" in card and "merge_and_unload" in card and "saved in float32" in card


def test_dtype_and_refusals(tiny_gpt2, tmp_path, capsys):
    adapter = make_adapter(tiny_gpt2, tmp_path / "adapter", ["c_attn"])
    out = tmp_path / "merged"
    assert export("--model", tiny_gpt2, "--adapter", adapter, "--out", out, "--dtype", "bfloat16") == 0
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    merged = AutoModelForCausalLM.from_pretrained(out, dtype="auto")
    assert merged.transformer.h[0].attn.c_attn.weight.dtype == torch.bfloat16
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
