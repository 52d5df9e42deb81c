"""The config of `e2wm build`: experience records -> the E2WM training files."""

from dataclasses import dataclass

from e2wm import config
from e2wm.config import option
from e2wm.errors import InputError


@dataclass(kw_only=True)
class BuildConfig:
    """`e2wm build` / `e2wm.build`: the four training files, held-out files and stats.json from experiences."""

    plans: str | None = option(None, "plan records from `e2wm collect plans` (JSONL)")
    explore: str | None = option(None, "exploration episodes from `e2wm collect explore` (JSONL)")
    out: str = option(help="output folder", result=False)
    shots: int | None = option(None, "shots per example for every task (default: as released, e2wm.benchmark: 2 "
                               "for plan_gen, act_recog and obj_move, 3 for count)", minimum=0)
    seed: int = option(0, "fixes stories, names, shots and the held-out split")
    holdout_activities: int = option(0, "hold K activities out of training and write them as unseen evaluation "
                                     "files", minimum=0, metavar="K")
    story_steps: int | None = option(None, "tell only the first N successful steps of each episode (shorter "
                                     "stories; the whole episode is still verified; default: every step)", minimum=1,
                                     metavar="N")
    tokenizer: str | None = option(None, "a model (Hub id, folder or smollm2-135m) for token percentiles")

    def __post_init__(self) -> None:
        config.check(self)
        if self.plans is None and self.explore is None:
            raise InputError("give --plans, --explore or both")
        if self.holdout_activities and self.plans is None:
            raise InputError(f"--holdout-activities {self.holdout_activities}: needs --plans")
