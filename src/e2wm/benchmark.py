"""The E2WM benchmark's tasks: one table of what e2wm knows about each (lm-eval's task = data + scoring).

A task is named by its evaluation file (`plan_gen.json` -> plan_gen) and, for the four training tasks,
by its training file (`train_plan_gen.json`). Evaluation (scoring, normalisation), `e2wm build` (shots),
`e2wm train` and the demo (mixture weights) and `e2wm report` (labels) all read this table; a file whose
name is not here is still evaluated, by the rules its records imply (`spec_for`).

Sources: the kinds and metrics are SPEC section 5 and the paper's Table 1; the QA normalisations are the
authors' `eval_qa.py` choices (SPEC 5); shots are those of the released training files; the mixture
weights are the paper's (section 4.1: 0.7 for activity recognition, 1 for the others).
"""

from dataclasses import dataclass
from typing import Literal

Kind = Literal["multiple_choice", "generation"]
Norm = Literal["ln", "un"]
NORMS: tuple[Norm, ...] = ("ln", "un")  # ln: sum log p / option tokens; un: log p(o|input) - log p(o|"Answer:")


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task: how its evaluation file is scored and, for training tasks, how it is built and mixed."""

    name: str
    label: str  # for tables and charts
    kind: Kind  # of the evaluation file
    metric: str  # a name in e2wm.eval.metrics.METRICS, which says how it is scored and read
    norm: Norm | None = None  # multiple choice only
    shots: int | None = None  # training tasks: worked examples before each query in train_<name>
    weight: float | None = None  # training tasks: the paper's mixture weight
    extra_metrics: tuple[str, ...] = ()  # computed beside the metric (e2wm.eval.metrics.EXTRA_SCORERS)

    @property
    def is_training_task(self) -> bool:
        return self.weight is not None


def _qa(name: str, label: str, norm: Norm, shots: int | None = None, weight: float | None = None) -> TaskSpec:
    return TaskSpec(name, label, "multiple_choice", "accuracy", norm, shots, weight)


def _gen(name: str, label: str, metric: str = "rougeL", shots: int | None = None,
         weight: float | None = None, extra_metrics: tuple[str, ...] = ()) -> TaskSpec:
    return TaskSpec(name, label, "generation", metric, None, shots, weight, extra_metrics)


def _plan(name: str, label: str, **kwargs) -> TaskSpec:
    """A plan-generation task: ROUGE-L against the reference, and the plan run in the simulator where its program is
    known (SPEC 6b)."""
    return _gen(name, label, extra_metrics=("execution",), **kwargs)


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    _plan("plan_gen", "plan generation", shots=2, weight=1.0),
    _plan("plan_gen_confusing", "plan gen. (confusing)"),
    _plan("plan_gen_unseen", "plan gen. (unseen)"),
    _plan("plan_gen_unseen_confusing", "plan gen. (unseen, confusing)"),
    _qa("act_recog", "activity recognition", "ln", shots=2, weight=0.7),
    _qa("act_recog_unseen", "act. recog. (unseen)", "ln"),
    _qa("act_infer", "activity inference", "un"),
    _qa("count", "counting", "ln", shots=3, weight=1.0),
    _qa("obj_move", "object path (QA)", "ln", shots=2, weight=1.0),
    _gen("obj_move_path", "object path (gen.)", metric="lcs"),
    _qa("housework_qa", "housework QA", "un"),
    _qa("neg_housework_qa", "negation housework QA", "un"),
    _gen("eai_action_sequence", "EAI action sequencing", metric="task_success"),  # SPEC 6b; e2wm.eval.eai
)}
TRAINING_TASKS: list[str] = [name for name, spec in TASKS.items() if spec.is_training_task]


def spec_for(name: str, kind: Kind) -> TaskSpec:
    """The known task's spec, or for an unknown file the defaults of its kind (ln accuracy, ROUGE-L)."""
    if name in TASKS:
        return TASKS[name]
    return _qa(name, name.replace("_", " "), "ln") if kind == "multiple_choice" else _gen(name, name.replace("_", " "))


def label(name: str) -> str:
    """A readable name for tables and charts ('ppl' and unknown names: underscores become spaces)."""
    return TASKS[name].label if name in TASKS else name.replace("_", " ")


def paper_mixture() -> dict[str, float]:
    """The paper's training mixture: task name -> weight."""
    return {name: TASKS[name].weight for name in TRAINING_TASKS}
