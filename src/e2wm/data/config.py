"""The config of `e2wm build`: experience records -> the E2WM training files and evaluation files."""

from dataclasses import dataclass

from e2wm import config
from e2wm.config import option
from e2wm.errors import InputError

EVALUATION = "evaluation files of records kept out of training (OUT/heldout/)"


@dataclass(kw_only=True)
class BuildConfig:
    """`e2wm build` / `e2wm.build`: the four training files, evaluation files and stats.json from experiences."""

    plans: str | None = option(None, "plan records from `e2wm collect plans` (JSONL)")
    explore: str | None = option(None, "exploration episodes from `e2wm collect explore` (JSONL)")
    out: str = option(help="output folder", result=False)
    shots: int | None = option(None, "shots per example for every training task (default: as released, "
                               "e2wm.benchmark: 2 for plan_gen, act_recog and obj_move, 3 for count)", minimum=0)
    seed: int = option(0, "fixes stories, names, shots and the held-out split")
    story_steps: int | None = option(None, "tell only the first N successful steps of each episode (shorter "
                                     "stories; the whole episode is still verified; default: every step)", minimum=1,
                                     metavar="N")
    answer_form: str = option("sentence", "how train_count and train_obj_move answer: sentence (as released: 'There "
                              "are 2 items on the desk. They are ...', the object's rooms in order) or option (as "
                              "the benchmark asks: the digit; where the object was before or after a room)",
                              choices=("sentence", "option"))
    tokenizer: str | None = option(None, "a model (Hub id, folder or smollm2-135m) for token percentiles")
    exclude_programs: list[str] | None = option(None, "keep these programs' plan records out of every file the build "
                                                "writes (training and evaluation files): eai (the 342 programs of "
                                                "the Embodied Agent Interface's action-sequencing tasks), a text "
                                                "file of program ids (one a line, # comments) or program ids; "
                                                "stats.json says what was excluded", metavar="EAI|FILE|ID")
    eval_episodes: int = option(0, "keep N episodes out of training and write them as count, obj_move and "
                                "obj_move_path (one question each)", minimum=0, metavar="N", group=EVALUATION)
    eval_programs: int = option(0, "keep N programs of activities that stay in training out of it and write them "
                                "as plan_gen, plan_gen_confusing and act_recog", minimum=0, metavar="N",
                                group=EVALUATION)
    holdout_activities: int = option(0, "keep every program of K activities out of training and write them as "
                                     "plan_gen_unseen, plan_gen_unseen_confusing and act_recog_unseen", minimum=0,
                                     metavar="K", group=EVALUATION)

    def __post_init__(self) -> None:
        config.check(self)
        if self.plans is None and self.explore is None:
            raise InputError("give --plans, --explore or both")
        for name, value, needs, given in (("--holdout-activities", self.holdout_activities, "--plans", self.plans),
                                          ("--eval-programs", self.eval_programs, "--plans", self.plans),
                                          ("--eval-episodes", self.eval_episodes, "--explore", self.explore)):
            if value and given is None:
                raise InputError(f"{name} {value}: needs {needs}")
        if self.exclude_programs == []:
            raise InputError("--exclude-programs needs a value (eai, a file of program ids or ids); leave it out to "
                             "keep every program")
        if self.exclude_programs is not None and self.plans is None:
            raise InputError(f"--exclude-programs {' '.join(self.exclude_programs)}: needs --plans (exploration "
                             "episodes come from scenes, not programs)")
