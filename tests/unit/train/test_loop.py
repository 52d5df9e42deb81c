"""The weighted loss equals a hand computation; batches and loss normalisations keep (or, as the authors', move)
the task mixture."""

import pytest
import torch
from helpers.training import PAIRS

from e2wm.models import ModelSpec, load_model
from e2wm.train.data import Example, collate, encode_example, ref_weight
from e2wm.train.loop import Schedule, effective_mixture, weighted_nll_sum


def test_weighted_loss_equals_hand_computation(tiny_llama):
    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    examples = [encode_example(tokenizer, text, ref, weight, 64) for (text, ref), weight in zip(PAIRS, [1, 0.7, 1, 2])]
    batch = collate(examples, tokenizer.pad_token_id)
    got = weighted_nll_sum(model, batch).item() / ref_weight(examples)
    numerator = denominator = 0.0
    with torch.no_grad():
        for example in examples:
            ids = torch.tensor([example.ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
            for t in range(1, len(example.ids)):
                if example.is_ref[t]:
                    numerator -= example.weight * logp[t - 1, example.ids[t]].item()
                    denominator += example.weight
    assert got == pytest.approx(numerator / denominator, rel=1e-5)


def synthetic(source: str, n: int, length: int, refs: int, weight: float) -> list[Example]:
    return [Example([1] * length, [False] * (length - refs) + [True] * refs, weight, source) for _ in range(n)]


# two tasks as in E2WM: short examples with short answers (weight 1) and long ones with long answers (weight 0.5)
SHORT, LONG = synthetic("short", 240, 12, 3, 1.0), synthetic("long", 240, 120, 40, 0.5)
EXPECTED_SHORT = 240 * 3 * 1.0 / (240 * 3 * 1.0 + 240 * 40 * 0.5)  # the short file's share of sum(weight)


def shares(batches, scales_of_step, per_step):
    """Independent: each source's summed scale * weight over its ref tokens, over the given steps."""
    pull = {"short": 0.0, "long": 0.0}
    for first in range(0, len(batches) - len(batches) % per_step, per_step):
        step = batches[first : first + per_step]
        for batch, scale in zip(step, scales_of_step(step)):
            for e in batch:
                pull[e.source] += scale * e.weight * sum(e.is_ref[1:])
    return pull["short"] / (pull["short"] + pull["long"])


def test_random_batches_keep_each_tasks_share_of_answer_tokens():
    examples = SHORT + LONG
    schedule = Schedule(8, 2, 1, 1, None, 0)  # random batches (the default)
    plan = schedule.batches([len(e.ids) for e in examples], epoch=0)
    half = [[examples[i] for i in b] for b in plan[: len(plan) // 2]]  # many batches, not yet the whole epoch
    short_tokens = sum(sum(e.is_ref[1:]) for b in half for e in b if e.source == "short")
    all_tokens = sum(sum(e.is_ref[1:]) for b in half for e in b)
    assert short_tokens / all_tokens == pytest.approx(240 * 3 / (240 * 3 + 240 * 40), abs=0.01)


@pytest.mark.parametrize(("batch_size", "grad_accum"), [(1, 1), (2, 1), (8, 2), (5, 4)])
def test_mixture_norm_keeps_the_mixture_at_any_step_size(batch_size, grad_accum):
    examples = SHORT + LONG  # 480 examples: every epoch uses each one once
    schedule = Schedule(batch_size, grad_accum, 1, 1, None, 0)  # loss_norm "mixture", the default
    schedule.fit(examples)
    assert effective_mixture(schedule, examples)["short"] == pytest.approx(EXPECTED_SHORT, rel=1e-9)


def test_step_norm_cancels_the_weights_in_small_steps():
    examples = SHORT + LONG
    one = Schedule(1, 1, 1, 1, None, 0, loss_norm="step")  # each example its own step: every example pulls 1
    assert effective_mixture(one, examples)["short"] == pytest.approx(0.5, rel=1e-9)
    large = Schedule(8, 2, 1, 1, None, 0, loss_norm="step")  # 16 a step: within a point of the mixture
    assert effective_mixture(large, examples)["short"] == pytest.approx(EXPECTED_SHORT, abs=0.01)


def test_length_batches_keep_the_mixture_with_a_fixed_divisor():
    examples = SHORT + LONG
    schedule = Schedule(8, 2, 1, 1, None, 0, batching="length")
    schedule.fit(examples)
    assert schedule.mean_step_weight == pytest.approx((240 * 3 + 240 * 40 * 0.5) * 16 / 480)
    plan = [[examples[i] for i in b] for b in schedule.batches([len(e.ids) for e in examples], epoch=0)]
    assert all(len({e.source for e in b}) == 1 for b in plan)  # grouped: each batch is one task
    assert effective_mixture(schedule, examples)["short"] == pytest.approx(EXPECTED_SHORT, rel=1e-9)
    # dividing each grouped step (one batch a step) by its own weight instead cancels the file weights: the
    # short task's pull becomes its share of steps (half), far from the mixture's 0.13
    per_step_weight = shares(plan, lambda step: [1 / ref_weight(sum(step, []))] * len(step), 1)
    assert per_step_weight == pytest.approx(0.5, abs=0.05) and abs(per_step_weight - EXPECTED_SHORT) > 0.3


def test_micro_batch_norm_is_the_authors_per_micro_batch_mean():
    examples = SHORT[:3] + LONG[:1]
    step = [examples[:2], examples[2:]]
    schedule = Schedule(2, 2, 1, 1, None, 0, loss_norm="micro-batch")
    assert schedule.scales(step) == pytest.approx([1 / (6 * 2), 1 / ((3 + 40) * 2)])  # ref tokens / micro-batches
    assert Schedule(2, 2, 1, 1, None, 0, loss_norm="step").scales(step) == pytest.approx([1 / (3 * 3 + 40 * 0.5)] * 2)
    mixture = Schedule(2, 2, 1, 1, None, 0)
    mixture.fit(SHORT + LONG)  # the mean weighted ref tokens of 4 examples
    assert mixture.scales(step) == pytest.approx([1 / ((240 * 3 + 240 * 40 * 0.5) * 4 / 480)] * 2)
    # the authors' shares: a micro-batch's tokens share 1 / its ref tokens, so short answers beside long ones
    # pull more than their weight (independent loop over the same batches)
    schedule = Schedule(8, 1, 1, 1, None, 0, loss_norm="micro-batch")
    full = SHORT + LONG
    plan = [[full[i] for i in b] for b in schedule.batches([len(e.ids) for e in full], epoch=0)]
    authors = shares(plan, lambda s: [1 / sum(sum(e.is_ref[1:]) for e in b) for b in s], 1)
    assert effective_mixture(schedule, full)["short"] == pytest.approx(authors, rel=1e-9)
    assert authors > 1.2 * EXPECTED_SHORT  # 0.163 against 0.130
