"""--adapter-scale (WiSE-FT's W0 + s * delta): eval's loaded model against the formula built by hand from the adapter's
files, scale 0 and 1 exact, the refusals, and the eval resume fingerprint."""

import importlib.util

import pytest
import torch
from helpers.files import write
from helpers.lora_formula import formula_model, logits_for, save_lora
from transformers import AutoModelForCausalLM, AutoTokenizer

from e2wm.config import to_argv
from e2wm.errors import InputError
from e2wm.eval.config import EvalConfig
from e2wm.eval.items import read_eval_file
from e2wm.models import ModelSpec, check_scalable, load_model, lora_variants
from e2wm.train.config import ExportConfig

CASES = [("tiny_llama", ["q_proj", "v_proj"], {}),
         ("tiny_gpt2", ["c_attn"], {"fan_in_fan_out": True}),  # Conv1D: W stored (in, out)
         ("tiny_llama", ["q_proj", "down_proj"], {"use_rslora": True})]  # scaling alpha / sqrt(r)


def eval_model(base, adapter, scale: float):
    """The model `e2wm eval --adapter ADAPTER --adapter-scale SCALE` scores, loaded as evaluate() loads it."""
    config = EvalConfig(model=str(base), adapter=str(adapter), adapter_scale=scale, data=["d"], out="o", device="cpu")
    return load_model(config.model_spec(config.adapter, config.adapter_scale))[0]


@pytest.mark.parametrize(("fixture", "modules", "settings"), CASES)
def test_the_scaled_adapter_computes_the_formula(fixture, modules, settings, request, tmp_path):
    base = request.getfixturevalue(fixture)
    adapter = save_lora(base, tmp_path / "adapter", modules, **settings)
    tokenizer = AutoTokenizer.from_pretrained(base)
    plain = logits_for(AutoModelForCausalLM.from_pretrained(base).eval(), tokenizer)
    for scale in (0.0, 0.5, 1.0, 1.5):
        got = logits_for(eval_model(base, adapter, scale), tokenizer)
        want = logits_for(formula_model(base, adapter, scale), tokenizer)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=f"scale {scale}")
        if scale:  # the adapter really moves the logits, so the formula is tested
            assert (want - plain).abs().max().item() > 1e-3 * scale
    assert torch.equal(logits_for(eval_model(base, adapter, 0.0), tokenizer), plain)  # exactly the base
    unscaled = load_model(ModelSpec(str(base), str(adapter), device="cpu"))[0]  # today's path: no scale at all
    assert torch.equal(logits_for(eval_model(base, adapter, 1.0), tokenizer), logits_for(unscaled, tokenizer))


def test_the_scale_leaves_peft_scaling_at_alpha_over_r_times_s(tiny_llama, tmp_path):
    from peft.tuners.lora import LoraLayer

    adapter = save_lora(tiny_llama, tmp_path / "adapter", ["q_proj"])
    layers = [m for m in eval_model(tiny_llama, adapter, 0.25).modules() if isinstance(m, LoraLayer)]
    assert len(layers) == 2 and all(layer.scaling == {"default": 0.25 * 16 / 4} for layer in layers)


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None,
                    reason="8/4-bit bases need a CUDA GPU and bitsandbytes")
