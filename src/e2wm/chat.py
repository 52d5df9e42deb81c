"""Chat templates: a prompt told as the user's turn and its answer as the assistant's, for `--chat-template`.

What lm-evaluation-harness's `--apply_chat_template` does (lm_eval/api/task.py `fewshot_context` and
`construct_requests`, lm_eval/models/huggingface.py `apply_chat_template` and `tok_encode`):
- the whole prompt, shots included, is one user message (`multiturn_to_singleturn` without
  `--fewshot_as_multiturn`), rendered by the tokenizer's own template with `tokenize=False` and
  `add_generation_prompt=True`; no system message is added (only with `--system_instruction`), so a template
  that writes a default one (SmolLM2's "You are a helpful AI assistant named SmolLM ...") keeps it;
- a multiple-choice option follows the rendered prompt with no target delimiter (" " becomes "");
- a rendered text that already starts with the tokenizer's BOS is encoded without special tokens, so the BOS
  is not doubled (`has_bos_prefix`).
e2wm does the same (`user_turn`, `starts_with_bos`), and for training renders the answer as the assistant's
message (`conversation`): what follows the user turn, the answer and the template's end of turn, is what the
model learns, so that it learns to stop.
"""

from e2wm.errors import InputError

OPTION = "--chat-template"
HELP = ("wrap each prompt as the user's turn of the model's chat template (the model must have one, as "
        "SmolLM2-135M-Instruct does) and its answer as the assistant's; default: the released raw prompts")


def check_template(tokenizer, model: str) -> None:
    """InputError naming the model and the option when its tokenizer has no chat template.

    Args:
        model: the --model value, for the message.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"--model {model}: its tokenizer has no chat template (no chat_template in "
                         f"tokenizer_config.json, no chat_template.jinja), so {OPTION} cannot wrap its prompts; "
                         f"leave {OPTION} out to use the raw prompts")


def user_turn(tokenizer, prompt: str) -> str:
    """The prompt as the user's message, rendered by the tokenizer's chat template with the assistant's turn
    opened (`add_generation_prompt=True`): the text a chat model answers after. e2wm adds no system message; a
    template that writes a default one (SmolLM2's does) keeps it, as lm-evaluation-harness's --apply_chat_template.

    transformers 5.x: `apply_chat_template(conversation, ..., add_generation_prompt, tokenize=False)` returns the
    rendered string.
    """
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def conversation(tokenizer, prompt: str, answer: str) -> tuple[str, str]:
    """(the user turn as `user_turn` renders it, the whole exchange with answer as the assistant's message).

    The whole is the template's rendering of [user: prompt, assistant: answer] (no generation prompt); its text
    after the user turn is the answer with the template's end of turn ("yes<|im_end|>\\n" for ChatML).

    Raises:
        InputError: naming the tokenizer's folder or Hub id, when the whole does not start with the user turn (a
            template that renders the open assistant turn otherwise than a finished one), so that the answer
            cannot be told from the prompt.
    """
    head = user_turn(tokenizer, prompt)
    whole = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                           {"role": "assistant", "content": answer}], tokenize=False)
    if not whole.startswith(head):
        raise InputError(f"{tokenizer.name_or_path}: its chat template renders an answered turn that does not "
                         f"start with the open assistant turn ({head[-40:]!r}), so {OPTION} cannot tell the "
                         f"answer's tokens from the prompt's")
    return head, whole


def starts_with_bos(tokenizer, text: str) -> bool:
    """Whether text begins with the tokenizer's BOS token (a template that writes `{{ bos_token }}`): such a text
    is encoded without the tokenizer's special tokens, as lm-evaluation-harness's `has_bos_prefix` decides."""
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and text.startswith(bos)
