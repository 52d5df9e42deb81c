"""Memory plans: component sizes equal exact counts on real (tiny) models, and order sensibly."""

import pytest
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from e2wm.train.memory import DTYPE_BYTES, model_shapes, plan_memory


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_components_match_real_models(fixture, request):
    path = request.getfixturevalue(fixture)
    config = AutoConfig.from_pretrained(path)
    shapes = model_shapes(config)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert shapes.params == sum(p.numel() for p in model.parameters())
    names = ["q_proj", "v_proj"] if fixture == "tiny_llama" else ["c_attn"]
    real_targets = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in names]
    assert len(shapes.targets) == len(real_targets) == 2 * len(names)
    assert sum(o * i for o, i in shapes.targets) == sum(m.weight.numel() for m in real_targets)
    plan = plan_memory(shapes, "lora", batch_size=2, max_len=64, lora_r=8)
    lora = get_peft_model(model, LoraConfig(r=8, target_modules=names, fan_in_fan_out=fixture == "tiny_gpt2"))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert plan.adapter == 4 * trainable and plan.gradients == plan.adapter and plan.optimizer == 2 * plan.adapter
    assert plan.fisher == 4 * sum(m.weight.numel() for m in real_targets)
    assert plan.weights == shapes.params * DTYPE_BYTES["float32"]


def test_plans_order_sensibly(tiny_llama):
    shapes = model_shapes(AutoConfig.from_pretrained(tiny_llama))
    lora = plan_memory(shapes, "lora", 4, 256, regularisers=())
    ewc = plan_memory(shapes, "lora", 4, 256)
    full = plan_memory(shapes, "full", 4, 256)
    assert lora.fisher == 0 and ewc.fisher > 0
    assert ewc.total(False) - lora.total(False) == ewc.fisher + ewc.ewc_saved
    assert full.gradients == full.weights and full.optimizer == 2 * full.weights
    assert ewc.activations_checkpointed < ewc.activations
    assert plan_memory(shapes, "lora", 8, 256).activations == pytest.approx(2 * lora.activations)
    kl = plan_memory(shapes, "lora", 4, 256, regularisers=("kl",))
    assert kl.total(False) - lora.total(False) == kl.kl == 4 * 256 * shapes.vocab * 16  # four float32 (B, T, V)
    replay = plan_memory(shapes, "lora", 4, 256, regularisers=("replay",), replay_texts=2)
    assert replay.replay == pytest.approx(lora.activations / 2, abs=1)  # 2 texts beside 4 examples
    assert replay.total(False) - lora.total(False) == pytest.approx(lora.activations / 2, abs=2)
    bf16 = plan_memory(shapes, "lora", 4, 256, dtype="bfloat16", regularisers=())
    assert bf16.weights == lora.weights // 2
    q8 = plan_memory(shapes, "lora", 4, 256, dtype="bfloat16", quant="8bit", regularisers=())
    q4 = plan_memory(shapes, "lora", 4, 256, dtype="bfloat16", quant="4bit", regularisers=())
    assert q4.weights < q8.weights < bf16.weights


def test_gpt_j_shapes_on_paper():
    """GPT-J-6B's config (written here, no download): 6.05B parameters, Fisher of q/v = 1/6 of a model copy."""
    from transformers import GPTJConfig

    shapes = model_shapes(GPTJConfig(n_embd=4096, n_layer=28, n_head=16, rotary_dim=64, vocab_size=50400))
    assert shapes.params == pytest.approx(6.05e9, rel=0.01)
    plan = plan_memory(shapes, "lora", 5, 800, dtype="bfloat16")
    assert plan.fisher / (4 * shapes.params) < 1 / 6  # q_proj and v_proj only: 28 x 2 x 4096^2 float32
    assert plan.fisher == 4 * 28 * 2 * 4096 * 4096


def test_osf_counts_its_factors(tiny_llama):
    """OSF trains the low half of each adapted weight's SVD: the plan's trained bytes equal PEFT's own count."""
    from peft import OSFConfig

    shapes = model_shapes(AutoConfig.from_pretrained(tiny_llama))
    plan = plan_memory(shapes, "osf", 2, 64, regularisers=())
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    osf = get_peft_model(model, OSFConfig(target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    trained = sum(p.numel() for p in osf.parameters() if p.requires_grad)
    assert plan.gradients == 4 * trained and plan.adapter == 2 * plan.gradients and plan.optimizer == 8 * trained