@pytest.mark.parametrize("bits", ["load_in_8bit", "load_in_4bit"])
def test_a_quantised_base_adds_the_scaled_change(bits, tiny_llama, tmp_path):
    """bitsandbytes LoRA layers: each adds s * scaling * B A x to its quantised base layer's output, and scale 0
    gives the quantised base's logits exactly."""
    from peft.tuners.lora import LoraLayer

    adapter = save_lora(tiny_llama, tmp_path / "adapter", ["q_proj", "v_proj"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    quantised = {bits: True, "device": "cuda"}
    model = load_model(ModelSpec(str(tiny_llama), str(adapter), adapter_scale=0.5, **quantised))[0]
    layer = next(m for m in model.modules() if isinstance(m, LoraLayer))
    assert type(layer).__module__.endswith("lora.bnb")
    x = torch.randn(3, layer.in_features, device="cuda", dtype=torch.float32)
    with torch.no_grad():
        added = (layer(x) - layer.get_base_layer()(x)).float()
        want = 0.5 * 16 / 4 * layer.lora_B["default"](layer.lora_A["default"](x)).float()
    torch.testing.assert_close(added, want, rtol=1e-3, atol=1e-3)
    base = load_model(ModelSpec(str(tiny_llama), **quantised))[0]
    at_zero = load_model(ModelSpec(str(tiny_llama), str(adapter), adapter_scale=0.0, **quantised))[0]
    assert torch.equal(logits_for(at_zero, tokenizer), logits_for(base, tokenizer))


def save_adapter(base, folder, config):
    from peft import get_peft_model

    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(folder)
    return str(folder)


def test_adapters_other_than_plain_lora_are_refused_at_a_scale_only(tiny_gpt2, tmp_path):
    from peft import LoraConfig, PromptTuningConfig

    lora = {"r": 2, "target_modules": ["c_attn"], "fan_in_fan_out": True}
    refused = {
        "is a PROMPT_TUNING adapter; the scale applies to LoRA adapters (W0 + s * scaling * B @ A) and OSF "
        "adapters only":
            PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2),
        "is a LoRA variant (use_dora in adapter_config.json)": LoraConfig(use_dora=True, **lora),
        "holds more than LoRA's B A (modules_to_save in adapter_config.json)":
            LoraConfig(modules_to_save=["lm_head"], **lora),
    }
    for index, (message, config) in enumerate(refused.items()):
        adapter = save_adapter(tiny_gpt2, tmp_path / str(index), config)
        load_model(ModelSpec(str(tiny_gpt2), adapter, device="cpu"))  # scale 1: applied as before
        with pytest.raises(InputError) as error:
            load_model(ModelSpec(str(tiny_gpt2), adapter, device="cpu", adapter_scale=0.5))
        assert str(error.value).startswith(f"--adapter-scale 0.5: --adapter {adapter} {message}")
    assert lora_variants(LoraConfig()) == [] and lora_variants(LoraConfig(use_dora=True)) == ["use_dora"]
    check_scalable(LoraConfig(**lora), "plain", 0.5)  # no error


def test_an_osf_adapter_scales_its_change(tiny_llama, tmp_path):
    """OSF: W0 + s * (U S V - U0 S0 V0), against a base copy given that weight by hand."""
    from peft import OSFConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    osf = get_peft_model(model, OSFConfig(target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a trained change: move the low singular values and vectors
        for name, parameter in osf.named_parameters():
            if "osf_svd_params" in name:
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    deltas = {name.removeprefix("base_model.model."): module.get_delta_weight("default").detach().clone()
              for name, module in osf.named_modules() if hasattr(module, "osf_svd_params")}
    osf.save_pretrained(tmp_path / "osf")
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    for scale in (0.0, 0.5):
        got = logits_for(eval_model(tiny_llama, tmp_path / "osf", scale), tokenizer)
        by_hand = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
        with torch.no_grad():
            for name, delta in deltas.items():
                by_hand.get_submodule(name).weight.add_(scale * delta)
        torch.testing.assert_close(got, logits_for(by_hand, tokenizer), rtol=1e-4, atol=1e-4, msg=f"scale {scale}")
    moved = logits_for(eval_model(tiny_llama, tmp_path / "osf", 1.0), tokenizer)
    assert not torch.allclose(moved, got)


def test_options_are_checked(tmp_path):
    with pytest.raises(InputError, match=r"^--adapter-scale 0.5 needs --adapter: it scales an adapter's change"):
        EvalConfig(data=["d"], out="o", adapter_scale=0.5)
    with pytest.raises(InputError, match=r"^--adapter-scale must be at least 0, got -0.1$"):
        EvalConfig(data=["d"], out="o", adapter="a", adapter_scale=-0.1)
    with pytest.raises(InputError, match=r"^--adapter-scale 0.5 with --backend vllm: vLLM applies an adapter at its "):
        EvalConfig(data=["d"], out="o", adapter="a", adapter_scale=0.5, backend="vllm")
    with pytest.raises(InputError, match=r"^--adapter-scale must be a number, got True$"):
        EvalConfig(data=["d"], out="o", adapter="a", adapter_scale=True)
    with pytest.raises(InputError, match=r"^--adapter-scale must be at least 0, got -1$"):
        ExportConfig(model="m", adapter="a", out="o", adapter_scale=-1)
    EvalConfig(data=["d"], out="o", adapter_scale=1.0, backend="vllm")  # the default needs neither
    config = EvalConfig(data=["d"], out="o", adapter="a", adapter_scale=2)  # a YAML integer; above 1 extrapolates
    assert config.adapter_scale == 2.0 and isinstance(config.adapter_scale, float)
    assert isinstance(ExportConfig(model="m", adapter="a", out="o", adapter_scale=0).adapter_scale, float)
    # the argv that `--num-processes N` hands each process carries the scale
    argv = to_argv(EvalConfig(data=["d"], out="o", adapter="a", adapter_scale=0.5))
    assert argv[argv.index("--adapter-scale") + 1] == "0.5"


def test_the_fingerprint_separates_scales_and_keeps_earlier_results(tmp_path, monkeypatch):
    from e2wm.eval import run

    task = read_eval_file(write(tmp_path / "housework_qa.json", [{"input": "Q: x?\nA:", "answer_list": ["a", "b"],
                                                                   "answer": "a"}]))
    identity = {"model_revision": "r", "adapter_sha256": "s", "device_type": "cpu"}
    keys = {scale: run.fingerprint(task, EvalConfig(data=["d"], out="o", adapter="a", adapter_scale=scale), identity)
            for scale in (0.0, 0.5, 1.0, 1.5)}
    assert len(set(keys.values())) == 4
    real = run.result_settings  # a run saved before the option existed had no adapter_scale among its settings
    monkeypatch.setattr(run, "result_settings",
                        lambda config: {k: v for k, v in real(config).items() if k != "adapter_scale"})
    assert run.fingerprint(task, EvalConfig(data=["d"], out="o", adapter="a"), identity) == keys[1.0]


def test_the_merged_card_names_the_adapter_type_and_its_scaled_change():
    from e2wm.train.card import merged_card

    osf = merged_card("smollm2-135m", "runs/osf/adapter", "ab" * 32, "float32", "merged", "OSF", 0.5)
    assert "with an E2WM OSF adapter merged in" in osf and "(W + (U S V - U0 S0 V0), computed" in osf
    assert "each adapted weight is W + 0.5 * (U S V - U0 S0 V0)" in osf and "- merged-osf" in osf
    lora = merged_card("smollm2-135m", "runs/lora/adapter", "ab" * 32, "float32", "merged")
    assert "(W + scaling * B @ A, computed" in lora and "Interpolated" not in lora and "EWC-LoRA" not in lora
