"""The KL anchor and general-text replay against formulas computed independently on tiny models; the method
shorthand resolved into an adapter and regularisers."""

import pytest
import torch
from helpers.training import PAIRS, TEXTS, peft_model

from e2wm.errors import InputError
from e2wm.methods import method_label, recorded_method, resolve_method
from e2wm.models import ModelSpec, load_model
from e2wm.train.data import collate, encode_example
from e2wm.train.kl_anchor import KlAnchor
from e2wm.train.loop import weighted_nll_outputs
from e2wm.train.rehearsal import Replay, texts_per_step, tokenise_texts


def examples_of(tokenizer, pairs=PAIRS):
    return [encode_example(tokenizer, i, r, 1.0 + k / 2, 64) for k, (i, r) in enumerate(pairs)]


@pytest.mark.parametrize(("tokens", "direction"), [("answer", "forward"), ("all", "forward"), ("answer", "reverse")])
@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_kl_anchor_equals_kl_between_finetuned_and_a_separate_base(fixture, tokens, direction, request):
    path = request.getfixturevalue(fixture)
    model, tokenizer = peft_model(path)  # B drawn at random: the adapter changes the outputs
    base, _ = load_model(ModelSpec(str(path), device="cpu"))  # a second, independent copy of the base
    examples = examples_of(tokenizer)[:3]
    batch = collate(examples, tokenizer.pad_token_id)
    anchor = KlAnchor(weight=0.3, tokens=tokens, direction=direction)
    model.eval()  # GPT-2's own dropout off, as in the base pass
    _, outputs = weighted_nll_outputs(model, batch, anchor.all_positions)
    value = anchor(model, batch, outputs) / anchor.denominator([examples])

    expected, counted = 0.0, 0
    with torch.no_grad():
        for example in examples:
            ids = torch.tensor([example.ids])
            log_p = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)  # (n - 1, V)
            log_q = torch.log_softmax(base(input_ids=ids).logits[0, :-1].double(), -1)
            # torch's kl_div(input, target) is KL(target || input): forward is KL(base || finetuned)
            first, second = (log_p, log_q) if direction == "forward" else (log_q, log_p)
            kl = torch.nn.functional.kl_div(first, second, log_target=True, reduction="none").sum(-1)  # (n - 1,)
            keep = torch.tensor(example.is_ref[1:]) if tokens == "answer" else torch.ones(len(example.ids) - 1)
            expected += (kl * keep).sum().item()
            counted += int(keep.sum())
    assert counted == anchor.denominator([examples]) and expected > 1e-4
    assert value.item() == pytest.approx(expected / counted, rel=1e-4)
    value.backward()  # gradients reach the adapter only (the base pass ran without them)
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)
    model.train()
    anchor(model, batch, outputs)
    assert model.training  # the base pass's eval mode is undone


def test_kl_anchor_is_zero_for_a_fresh_adapter(tiny_llama):
    model, tokenizer = peft_model(tiny_llama)
    for name, parameter in model.named_parameters():  # a new LoRA adapter: B = 0, the model is the base
        if "lora_B" in name:
            torch.nn.init.zeros_(parameter)
    examples = examples_of(tokenizer)
    batch = collate(examples, tokenizer.pad_token_id)
    _, outputs = weighted_nll_outputs(model, batch)
    assert abs(KlAnchor(1.0)(model, batch, outputs).item()) < 1e-5


def test_kl_anchor_is_independent_of_the_micro_batch_split(tiny_llama):
    model, tokenizer = peft_model(tiny_llama)
    examples = examples_of(tokenizer)[:4]
    anchor = KlAnchor(1.0)
    whole = anchor.denominator([examples])

    def step_value(split):
        total = 0.0
        for part in split:
            batch = collate(part, tokenizer.pad_token_id)
            _, outputs = weighted_nll_outputs(model, batch)
            total += anchor(model, batch, outputs).item() / whole
        return total

    model.eval()  # no dropout: the same forward either way
    assert step_value([examples]) == pytest.approx(step_value([examples[:1], examples[1:3], examples[3:]]), rel=1e-5)


def test_replay_is_the_mean_token_nll_of_its_texts(tiny_llama):
    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    texts = tokenise_texts(TEXTS, tokenizer, 12, "texts.jsonl")
    replay = Replay(texts, weight=2.0, texts_per_step=3, pad_id=tokenizer.pad_token_id, seed=5)
    chosen = replay.indices(0)
    value = replay(model)
    assert replay.next_step == 1
    total, count = 0.0, 0
    with torch.no_grad():
        for index in chosen:  # each text alone, no padding
            ids = torch.tensor([texts[index]])
            nll = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[0, :-1].double(), ids[0, 1:],
                                                    reduction="sum")
            total, count = total + nll.item(), count + len(texts[index]) - 1
    assert value.item() == pytest.approx(total / count, rel=1e-5)
    assert all(len(t) <= 12 for t in texts)


