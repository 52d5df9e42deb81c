"""E2WM tasks for lm-evaluation-harness, scored as `e2wm eval` scores them (copied beside the YAML files by
`e2wm export lm-eval`; needs lm-eval 0.4.x, transformers and rouge-score, not e2wm).

Every task YAML names `class: !function utils.E2WMTask`: a ConfigurableTask whose data files are read
relative to this folder (so the folder can be moved) and whose scores are E2WM's, not lm-eval's defaults:
- multiple choice, `ln` (metadata norm): the option's summed log-prob divided by its number of tokens
  (lm-eval's acc_norm divides by characters); the token count is that of the continuation lm-eval's HF and
  vLLM models score (`continuation_tokens`), from the model's tokenizer, named by the run's metadata
  (`--model_args pretrained=M[,tokenizer=T]` puts it there; a Python caller passes
  `TaskManager(include_path=DIR, metadata={"tokenizer": T})`);
- multiple choice, `un`: log p(" " + o | input) - log p(" " + o | "Answer:"), the second term from one extra
  loglikelihood request per option (lm-eval's acc_mutual_info conditions on an empty context instead);
- generation: the first line of the greedy continuation, stripped; ROUGE-1/2/L F1 with Porter stemming
  (rouge-score) for plans, the longest common contiguous run of the comma-separated room lists over the
  longer list's length for object paths.
The metric `acc` is the mean of 0/1 item scores: its stderr (lm-eval's mean_stderr, sqrt(p (1 - p) / (n - 1)))
is `e2wm eval`'s accuracy_stderr.
Sources: the authors' eval_qa.py and eval_gen.py (SPEC section 5); e2wm.eval.qa and e2wm.eval.metrics.
"""

import difflib
import logging
from functools import cache
from pathlib import Path

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

HERE = Path(__file__).resolve().parent
NORMS = ("ln", "un")
UNCONDITIONAL_CONTEXT = "Answer:"  # e2wm.eval.qa's, the `un` tasks' default when the metadata names none
logger = logging.getLogger(__name__)


def first_line(text: str) -> str:
    """The prediction: text before the first newline, stripped (eval_gen.py's `pred.split('\\n')[0].strip()`)."""
    return text.split("\n", 1)[0].strip()


@cache
def rouge_scorer():
    from rouge_score import rouge_scorer as scorers

    return scorers.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """{"rouge1", "rouge2", "rougeL"} -> F1 in [0, 1] of one (prediction, reference) pair, Porter-stemmed."""
    return {key: score.fmeasure for key, score in rouge_scorer().score(reference, prediction).items()}


