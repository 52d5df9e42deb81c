"""The exported tasks' scoring (e2wm/eval/lm_eval/utils.py) computes what e2wm.eval computes."""

import random

import pytest
from transformers import AutoTokenizer

from e2wm.eval import generation, metrics, qa
from e2wm.eval.encoding import encode_pair
from e2wm.eval.items import QAItem

pytest.importorskip("lm_eval", reason="lm-eval is not installed (it is in the dev extra: pip install -e '.[dev]')")
from e2wm.eval.lm_eval import utils  # noqa: E402  (imports lm_eval)

ROOMS = ["hallway", "kitchen", "bathroom", "bedroom", "dining room"]


def test_constants_equal_e2wm():
    assert utils.UNCONDITIONAL_CONTEXT == qa.UNCONDITIONAL_CONTEXT and utils.NORMS == ("ln", "un")


def test_lcs_equals_e2wm_on_random_lists():
    rng = random.Random(0)
    for _ in range(500):
        a, b = ([rng.choice(ROOMS) for _ in range(rng.randint(0, 7))] for _ in range(2))
        prediction, reference = ", ".join(a) + rng.choice(["", ",", ", "]), ", ".join(b)
        assert utils.lcs(prediction, reference) == metrics.lcs_score(prediction, reference)
    assert utils.lcs("hallway, kitchen, bedroom", "kitchen, bedroom, hallway") == 2 / 3
    assert utils.lcs("", " , ") == 1.0


def test_rouge_and_first_line_equal_e2wm():
    pairs = [("Walk to bathroom. Grabbing toothbrushes.", "Walk to bathroom. Grab toothbrush."), ("", "Walk."),
             ("Open fridge", "Close fridge. Open fridge.")]
    assert [utils.rouge(p, r) for p, r in pairs] == metrics.rouge_scores(*zip(*pairs))
    for text in [" Walk to kitchen. \nGrab cup.", "no newline ", "\nfirst empty"]:
        assert utils.first_line(text) == generation.first_line(text)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("context", ["Question: where?\nAnswer:", "Answer: ", "A:"])
def test_counted_tokens_are_the_scored_option_tokens(fixture, context, request):
    """BPE (Ġ) and SentencePiece-style (▁, BOS) tokenizers split cleanly at the space before an option: lm-eval's
    count is the number of tokens `e2wm eval` scores."""
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    for option in ["yes", "dining room", "Walk to kitchen. Grab cup."]:
        count, clean = utils.continuation_tokens(tokenizer, context, " " + option)
        assert clean and count == len(encode_pair(tokenizer, context, " " + option)[1])


def test_a_merge_across_the_boundary_is_detected():
    """A BPE without pre-tokenizer learns "Answer: C" as one token: the joint encoding does not start with the
    context's, so lm-eval's split scores other tokens than e2wm's (which encodes " C" on its own)."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.train_from_iterator(["Answer: C\n", "Answer: D\n"] * 50, trainers.BpeTrainer(special_tokens=["<unk>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>")
    count, clean = utils.continuation_tokens(tokenizer, "Answer:", " C")
    assert not clean and count != len(encode_pair(tokenizer, "Answer:", " C")[1])


def test_normalised_scores_equal_e2wm():
    item = QAItem("q", ["a", "bb"], 1)
    encoded = qa.EncodedItem([1], [[5], [6, 7]], False)
    assert utils.normalised_scores([-2.0, -3.0], 2, "ln", [1, 2]) == qa.normalise(item, encoded, [-2.0, -3.0], "ln",
                                                                                  None)
    assert utils.normalised_scores([-2.0, -3.0, -1.0, -4.0], 2, "un") == qa.normalise(
        item, encoded, [-2.0, -3.0], "un", {"a": -1.0, "bb": -4.0})
    assert utils.argmax([1.0, 3.0, 3.0]) == qa.argmax([1.0, 3.0, 3.0]) == 1


def test_the_tokenizer_comes_from_the_run_metadata(tiny_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    assert utils.tokenizer_of({"tokenizer": tokenizer}) is tokenizer
    loaded = utils.tokenizer_of({"pretrained": str(tiny_gpt2), "peft": "adapter"})
    assert loaded("Walk to kitchen.").input_ids == tokenizer("Walk to kitchen.").input_ids
    with pytest.raises(ValueError, match="run with --model_args pretrained=M"):
        utils.tokenizer_of({"pretrained": object()})
