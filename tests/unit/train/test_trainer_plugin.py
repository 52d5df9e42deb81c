"""The Trainer/TRL plug-in (e2wm.train.trainer_plugin): on the same batches and weights, its loss and every
regulariser's value equal `e2wm train`'s log; an SFTTrainer run logs the terms; and its refusals.

The SFTTrainer tests need the e2wm[trl] extra and skip without it; the transformers.Trainer ones always run."""

import json

import pytest
import torch
from helpers.train_runs import read_log, write_pairs
from helpers.training import PAIRS, TEXTS

from e2wm.cli import main
from e2wm.errors import InputError
from e2wm.models import load_tokenizer
from e2wm.train.data import collate, load_examples
from e2wm.train.fisher import load_fisher
from e2wm.train.trainer_plugin import E2wmRegularisers, Penalties, counted_positions, e2wm_penalties

LAMBDA, KL_WEIGHT, REPLAY_WEIGHT = 0.05, 2.0, 0.3
TERMS = ("loss", "loss_ce", "loss_ewc", "ewc", "loss_kl", "kl", "loss_replay", "replay")


def fisher_of(model, folder):
    fisher = folder / "f.safetensors"
    main(["fisher", "--model", str(model), "--n", "2", "--max-len", "8", "--out", str(fisher)])
    return fisher


@pytest.fixture(scope="module")
def e2wm_run(tiny_llama, tmp_path_factory):
    """Two steps of `e2wm train` (EWC, KL anchor and replay; 2 x 2 accumulated micro-batches in file order; the
    CE per answer token of the step), checkpointed after each: (run folder, training file, Fisher, general text)."""
    folder = tmp_path_factory.mktemp("e2wm-run")
    data = write_pairs(folder / "a.json", repeat=2)
    general = folder / "general.jsonl"
    general.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    fisher = fisher_of(tiny_llama, folder)
    main(["train", "--model", str(tiny_llama), "--train", f"1 {data}", "--fisher", str(fisher), "--regularisers",
          "ewc,kl,replay", "--lambda", str(LAMBDA), "--kl-weight", str(KL_WEIGHT), "--replay-data", str(general),
          "--replay-ratio", "0.5", "--replay-weight", str(REPLAY_WEIGHT), "--batch-size", "2", "--grad-accum", "2",
          "--max-steps", "2", "--batching", "sequential", "--loss-norm", "step", "--lora-dropout", "0",
          "--save-every", "1", "--lr", "5e-2", "--autocast", "none", "--out", str(folder / "run")])
    return folder / "run", data, fisher, general


def trainer_classes():
    from transformers import Trainer, TrainingArguments

    classes = [pytest.param((Trainer, TrainingArguments), id="Trainer")]
    try:
        from trl import SFTConfig, SFTTrainer
    except ImportError:
        classes.append(pytest.param(None, id="SFTTrainer", marks=pytest.mark.skip(
            reason="trl is not installed (pip install 'e2wm[trl]')")))
    else:
        classes.append(pytest.param((SFTTrainer, SFTConfig), id="SFTTrainer"))
    return classes


def hf_batch(examples, pad):
    """e2wm's micro-batch as Transformers reads it: labels = the ids on the answer tokens, -100 elsewhere."""
    batch = collate(examples, pad)
    labels = torch.where(batch["weights"] > 0, batch["input_ids"], torch.full_like(batch["input_ids"], -100))
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}


def prompt_completion(pairs):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": text, "completion": " " + ref + "\n"} for text, ref in pairs])