def rooms(text: str) -> list[str]:
    """'hallway, dining room' -> ['hallway', 'dining room'] (split at commas, stripped, blank entries dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def lcs(prediction: str, reference: str) -> float:
    """The longest contiguous run of rooms found in both lists over the longer list's length, in [0, 1]; 1.0
    when both are empty. difflib without junk heuristics finds the longest common run exactly."""
    predicted, expected = rooms(prediction), rooms(reference)
    longer = max(len(predicted), len(expected))
    if not longer:
        return 1.0
    matcher = difflib.SequenceMatcher(None, predicted, expected, autojunk=False)
    return matcher.find_longest_match(0, len(predicted), 0, len(expected)).size / longer


def continuation_tokens(tokenizer, context: str, continuation: str) -> tuple[int, bool]:
    """How many tokens lm-eval's HF and vLLM models score for (context, continuation), and whether the split is
    clean.

    lm-eval (`TemplateLM._encode_pair`) moves the context's trailing whitespace to the continuation, encodes the
    whole string and the context, and scores the whole's tokens past the context's length. The split is clean
    when the whole's encoding starts with the context's: then those tokens are exactly the option's, as
    `e2wm eval` scores them. A tokenizer whose merges cross the boundary (no pre-tokenizer) is not clean: lm-eval
    then scores other tokens than `e2wm eval`, which encodes the option on its own.
    """
    stripped = context.rstrip()
    whole = tokenizer.encode(stripped + context[len(stripped):] + continuation)
    own = tokenizer.encode(stripped)
    return len(whole) - len(own), whole[: len(own)] == own


def normalised_scores(logprobs: list[float], options: int, norm: str, token_counts: list[int] | None = None,
                      ) -> list[float]:
    """Per option its E2WM score; the argmax (first on ties) is the prediction.

    Args:
        logprobs: per option log p(option | input) in nats, then for 'un' per option log p(option | "Answer:").
        options: the number of options.
        norm: 'ln' (log-prob per option token, with token_counts) or 'un' (difference of the two log-probs).
    """
    conditional = logprobs[:options]
    if norm == "un":
        return [c - u for c, u in zip(conditional, logprobs[options:])]
    return [lp / count for lp, count in zip(conditional, token_counts)]


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


@cache
def load_tokenizer(name: str, revision: str | None, trust_remote_code: bool):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)


def tokenizer_of(metadata: dict):
    """The model's tokenizer from the run's metadata: `tokenizer`, else `pretrained` (a name, a folder or a
    tokenizer object), with `revision` and `trust_remote_code` as the model arguments give them.

    Raises ValueError when neither is a name or a tokenizer (a model object passed without metadata)."""
    source = metadata.get("tokenizer") or metadata.get("pretrained")
    if not isinstance(source, str):
        if hasattr(source, "encode"):  # a tokenizer object
            return source
        raise ValueError("E2WM ln tasks count each option's tokens with the model's tokenizer: run with "
                         "--model_args pretrained=M (or tokenizer=T), or pass "
                         "TaskManager(include_path=DIR, metadata={'tokenizer': T})")
    trust = str(metadata.get("trust_remote_code", False)).lower() == "true"
    return load_tokenizer(source, metadata.get("tokenizer_revision") or metadata.get("revision"), trust)


class E2WMTask(ConfigurableTask):
    """A task of the YAML beside this file: data relative to this folder, E2WM's scores (see the module doc).

    Metadata keys written by the export: `norm` (ln or un) and, for un, `unconditional_context` ("Answer:") of a
    multiple-choice task; `metric` (rougeL or lcs) of a generation task.
    """

    def __init__(self, config: dict, **kwargs):
        config = {key: value for key, value in config.items() if key != "class"}
        dataset = dict(config.get("dataset_kwargs") or {})
        dataset["data_files"] = {split: str(HERE / path) for split, path in dataset["data_files"].items()}
        config["dataset_kwargs"] = dataset
        config["process_results"] = self.score  # also keeps lm-eval from looking the metric names up
        super().__init__(config=config, **kwargs)
        self.norm = self.config.metadata.get("norm")
        self.metric = self.config.metadata.get("metric")
        if self.OUTPUT_TYPE == "multiple_choice" and self.norm not in NORMS:
            raise ValueError(f"{self.config.task}: metadata norm must be one of {NORMS}, got {self.norm!r}")
        self.unconditional = self.config.metadata.get("unconditional_context") or UNCONDITIONAL_CONTEXT
        self.tokenizer = tokenizer_of(self.config.metadata) if self.norm == "ln" else None
        self.crossing_warned = False

    def construct_requests(self, doc, ctx, **kwargs):
        """lm-eval's requests (one (input, " " + option) per option), then for `un` one ("Answer:", " " + option)
        per option.

        Raises ValueError for a multiple-choice task under `--apply_chat_template`: lm-eval then scores the option
        after the rendered prompt with the template's closing newline moved into the scored continuation
        (`_encode_pair`), which neither the `ln` token counts nor the `un` term here follow (`e2wm eval
        --chat-template` scores the option's own tokens); generation tasks are rendered as `e2wm eval` renders
        them."""
        if self.OUTPUT_TYPE == "multiple_choice" and kwargs.get("apply_chat_template"):
            raise ValueError(f"{self.config.task}: E2WM's multiple-choice scores are not defined under lm-eval's "
                             f"--apply_chat_template; run these tasks without it, or `e2wm eval --chat-template`")
        requests = super().construct_requests(doc, ctx, **kwargs)
        if self.OUTPUT_TYPE != "multiple_choice" or self.norm != "un":
            return requests
        delimiter = self.config.target_delimiter
        return requests + [
            Instance(request_type="loglikelihood", doc=doc, arguments=(self.unconditional, delimiter + option),
                     idx=len(requests) + i, metadata=kwargs["metadata"])
            for i, option in enumerate(self.doc_to_choice(doc))
        ]

    def option_scores(self, doc: dict, logprobs: list[float]) -> list[float]:
        """The doc's options' E2WM scores from their log-likelihoods (`normalised_scores`)."""
        options = self.doc_to_choice(doc)
        counts = None
        if self.norm == "ln":
            context = self.doc_to_text(doc)
            splits = [continuation_tokens(self.tokenizer, context, self.config.target_delimiter + o) for o in options]
            counts = [count for count, _ in splits]
            if not all(clean for _, clean in splits) and not self.crossing_warned:
                self.crossing_warned = True
                logger.warning("%s: the tokenizer merges across the question/answer boundary; lm-eval scores the "
                               "joint encoding's tokens past the question's, `e2wm eval` the option's own tokens, so "
                               "the two can differ on this task", self.config.task)
        return normalised_scores(logprobs, len(options), self.norm, counts)

    def score(self, doc: dict, results: list) -> dict[str, float]:
        """process_results: {"acc": 0/1} for multiple choice; {"rouge1", "rouge2", "rougeL"} or {"lcs"} for
        generation (each in [0, 1], averaged over the items by lm-eval)."""
        if self.OUTPUT_TYPE == "generate_until":
            prediction, reference = first_line(results[0]), self.doc_to_target(doc)
            return {"lcs": lcs(prediction, reference)} if self.metric == "lcs" else rouge(prediction, reference)
        scores = self.option_scores(doc, [logprob for logprob, _ in results])
        return {"acc": float(argmax(scores) == self.doc_to_target(doc))}
