"""--chat-template: prompts as the user's turn of the model's chat template, answers as the assistant's
(lm-evaluation-harness's --apply_chat_template): the exact text and ids, the multiple-choice split, one BOS,
the training targets, and the refusal for a tokenizer without a template."""

import pytest
import torch
from transformers import AutoTokenizer

from e2wm.chat import check_template, conversation, starts_with_bos, user_turn
from e2wm.errors import InputError
from e2wm.eval import generation, qa
from e2wm.eval.encoding import encode, encode_rendered
from e2wm.eval.items import QAItem
from e2wm.models import ModelSpec, load_model, pad_id
from e2wm.train.data import encode_example

# a small ChatML-like template: each turn "<|role|>\ncontent" + EOS + "\n"; the opened assistant turn ends in "\n"
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
WITH_BOS = "{{ bos_token }}" + TEMPLATE  # a template that writes the BOS itself (Llama 3's does)
ITEM = QAItem("Question: To wash dishes, a related item could be\nAnswer:", ["sink", "bed"], 0)


def tokenizer_of(model, template: str | None = TEMPLATE):
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = template
    return tokenizer


def test_the_prompt_is_the_user_turn_with_the_assistant_turn_opened(tiny_gpt2):
    tokenizer = tokenizer_of(tiny_gpt2)
    assert user_turn(tokenizer, "Q: How to watch tv?\nA:") == (
        "<|user|>\nQ: How to watch tv?\nA:<|endoftext|>\n<|assistant|>\n")  # no system turn is added
    head, whole = conversation(tokenizer, "Q: How to watch tv?\nA:", "Walk to tv.")
    assert head == user_turn(tokenizer, "Q: How to watch tv?\nA:")
    assert whole == head + "Walk to tv.<|endoftext|>\n"


def test_a_tokenizer_without_a_template_is_refused_naming_model_and_option(tiny_gpt2):
    with pytest.raises(InputError, match=r"^--model m: its tokenizer has no chat template .*--chat-template"):
        check_template(tokenizer_of(tiny_gpt2, None), "m")
    check_template(tokenizer_of(tiny_gpt2), "m")  # a template: accepted


def test_a_template_whose_answered_turn_does_not_extend_the_prompt_is_refused(tiny_gpt2):
    odd = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}" \
          "ASSISTANT:{% endif %}"
    with pytest.raises(InputError, match="does not start with the open assistant turn"):
        conversation(tokenizer_of(tiny_gpt2, odd), "Q", "A")


def test_a_bos_the_template_writes_is_not_doubled(tiny_llama):
    tokenizer = tokenizer_of(tiny_llama, WITH_BOS)  # the tokenizer adds <s> itself too
    bos = tokenizer.bos_token_id
    text = user_turn(tokenizer, "Walk to kitchen.")
    assert text.startswith("<s><|user|>\n") and starts_with_bos(tokenizer, text)
    assert encode(tokenizer, text)[:2] == [bos, bos]  # encoded as a raw prompt, the BOS would be there twice
    ids = encode_rendered(tokenizer, text)
    assert ids == tokenizer(text, add_special_tokens=False).input_ids and ids[0] == bos and ids.count(bos) == 1
    # a template without a BOS: the tokenizer's own is added, as for a raw prompt
    plain = user_turn(tokenizer_of(tiny_llama), "Walk to kitchen.")
    assert encode_rendered(tokenizer, plain) == encode(tokenizer, plain) and encode(tokenizer, plain)[0] == bos
    prompts, _ = generation.encode_prompts(tokenizer, ["Walk to kitchen."], 512, 16, chat=True)
    assert prompts == [ids]


def test_generation_prompts_are_the_rendered_user_turns(tiny_gpt2):
    tokenizer = tokenizer_of(tiny_gpt2)
    prompts, truncated = generation.encode_prompts(tokenizer, ["Q: How to watch tv?\nA:"], 512, 16, chat=True)
    assert prompts == [tokenizer("<|user|>\nQ: How to watch tv?\nA:<|endoftext|>\n<|assistant|>\n").input_ids]
    assert truncated == 0
    raw, _ = generation.encode_prompts(tokenizer, ["Q: How to watch tv?\nA:"], 512, 16)
    assert raw == [tokenizer("Q: How to watch tv?\nA:").input_ids]  # the default: the raw prompt


