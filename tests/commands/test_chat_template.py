"""`--chat-template` through `e2wm eval` and `e2wm train`: refused without a template, recorded in config.json,
the model card and the report header, part of the eval resume fingerprint, and the raw prompts stay the default."""

import json
import shutil

import pytest
from helpers.files import write
from helpers.training import PAIRS
from transformers import AutoTokenizer

from e2wm.cli import main
from e2wm.eval.header import eval_run_line, training_text

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
QA = {"input": "Question: To wash dishes, a related item could be\nAnswer:", "answer_list": ["sink", "bed"],
      "answer": "sink"}
GEN = {"input": "Q: How to watch tv?\nA:", "ref": "Walk to home office. Switch on tv."}


@pytest.fixture(scope="module")
def chat_model(tiny_gpt2, tmp_path_factory):
    """The tiny GPT-2 with a chat template saved in its tokenizer files (chat_template.jinja)."""
    folder = tmp_path_factory.mktemp("chat") / "model"
    shutil.copytree(tiny_gpt2, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


def run(capsys, command, *args) -> tuple[int, str, str]:
    try:
        main([command, *map(str, args)])
    except SystemExit as stop:
        captured = capsys.readouterr()
        return stop.code, captured.out, captured.err
    captured = capsys.readouterr()
    return 0, captured.out, captured.err


def rows(run_dir, task):
    return [json.loads(line) for line in (run_dir / "predictions" / f"{task}.jsonl").read_text().splitlines()]


def test_a_model_without_a_template_is_refused_before_anything_is_written(tiny_gpt2, tmp_path, capsys):
    data = write(tmp_path / "housework_qa.json", [QA])
    code, _, err = run(capsys, "eval", "--model", tiny_gpt2, "--data", data, "--out", tmp_path / "e", "--chat-template")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"--model {tiny_gpt2}: its tokenizer has no chat template" in err and "--chat-template" in err
    assert not (tmp_path / "e" / "config.json").exists()
    pairs = write(tmp_path / "a.json", [{"input": t, "ref": r} for t, r in PAIRS])
    code, _, err = run(capsys, "train", "--model", tiny_gpt2, "--train", f"1 {pairs}", "--method", "lora",
                       "--out", tmp_path / "t", "--chat-template")
    assert code == 2 and f"--model {tiny_gpt2}: its tokenizer has no chat template" in err
    assert not (tmp_path / "t" / "config.json").exists()


def test_eval_wraps_the_prompts_and_the_option_changes_the_fingerprint(chat_model, tmp_path, capsys):
    data = tmp_path / "data"
    write(data / "housework_qa.json", [QA, QA | {"answer": "bed"}])
    write(data / "plan_gen.json", [GEN])
    out = tmp_path / "run"
    args = ["--model", chat_model, "--data", data, "--out", out, "--max-new-tokens", 4]
    assert run(capsys, "eval", *args)[0] == 0
    raw_qa, raw_gen = rows(out, "housework_qa"), rows(out, "plan_gen")
    assert json.loads((out / "config.json").read_text())["config"]["chat_template"] is False  # the default
    code, printed, _ = run(capsys, "eval", *args, "--chat-template")
    assert code == 0 and "already evaluated" not in printed  # the option is part of the resume fingerprint
    assert json.loads((out / "config.json").read_text())["config"]["chat_template"] is True
    chat_qa, chat_gen = rows(out, "housework_qa"), rows(out, "plan_gen")
    assert chat_qa[0]["scores"] != raw_qa[0]["scores"]  # other text scored: the options after the assistant turn
    assert [r["sha256"] for r in chat_qa] == [r["sha256"] for r in raw_qa]  # the same items: the report pairs them
    assert chat_gen[0]["sha256"] == raw_gen[0]["sha256"]
    assert "prompts in the model's chat template (--chat-template)" in eval_run_line(out, "chat", {})
    code, printed, _ = run(capsys, "eval", *args, "--chat-template")
    assert code == 0 and "housework_qa: already evaluated" in printed and "plan_gen: already evaluated" in printed


def test_train_records_the_option_in_its_config_card_and_the_report(chat_model, tmp_path, capsys):
    pairs = write(tmp_path / "a.json", [{"input": t, "ref": r} for t, r in PAIRS])
    out = tmp_path / "r"
    code, _, err = run(capsys, "train", "--model", chat_model, "--train", f"1 {pairs}", "--method", "lora",
                       "--batch-size", "2", "--max-steps", "1", "--out", out, "--chat-template")
    assert code == 0, err
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["options"]["chat_template"] is True and recorded["settings"]["chat_template"] is True
    card = (out / "adapter" / "README.md").read_text()
    assert "| prompts in the base model's chat template | True |" in card
    assert "e2wm eval --chat-template" in card and "add_generation_prompt=True" in card
    assert "prompts in the base model's chat template (--chat-template)" in training_text(out / "adapter", (out, None))
    # a run recorded before the option existed resumes at its default (off), and is refused with it on
    del recorded["settings"]["chat_template"], recorded["options"]["chat_template"]
    (out / "config.json").write_text(json.dumps(recorded))
    resume = ["--model", chat_model, "--train", f"1 {pairs}", "--method", "lora", "--batch-size", "2",
              "--max-steps", "1", "--out", out, "--resume"]
    code, _, err = run(capsys, "train", *resume, "--chat-template")
    assert code == 2 and "was started with other --chat-template True (was False)" in err
    assert run(capsys, "train", *resume)[0] == 0
    assert "chat template" not in training_text(out / "adapter", (out, None))
