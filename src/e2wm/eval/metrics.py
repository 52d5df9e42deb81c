"""Metrics: the metric table, accuracy, ROUGE-1/2/L F1 with stemming (rouge-score), the longest common run of room
lists, and the hooks of scorers that judge by other means (EAI's evaluator, plan execution).

`METRICS` is the one table of what e2wm knows about a metric (lm-evaluation-harness's `metric_list`: the metric, how
items are scored, `higher_is_better`): a task's metric in the task registry (`e2wm.benchmark`) names an entry;
evaluation scores generation items with its `score`, and `headline`, the report's bounds, labels, families and
verdict directions read it. A new metric is one entry here.

Source: the authors' `eval_gen.py` (ROUGE through `evaluate` with use_stemmer=True; `longest_common_substring`
for obj_move_path) and `eval_qa.py` (accuracy). All scores are fractions in [0, 1].

ROUGE in any script: rouge-score's own tokenizer keeps only [a-z0-9] runs, so text in Chinese, Thai, Russian, ...
scores 0 even against itself (huggingface/evaluate issue 256). `ScriptTokenizer` hands every stretch of Latin-script
text (with digits, punctuation, spaces) to rouge-score's tokenizer unchanged, and adds the other scripts' words as
tokens of their own, in their place: text without letters or digits of another script tokenizes exactly as before
(the E2WM English numbers do not move, nor do German ones: a Latin letter outside [a-z], such as ü, still splits
a word as rouge-score does).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class Scores:
    """What a scorer gives for a task's items.

    per_item: metric name -> per-item scores, (n,) each, in [0, 1]; their means become the task's result and the
        headline metric's list becomes each prediction row's `score`.
    rows: per item extra fields for its prediction row (the judge's findings), or None.
    summary: extra fields of the task's result (the judge's own summary, counts).
    binary: names in per_item whose scores are 0/1 (binomial standard error and Wilson interval, else bootstrap).
    """

    per_item: dict[str, list[float]]
    rows: list[dict] | None = None
    summary: dict = field(default_factory=dict)
    binary: frozenset[str] = frozenset()


# (items, predictions, config) -> Scores: items are the task's GenItems, predictions their texts (cut as the task
# says), config the EvalConfig (a judge may need its options: the RobotHow directory, the prompt form)
Scorer = Callable[[list, list[str], object], Scores]


def rouge_scorer_of(items: list, predictions: list[str], config=None) -> Scores:
    """ROUGE-1/2/L F1 of each prediction against its item's ref (`rouge_scores`)."""
    scores = rouge_scores(predictions, [item.ref for item in items])
    return Scores({key: [s[key] for s in scores] for key in ("rouge1", "rouge2", "rougeL")})


def lcs_scorer_of(items: list, predictions: list[str], config=None) -> Scores:
    """The longest-common-run ratio of each prediction's room list against its item's ref (`lcs_score`)."""
    return Scores({"lcs": [lcs_score(p, item.ref) for p, item in zip(predictions, items)]})


def eai_scorer_of(items: list, predictions: list[str], config) -> Scores:
    """EAI's evaluator on the predictions (`e2wm.eval.eai.score`)."""
    from e2wm.eval import eai

    return eai.score(items, predictions, config)


def execution_scorer_of(items: list, predictions: list[str], config) -> Scores:
    """Plans run in the simulator from their program's initial graph (`e2wm.eval.execution.score`)."""
    from e2wm.eval import execution

    return execution.score(items, predictions, config)


@dataclass(frozen=True)
class Metric:
    """One metric of metrics.json: how items are scored under it and how reports read it.

    name: its key in a task's result; label: its name in tables; higher_is_better: the direction of a gain;
    bounds: the range of a valid value (a fraction, or a perplexity of at least 1); family: (name, what its
    tasks are called): tasks whose metrics share a family are averaged together in reports (never across
    families: their scales differ), None for none; binary: item scores are 0/1 (binomial standard error,
    Wilson interval, and the accuracy's power assumption); score: for generation tasks, the scorer of their
    predictions (None: scored elsewhere, as multiple-choice accuracy by log-likelihood and perplexity by
    token NLL).
    """

    name: str
    label: str
    higher_is_better: bool = True
    bounds: tuple[float, float] = (0.0, 1.0)
    family: tuple[str, str] | None = None
    binary: bool = False
    score: Scorer | None = None


METRICS: dict[str, Metric] = {metric.name: metric for metric in (  # in headline order
    Metric("accuracy", "accuracy", family=("accuracy", "QA"), binary=True),
    Metric("rougeL", "ROUGE-L F1", family=("ROUGE-L / LCS", "generation"), score=rouge_scorer_of),
    Metric("lcs", "LCS ratio", family=("ROUGE-L / LCS", "generation"), score=lcs_scorer_of),
    Metric("task_success", "EAI task success", family=("EAI task success", "EAI"), binary=True, score=eai_scorer_of),
    Metric("perplexity", "perplexity", higher_is_better=False, bounds=(1.0, math.inf)),
    # beside a task's main metric only (`eval.secondary`): a plan run in the simulator (`eval.execution`), EAI's
    Metric("steps_executed", "steps executed"),
    Metric("goals_reached", "goal facts reached"),
    Metric("executable", "whole plan executable", binary=True),
)}
# metrics computed beside a task's own (TaskSpec.extra_metrics): name -> scorer
EXTRA_SCORERS: dict[str, Scorer] = {"execution": execution_scorer_of}


def families() -> dict[str, tuple[tuple[str, ...], str]]:
    """Family name -> (its metrics, what its tasks are called), in `METRICS` order."""
    found: dict[str, tuple[tuple[str, ...], str]] = {}
    for metric in METRICS.values():
        if metric.family is not None:
            name, kind = metric.family
            found[name] = (found.get(name, ((), kind))[0] + (metric.name,), kind)
    return found


def headline(result: dict) -> tuple[str, float]:
    """The main metric of a task result as (name, value): the first metric of `METRICS` present.

    Raises:
        KeyError: when the result has none of them.
    """
    for key in METRICS:
        if key in result:
            return key, result[key]
    raise KeyError(f"no known metric in {sorted(result)}")
