"""lm-evaluation-harness on the exported tasks gives what `e2wm eval` gives: accuracy, per-item predictions and
scores, first lines, ROUGE and LCS, on a BPE and a SentencePiece-style tokenizer, with no network.

The model is a tiny Llama (4096 positions, so that the dev files' long prompts are not cut) briefly trained on a
few E2WM-like lines, so that it answers with words, room lists and newlines rather than noise."""

import json
import shutil
import socket
from pathlib import Path

import pytest
import torch
from helpers.files import write
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from e2wm.cli import main
from e2wm.eval.lm_eval.export import lm_eval_name

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (it is in the dev extra: pip install "
                              "-e '.[dev]')")
from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from e2wm.eval.lm_eval import utils  # noqa: E402  (imports lm_eval)

TRAIN = [
    "Question: What is the order of the rooms where the wallet appeared?\nAnswer: hallway, dining room, bathroom\n",
    "Q: How to brush teeth?\nA: Walk to bathroom. Grab toothbrush. Turn on faucet. Rinse toothbrush.\n",
    "Given a task plan: Switch on tv. Look at painting.\nQuestion: what is the name of this task?\nAnswer: watch tv\n",
    "There are 3 items on the table. How many items are there on the table?\nA: 3\n",
]
PLAN = "Given a task plan: {}\nQuestion: what is the name of this task?\nAnswer:"
ROOMS = "Question: What is the order of the rooms where the {} appeared?\nAnswer:"
FIXTURES = {  # registry names: act_recog and count are `ln`, housework_qa `un`; plans ROUGE, paths LCS
    "act_recog": [{"input": PLAN.format(plan), "answer_list": options, "answer": options[0]} for plan, options in [
        ("Switch on tv. Look at painting.", ["watch tv", "brush teeth", "wash dishes", "go to sleep"]),
        ("Walk to bathroom. Grab toothbrush.", ["brush teeth", "watch tv", "read a book about rooms"]),
        ("Walk to kitchen. Open fridge.", ["get something to drink", "watch tv", "wash hands"])]],
    "count": [{"input": f"There are {n} items on the table. How many items are there on the table?\nA:",
               "answer_list": ["0", "1", "2", "3", "4"], "answer": str(n)} for n in (1, 3)],
    "housework_qa": [{"input": f"Question: To {goal}, a possibly related item could be\nAnswer:",
                      "answer_list": options, "answer": options[0]} for goal, options in [
        ("watch tv", ["television", "toothbrush", "kitchen table"]), ("brush teeth", ["toothbrush", "tv", "cup"])]],
    "plan_gen": [{"input": f"Q: How to {goal}?\nA:", "ref": ref} for goal, ref in [
        ("brush teeth", "Walk to bathroom. Grab toothbrush. Rinse toothbrush."),
        ("wash hands", "Walk to bathroom. Turn on faucet. Wash hands.")]],
    "obj_move_path": [{"input": ROOMS.format(thing), "ref": ref} for thing, ref in [
        ("wallet", "hallway, dining room, kitchen"), ("cup", "bathroom, bedroom")]],
}
MAX_NEW_TOKENS = 24


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Any connection attempt fails the test; datasets' cache goes to tmp_path."""
    import datasets

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


def trained_model(tokenizer_dir: Path, folder: Path) -> Path:
    """A tiny Llama with the fixture's tokenizer, trained for 60 steps on TRAIN (seconds on a CPU)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = tokenizer(TRAIN, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)  # (B, T)
    for _ in range(60):
        optimiser.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimiser.step()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["tiny_gpt2", "tiny_llama"], ids=["bpe", "sentencepiece"])
def model_dir(request, tmp_path_factory) -> Path:
    return trained_model(request.getfixturevalue(request.param), tmp_path_factory.mktemp(request.param))


def e2wm_eval(model_dir: Path, data: Path, out: Path, limit: int) -> dict:
    main(["eval", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--device", "cpu",
          "--limit", str(limit), "--max-new-tokens", str(MAX_NEW_TOKENS), "--bootstrap-resamples", "100"])
    return json.loads((out / "metrics.json").read_text())


def harness_eval(model_dir: Path, tasks: Path, limit: int) -> dict:
    """simple_evaluate with an HFLM built from the in-memory model and tokenizer; the tokenizer that counts `ln`
    tokens is named through the task manager's metadata."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    manager = TaskManager(include_path=str(tasks), include_defaults=False, metadata={"tokenizer": str(model_dir)})
    return simple_evaluate(model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1, device="cpu"),
                           tasks=["e2wm"], task_manager=manager, limit=limit, log_samples=True,
                           gen_kwargs={"max_gen_toks": MAX_NEW_TOKENS}, bootstrap_iters=100)


