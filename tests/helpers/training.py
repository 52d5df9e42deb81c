"""Training pairs and general texts, and a naive Fisher, shared by the train stage's unit tests and the train and
fisher command tests."""

import torch

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