@pytest.mark.parametrize("kinds", trainer_classes())
def test_the_plugins_step_equals_e2wm_trains(kinds, e2wm_run, tiny_llama, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer_class, arguments = kinds
    run, data, fisher, general = e2wm_run
    tokenizer = load_tokenizer(str(tiny_llama))
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, run / "checkpoint-1" / "adapter", is_trainable=True)  # after step 1

    class Plugged(E2wmRegularisers, trainer_class):
        pass

    args = arguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, gradient_accumulation_steps=2,
                     use_cpu=True, report_to="none", seed=0, **({"bf16": False} if trainer_class.__name__ ==
                                                              "SFTTrainer" else {}))
    extra = {"train_dataset": prompt_completion(PAIRS)} if trainer_class.__name__ == "SFTTrainer" else {}
    trainer = Plugged(model=model, args=args, processing_class=tokenizer, **extra,
                      penalties=Penalties(fisher=str(fisher), lam=LAMBDA, kl_weight=KL_WEIGHT, replay_data=str(general),
                                          replay_ratio=0.5, replay_weight=REPLAY_WEIGHT))
    assert [r.name for r in trainer.regularisers] == ["ewc", "kl", "replay"]

    examples = load_examples([(1.0, str(data))], tokenizer, 800)  # e2wm's tokens, its step 2: examples 4..7
    step = [hf_batch(examples[4:6], tokenizer.pad_token_id), hf_batch(examples[6:8], tokenizer.pad_token_id)]
    trainer.model.train()
    with pytest.raises(RuntimeError, match="no optimiser step begun"):
        trainer.compute_loss(trainer.model, dict(step[0]))
    trainer.state.global_step = 1  # the replay texts of step 2
    batches, items = trainer.get_batch_samples(iter(step), 2, trainer.args.device)
    assert int(items) == sum(int((b["labels"][:, 1:] != -100).sum()) for b in step)  # the CE's denominator
    loss = sum(trainer.training_step(trainer.model, batch, items) for batch in batches)
    trainer.log({"loss": loss.item()})
    logged, expected = trainer.state.log_history[-1], read_log(run)[1]
    assert expected["ewc"] > 1e-3 and expected["kl"] > 1e-4 and expected["replay"] > 1  # not trivially equal
    for term in TERMS:
        assert logged[term] == pytest.approx(expected[term], rel=1e-6, abs=1e-9), term
    assert logged["loss"] == pytest.approx(logged["loss_ce"] + logged["loss_ewc"] + logged["loss_kl"]
                                           + logged["loss_replay"], rel=1e-6)
    # the gradients too: each term entered the step's backward once, at its weight (EWC once, not per micro-batch)
    grads = [p.grad for p in trainer.model.parameters() if p.requires_grad]
    assert torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item() == (
        pytest.approx(expected["grad_norm"], rel=1e-5))


def test_an_sft_trainer_run_logs_each_term(tiny_llama, tmp_path):
    pytest.importorskip("trl", reason="trl is not installed (pip install 'e2wm[trl]')")
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    class Trainer(E2wmRegularisers, SFTTrainer):
        pass

    fisher = fisher_of(tiny_llama, tmp_path)
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2,
                     gradient_accumulation_steps=2, logging_steps=1, learning_rate=5e-2, use_cpu=True, bf16=False,
                     report_to="none", save_strategy="no", seed=0)
    trainer = Trainer(model=str(tiny_llama), args=args, train_dataset=prompt_completion(PAIRS * 2),
                      processing_class=load_tokenizer(str(tiny_llama)),
                      peft_config=LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM"),
                      penalties=Penalties(fisher=str(fisher), lam=LAMBDA, kl_weight=KL_WEIGHT))
    trainer.train()
    rows = [row for row in trainer.state.log_history if "loss" in row]
    assert len(rows) == 2
    for row in rows:
        assert row["loss"] == pytest.approx(row["loss_ce"] + row["loss_ewc"] + row["loss_kl"], rel=1e-5)
        assert row["loss_ewc"] == pytest.approx(LAMBDA * row["ewc"]) and row["loss_kl"] == pytest.approx(
            KL_WEIGHT * row["kl"])
        assert {"entropy", "mean_token_accuracy"} <= set(row)  # SFTTrainer's own metrics are kept
    # step 1: the adapter is new (B = 0): the model is the base; step 2 has moved away from it
    assert rows[0]["ewc"] == 0 and abs(rows[0]["kl"]) < 1e-6
    assert rows[1]["ewc"] > 0 and rows[1]["kl"] > 1e-6