def test_options_are_scored_right_after_the_assistant_prefix_without_a_space(tiny_gpt2):
    tokenizer = tokenizer_of(tiny_gpt2)
    turn = user_turn(tokenizer, ITEM.input)
    encoded = qa.encode_item(tokenizer, ITEM, 512, chat=True)
    assert encoded.context == tokenizer(turn).input_ids  # the newline that opens the answer stays in the context
    assert tokenizer.decode(encoded.context).endswith("<|assistant|>\n")
    for option, ids in zip(ITEM.options, encoded.options):
        assert tokenizer.decode(ids) == option  # exactly the option, no " " before it (lm-eval's target delimiter "")
        assert encoded.context + ids == tokenizer(turn + option).input_ids
    raw = qa.encode_item(tokenizer, ITEM, 512)
    assert [tokenizer.decode(ids) for ids in raw.options] == [" sink", " bed"]  # the default keeps " " + option


def test_chat_log_probs_are_those_of_the_option_tokens_after_the_rendered_turn(tiny_gpt2):
    tokenizer = tokenizer_of(tiny_gpt2)
    model, _ = load_model(ModelSpec(str(tiny_gpt2), device="cpu"))

    def direct(context: list[int], option: list[int]) -> float:  # one forward pass over the whole sequence
        with torch.no_grad():
            logits = model(torch.tensor([context + option])).logits[0].log_softmax(-1)  # (T, V)
        return sum(logits[len(context) - 1 + i, token].item() for i, token in enumerate(option))

    encoded = qa.encode_item(tokenizer, ITEM, 512, chat=True)
    [scores] = qa.option_logprobs(model, [encoded], pad_id(tokenizer))
    assert scores == pytest.approx([direct(encoded.context, ids) for ids in encoded.options], abs=1e-4)
    unconditional = qa.unconditional_logprobs(model, tokenizer, ITEM.options, pad_id(tokenizer), chat=True)
    answer_turn = tokenizer(user_turn(tokenizer, qa.UNCONDITIONAL_CONTEXT)).input_ids  # "Answer:" as the user's turn
    for option in ITEM.options:
        assert unconditional[option] == pytest.approx(direct(answer_turn, tokenizer(option).input_ids), abs=1e-4)


def test_training_learns_the_answer_and_the_end_of_turn_only(tiny_gpt2, tiny_llama):
    tokenizer = tokenizer_of(tiny_gpt2)
    example = encode_example(tokenizer, "Q: How to watch tv?\nA:", "Walk to tv.", 0.5, 800, chat=True)
    prompt = user_turn(tokenizer, "Q: How to watch tv?\nA:")
    assert example.ids == tokenizer(prompt + "Walk to tv.<|endoftext|>\n").input_ids
    learnt = [i for i, ref in zip(example.ids, example.is_ref) if ref]
    assert tokenizer.decode(learnt) == "Walk to tv.<|endoftext|>\n"  # the answer, then the template's end of turn
    assert tokenizer.decode([i for i, ref in zip(example.ids, example.is_ref) if not ref]) == prompt
    assert example.is_ref == [False] * len(tokenizer(prompt).input_ids) + [True] * len(learnt)
    raw = encode_example(tokenizer, "Q: How to watch tv?\nA:", "Walk to tv.", 0.5, 800)
    assert tokenizer.decode([i for i, ref in zip(raw.ids, raw.is_ref) if ref]) == " Walk to tv.\n"  # the default
    # a template that writes the BOS: one BOS, not trained
    llama = tokenizer_of(tiny_llama, WITH_BOS)
    example = encode_example(llama, "Walk to kitchen.", "Open fridge.", 1.0, 800, chat=True)
    assert example.ids[0] == llama.bos_token_id and example.ids.count(llama.bos_token_id) == 1
    prompt_ids = llama(user_turn(llama, "Walk to kitchen."), add_special_tokens=False).input_ids
    assert example.is_ref == [False] * len(prompt_ids) + [True] * (len(example.ids) - len(prompt_ids))
    assert llama.decode(example.ids[len(prompt_ids):]).startswith("Open fridge.</s>")  # (its "\n" is <unk> here)