def rows(out: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions" / f"{name}.jsonl").read_text().splitlines()]


def assert_agreement(model_dir: Path, data: Path, tmp_path: Path, limit: int) -> dict:
    """Export data, evaluate both ways and compare task by task and item by item; returns e2wm's metrics."""
    tasks = tmp_path / "tasks"
    main(["export", "lm-eval", "--data", str(data), "--out", str(tasks)])
    ours = e2wm_eval(model_dir, data, tmp_path / "e2wm", limit)
    theirs = harness_eval(model_dir, tasks, limit)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for name, metrics in ours.items():
        result, samples = theirs["results"][lm_eval_name(name)], theirs["samples"][lm_eval_name(name)]
        assert result["sample_len"] == metrics["n"] == len(samples)
        mine = rows(tmp_path / "e2wm", name)
        if "accuracy" in metrics:
            tied = 0
            for sample, row in zip(samples, mine):
                doc, logprobs = sample["doc"], [logprob for logprob, _ in sample["filtered_resps"]]
                counts = [utils.continuation_tokens(tokenizer, doc["input"], " " + o)[0] for o in doc["options"]]
                scores = utils.normalised_scores(logprobs, len(doc["options"]), metrics["norm"], counts)
                # float32 sums of up to ~70 nats in other batches: 3e-5 apart at most here, hence 1e-4
                assert scores == pytest.approx(row["scores"], abs=1e-4)
                assert sample["acc"] == float(doc["options"][utils.argmax(scores)] == row["answer"])
                if sorted(scores)[-2] > max(scores) - 1e-4:  # a tie (the tiny tokenizer maps digits to one
                    tied += 1  # token): float noise of either batch order picks the option; any top one is right
                    top = max(row["scores"])
                    assert row["scores"][doc["options"].index(row["prediction"])] > top - 1e-4
                    continue
                assert doc["options"][utils.argmax(scores)] == row["prediction"]  # the same prediction
            if not tied:
                assert result["acc,none"] == pytest.approx(metrics["accuracy"], abs=1e-12)
                assert result["acc_stderr,none"] == pytest.approx(metrics["accuracy_stderr"], abs=1e-12)
        else:
            metric = "lcs" if "lcs" in metrics else "rougeL"
            predictions = [utils.first_line(sample["filtered_resps"][0]) for sample in samples]
            assert predictions == [row["prediction"] for row in mine]  # identical greedy first lines
            for key in ("lcs",) if metric == "lcs" else ("rouge1", "rouge2", "rougeL"):
                assert result[f"{key},none"] == pytest.approx(metrics[key], abs=1e-12)
            assert [sample[metric] for sample in samples] == pytest.approx([row["score"] for row in mine], abs=1e-12)
    return ours


def test_fixture_items_agree(model_dir, tmp_path):
    data = tmp_path / "data"
    for name, lines in FIXTURES.items():
        write(data / f"{name}.json", lines)
    ours = assert_agreement(model_dir, data, tmp_path, limit=10)
    assert set(ours) == set(FIXTURES)
    assert ours["plan_gen"]["rougeL"] > 0 and ours["obj_move_path"]["lcs"] > 0  # the model answers in words
    assert ours["act_recog"]["accuracy"] > 0 and ours["housework_qa"]["norm"] == "un"


def test_dev_items_agree(model_dir, benchmark_dir, tmp_path):
    """Three items of each released dev file (their few-shot prompts, up to ~1500 tokens, verbatim)."""
    ours = assert_agreement(model_dir, benchmark_dir / "eval-dev", tmp_path, limit=3)
    assert len(ours) == 11


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def test_chat_template_generation_agrees_and_multiple_choice_is_refused(model_dir, tmp_path):
    """`e2wm eval --chat-template` decodes what lm-eval's --apply_chat_template decodes (the prompt as the user's
    turn, the assistant's opened); the exported multiple-choice tasks refuse it (their scores would not be e2wm's)."""
    chat = tmp_path / "chat-model"
    shutil.copytree(model_dir, chat)
    tokenizer = AutoTokenizer.from_pretrained(chat)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(chat)
    data = tmp_path / "data"
    write(data / "plan_gen.json", FIXTURES["plan_gen"])
    tasks = tmp_path / "tasks"
    main(["export", "lm-eval", "--data", str(data), "--out", str(tasks)])
    main(["eval", "--model", str(chat), "--data", str(data), "--out", str(tmp_path / "e2wm"), "--device", "cpu",
          "--max-new-tokens", str(MAX_NEW_TOKENS), "--bootstrap-resamples", "100", "--chat-template"])
    model = AutoModelForCausalLM.from_pretrained(chat).eval()
    manager = TaskManager(include_path=str(tasks), include_defaults=False)
    theirs = simple_evaluate(model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1, device="cpu"),
                             tasks=["e2wm"], task_manager=manager, log_samples=True, apply_chat_template=True,
                             gen_kwargs={"max_gen_toks": MAX_NEW_TOKENS}, bootstrap_iters=100)
    samples = theirs["samples"][lm_eval_name("plan_gen")]
    prompt = f"<|user|>\n{FIXTURES['plan_gen'][0]['input']}{tokenizer.eos_token}\n<|assistant|>\n"
    assert samples[0]["arguments"][0][0] == prompt  # the user turn, no system turn added
    predictions = [utils.first_line(sample["filtered_resps"][0]) for sample in samples]
    assert predictions == [row["prediction"] for row in rows(tmp_path / "e2wm", "plan_gen")]
    write(data / "act_recog.json", FIXTURES["act_recog"])
    shutil.rmtree(tasks)
    main(["export", "lm-eval", "--data", str(data), "--out", str(tasks)])
    with pytest.raises(ValueError, match="not defined under lm-eval's --apply_chat_template"):
        simple_evaluate(model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1, device="cpu"),
                        tasks=["e2wm"], task_manager=TaskManager(include_path=str(tasks), include_defaults=False,
                                                                 metadata={"tokenizer": str(chat)}),
                        apply_chat_template=True, gen_kwargs={"max_gen_toks": MAX_NEW_TOKENS}, bootstrap_iters=100)
