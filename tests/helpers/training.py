"""Training pairs and general texts, and a naive Fisher, shared by the train stage's unit tests and the train and
fisher command tests."""

import torch

from e2wm.models import ModelSpec, load_model
from e2wm.train.fisher import per_text_losses

PAIRS = [
    ("Q: How many items are on the table?\nA:", "There are 3 items."),
    ("Walk to kitchen. Grab cup.", "Open fridge."),
    ("Given a task plan: Switch on tv. What is the name of this task?", "Watch TV"),
    ("John picked up the apple.", "kitchen, hallway"),
]


TEXTS = [
    "Walk to kitchen. Grab cup. Open fridge.",
    "Q: How to brush teeth? Given items include toothbrush.",
    "There are 3 items on the table.",
    "John picked up the apple. Mary went to the office. How many items are there?",
    "Answer: hallway, dining room, bathroom",
]


def naive_fisher(model, layers, sequences):
    """Mean over texts of the squared weight gradient, one backward pass per text."""
    sums = {name: torch.zeros_like(layer.weight, dtype=torch.float32) for name, layer in layers.items()}
    for ids in sequences:
        model.zero_grad(set_to_none=True)
        x = torch.tensor([ids])
        per_text_losses(model, x, torch.ones_like(x))[0].backward()
        for name, layer in layers.items():
            sums[name] += layer.weight.grad.float() ** 2
    return {name: s / len(sequences) for name, s in sums.items()}


def peft_model(path, seed=0, dropout=0.0):
    """A tiny model with a LoRA adapter (r 4, alpha 16) whose B is drawn at random, so that its delta is not 0."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model(ModelSpec(str(path), device="cpu"))
    torch.manual_seed(seed)
    gpt2 = model.config.model_type == "gpt2"
    config = LoraConfig(r=4, lora_alpha=16, lora_dropout=dropout, target_modules=["c_attn"] if gpt2 else None,
                        fan_in_fan_out=gpt2, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    for name, parameter in model.named_parameters():  # B starts at zero; give the deltas something to weigh
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    return model, tokenizer