def test_full_finetuning_ewc_is_the_fisher_weighted_drift(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    fisher = fisher_of(tiny_llama, tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    (ewc,) = e2wm_penalties(model, fisher=str(fisher), lam=2.0, fisher_scale="raw")
    assert (ewc.name, ewc.weight) == ("ewc", 2.0) and ewc(model).item() == 0
    name = "model.layers.0.self_attn.q_proj"
    with torch.no_grad():
        model.get_submodule(name).weight += 0.1
    raw = load_fisher(fisher)[1][name]
    assert ewc(model).item() == pytest.approx(0.01 * raw.double().sum().item(), rel=1e-5)


def test_refusals(tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    fisher = fisher_of(tiny_llama, tmp_path)
    cases = [({}, "no regulariser is on"), ({"fisher": str(fisher), "lam": -1}, "--lambda must be at least 0, got -1"),
             ({"kl_weight": 0.1, "kl_tokens": "prompt"}, "--kl-tokens must be one of answer, all, got 'prompt'"),
             ({"fisher": str(fisher), "fisher_scale": "max"}, "--fisher-scale must be one of"),
             ({"replay_data": "t.jsonl", "replay_ratio": 0}, "--replay-ratio must be above 0"),
             ({"kl_weight": "0.1"}, "--kl-weight must be a number")]
    for settings, message in cases:
        with pytest.raises(InputError, match=message):
            Penalties(**settings)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    with pytest.raises(InputError, match="needs a PEFT adapter"):
        e2wm_penalties(base, kl_weight=0.1)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    with pytest.raises(InputError, match=f"^Penalties.fisher {fisher}: its modules do not match the model"):
        e2wm_penalties(model, fisher=str(fisher))  # the Fisher covers q_proj, v_proj
    model.get_base_model().config.final_logit_softcapping = 30.0
    with pytest.raises(InputError, match="final_logit_softcapping = 30.0"):
        e2wm_penalties(model, kl_weight=0.1)
    padding_free = {"input_ids": torch.ones(1, 5, dtype=torch.long), "labels": torch.ones(1, 5, dtype=torch.long)}
    with pytest.raises(InputError, match="padding-free or packed batches"):
        counted_positions([padding_free], "answer")


def test_an_osf_adapter_gets_e2wm_trains_osf_ewc(tiny_llama, tmp_path):
    """The plug-in's EWC on an OSF adapter is `e2wm train`'s OsfEwc: 0 at the start, sum F * (W_eff - W0)^2 after."""
    from peft import OSFConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from e2wm.train.ewc import OsfEwc

    fisher = fisher_of(tiny_llama, tmp_path)
    osf = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
                         OSFConfig(target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    (ewc,) = e2wm_penalties(osf, fisher=str(fisher), lam=2.0, fisher_scale="raw")
    assert isinstance(ewc.penalty, OsfEwc) and ewc(osf).item() == 0
    layer = osf.get_submodule("base_model.model.model.layers.0.self_attn.q_proj")
    with torch.no_grad():
        layer.osf_svd_params["default"]["S_low"] += 0.1
    name = "model.layers.0.self_attn.q_proj"
    raw = load_fisher(fisher)[1][name]
    expected = (raw.double() * layer.get_delta_weight("default").double() ** 2).sum().item()
    assert expected > 0 and ewc(osf).item() == pytest.approx(expected, rel=1e-5)


def test_the_plugins_ewc_pairs_lora_layers_only_and_refuses_other_adapters_before_reading_the_fisher(tiny_llama,
                                                                                                    tmp_path):
    """LoRA with trainable tokens (another adapter layer, on the embeddings) keeps its EWC on the LoRA layers; an IA3
    adapter is refused by its kind, whatever the Fisher file holds."""
    from peft import IA3Config, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from e2wm.train.ewc import LoraEwc

    fisher = fisher_of(tiny_llama, tmp_path)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"], trainable_token_indices=[1, 2],
                                     task_type="CAUSAL_LM"))
    (ewc,) = e2wm_penalties(lora, fisher=str(fisher))
    assert isinstance(ewc.penalty, LoraEwc) and len(ewc.penalty.pairs) == len(load_fisher(fisher)[1])
    ia3 = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
                         IA3Config(target_modules=["q_proj", "v_proj"], feedforward_modules=[], task_type="CAUSAL_LM"))
    with pytest.raises(InputError, match="takes LoRA or OSF adapters or a model trained in full; this model's "
                                         "adapter is IA3"):
        e2wm_penalties(ia3, fisher=str(tmp_path / "not-read.safetensors"))
