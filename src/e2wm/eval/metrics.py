"""Metrics: accuracy, ROUGE-1/2/L F1 with stemming (rouge-score), and the longest common run of room lists.

Source: the authors' `eval_gen.py` (ROUGE through `evaluate` with use_stemmer=True; `longest_common_substring`
for obj_move_path) and `eval_qa.py` (accuracy). All scores are fractions in [0, 1].

ROUGE in any script: rouge-score's own tokenizer keeps only [a-z0-9] runs, so text in Chinese, Thai, Russian, ...
scores 0 even against itself (huggingface/evaluate issue 256). `ScriptTokenizer` hands every stretch of Latin-script
text (with digits, punctuation, spaces) to rouge-score's tokenizer unchanged, and adds the other scripts' words as
tokens of their own, in their place: text without letters or digits of another script tokenizes exactly as before
(the E2WM English numbers do not move, nor do German ones: a Latin letter outside [a-z], such as ü, still splits
a word as rouge-score does).
"""

from functools import cache

import regex
from rouge_score import rouge_scorer, tokenizers

# letters written without spaces between words: scored per character (with its combining marks), as sacrebleu's
# zh tokenizer and CJK ROUGE implementations do; Script_Extensions, so that Japanese ー and 々 count with their script
SPACELESS = r"\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}\p{scx=Myanmar}"
OTHER_SCRIPTS = regex.compile(
    rf"(?:[[\p{{L}}\p{{N}}]&&[{SPACELESS}]]\p{{M}}*)"  # one character of a script without spaces, with its marks
    rf"|(?:[[\p{{L}}\p{{N}}]--[\p{{sc=Latin}}\p{{sc=Common}}\p{{sc=Inherited}}{SPACELESS}]]\p{{M}}*)+",  # a word
    regex.V1,
)


class ScriptTokenizer(tokenizers.Tokenizer):
    """rouge-score's tokenizer (lowercased [a-z0-9] runs, Porter-stemmed above 3 characters) for Latin-script text,
    and lowercased tokens for the letters and digits of other scripts, in text order.

    A token of another script is a run of its letters, digits and combining marks (Cyrillic, Greek, Arabic,
    Hebrew, Devanagari, Hangul, ...: words between spaces or punctuation), or a single character with its combining
    marks for the scripts written without spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar; per character
    for Thai too: no dictionary segmentation). Letters of the Latin script and characters common to all scripts
    (digits other than 0-9 such as ² or fullwidth ３, punctuation, symbols) are separators, as in rouge-score.
    """

    def __init__(self):
        self.default = tokenizers.DefaultTokenizer(use_stemmer=True)

    def tokenize(self, text: str) -> list[str]:
        """Tokens of text; exactly rouge-score's `DefaultTokenizer(use_stemmer=True)` tokens when text has no
        letter or digit of a script other than Latin (those are separators there, so its stretches split alike)."""
        tokens: list[str] = []
        start = 0
        for match in OTHER_SCRIPTS.finditer(text):
            tokens += self.default.tokenize(text[start : match.start()])
            tokens.append(match.group().lower())
            start = match.end()
        return tokens + self.default.tokenize(text[start:])


@cache
def _rouge_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=ScriptTokenizer())


def rouge_scores(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """ROUGE-1/2/L F1 (Porter-stemmed, rouge-score's tokenizer for Latin text, `ScriptTokenizer` for the other
    scripts) of each (prediction, reference) pair, in [0, 1].

    Returns:
        per pair {"rouge1", "rouge2", "rougeL"} -> its F1. A task's score is their plain mean (where
        `evaluate`'s default reports the bootstrap aggregate's mid value).
    """
    return [{key: score.fmeasure for key, score in _rouge_scorer().score(reference, prediction).items()}
            for prediction, reference in zip(predictions, references)]


def split_list(text: str) -> list[str]:
    """'hallway, dining room' -> ['hallway', 'dining room'] (split at commas, stripped, blank entries dropped).

    The authors' `eval_gen.py` splits at ', ' and keeps blank entries.
    """
    return [part.strip() for part in text.split(",") if part.strip()]


def longest_common_run(a: list[str], b: list[str]) -> int:
    """Length, in items, of the longest contiguous run that appears in both lists (0 when none).

    Dynamic programming in O(len(a) * len(b)) time, O(len(b)) memory: `eval_gen.py`'s
    `longest_common_substring` before its division.
    """
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def lcs_score(prediction: str, reference: str) -> float:
    """Longest common contiguous run of the comma-separated lists / the longer list's length, in [0, 1].

    1.0 when both lists are empty.
    """
    pred, ref = split_list(prediction), split_list(reference)
    longer = max(len(pred), len(ref))
    return longest_common_run(pred, ref) / longer if longer else 1.0


def accuracy(predictions: list[int], answers: list[int]) -> float:
    """Fraction of predicted option indices equal to the answer's, in [0, 1]; needs at least one answer."""
    return sum(p == a for p, a in zip(predictions, answers)) / len(answers)


def headline(result: dict) -> tuple[str, float]:
    """The main metric of a task result as (name, value): the first of accuracy, rougeL, lcs, perplexity present.

    Raises:
        KeyError: when the result has none of them.
    """
    for key in ("accuracy", "rougeL", "lcs", "perplexity"):
        if key in result:
            return key, result[key]
    raise KeyError(f"no known metric in {sorted(result)}")