def test_replay_walks_the_corpus_without_repeats_and_apart_per_process():
    texts = [[1, 2]] * 10
    one = Replay(texts, 1.0, texts_per_step=3, pad_id=0, seed=1)
    first_pass = [i for step in range(3) for i in one.indices(step)] + one.indices(3)[:1]
    assert sorted(first_pass) == list(range(10))  # a permutation of the corpus per pass
    assert one.indices(5) == Replay(texts, 1.0, 3, 0, seed=1).indices(5)  # a function of the step: resumable
    assert one.indices(0) != Replay(texts, 1.0, 3, 0, seed=2).indices(0)
    a = Replay(texts, 1.0, 2, 0, seed=1, process_index=0, processes=2)
    b = Replay(texts, 1.0, 2, 0, seed=1, process_index=1, processes=2)
    assert not set(a.indices(0)) & set(b.indices(0))
    assert a.indices(0) + b.indices(0) == one.order(0)[:4]


def test_replay_refuses_no_text_and_a_ratio_rounding_to_zero(tiny_llama):
    _, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    with pytest.raises(InputError, match="--replay-data g.jsonl: no text has two or more tokens"):
        tokenise_texts(["", ""], tokenizer, 8, "g.jsonl")
    assert texts_per_step(0.25, 4) == 1 and texts_per_step(1.0, 4) == 4 and texts_per_step(0.25, 2) == 1
    with pytest.raises(InputError, match="rounds to 0 replay texts; raise --replay-ratio to at least 0.125"):
        texts_per_step(0.1, 4)
    assert texts_per_step(0.125, 4) == 1  # the hint's value works


def test_method_shorthand_resolves_and_refuses_contradictions():
    assert resolve_method(None, None, None, None) == ("lora", "ewc")
    assert resolve_method("ewc-lora", None, None, "f") == ("lora", "ewc")
    assert resolve_method("lora", None, None, "f") == ("lora", "none")
    assert resolve_method("full", None, None, "f") == ("full", "ewc")
    assert resolve_method("full", None, None, None) == ("full", "none")
    assert resolve_method(None, None, "replay, kl,ewc", None) == ("lora", "ewc,kl,replay")
    assert resolve_method("lora", "lora", "none", None) == ("lora", "none")
    with pytest.raises(InputError, match="--method lora means --adapter-kind lora --regularisers none"):
        resolve_method("lora", None, "kl", None)
    with pytest.raises(InputError, match="distinct names among ewc, kl, replay"):
        resolve_method(None, None, "kl,kl", None)
    with pytest.raises(InputError, match="--regularisers l2"):
        resolve_method(None, None, "l2", None)
    assert recorded_method({"method": "ewc-lora", "fisher": "f"}) == ("lora", ["ewc"])  # a run of e2wm <= 0.x
    assert recorded_method({"adapter_kind": "lora", "regularisers": "kl,replay"}) == ("lora", ["kl", "replay"])
    assert method_label("lora", ["ewc"]) == "EWC-LoRA" and method_label("lora", []) == "LoRA"
    assert method_label("lora", ["kl", "replay"]) == "LoRA + KL anchor + replay"
    assert method_label("full", ["ewc"]) == "full finetuning + EWC"


def test_a_yaml_list_of_regularisers_is_the_comma_separated_option(tmp_path):
    from e2wm.train.config import PlanMemoryConfig, TrainConfig

    config = TrainConfig(train="1 a.json", out=str(tmp_path), regularisers=["replay", "kl"], replay_data="g.jsonl")
    assert config.regularisers == "kl,replay"
    assert PlanMemoryConfig(model="m", regularisers=["kl"]).regularisers == "kl"


def test_regulariser_names_and_the_builder_refuse_what_is_not_a_regulariser():
    from e2wm.methods import regulariser_names
    from e2wm.train.assemble import build_regularisers

    assert regulariser_names("none") == [] and regulariser_names("ewc,kl") == ["ewc", "kl"]
    with pytest.raises(ValueError, match="'none' is not a regulariser"):
        build_regularisers(["none"], None, None, None, examples_per_step=1, replay_max_len=2, seed=0)
    with pytest.raises(ValueError, match="the ewc regulariser needs the EWC penalty"):
        build_regularisers(["ewc"], None, None, None, examples_per_step=1, replay_max_len=2, seed=0)
