"""The option every job that reads RobotHow programs shares, and the config of `e2wm world`."""

from dataclasses import dataclass

from e2wm import config
from e2wm.config import option


@dataclass(kw_only=True)
class RobotHowOptions:
    """Where the RobotHow programs come from: a config base class (world, collect)."""

    robothow_dir: str | None = option(None, "a full RobotHow directory (same layout) instead of the bundled one")

    def __post_init__(self) -> None:
        config.check(self)


@dataclass(kw_only=True)
class WorldConfig(RobotHowOptions):
    """`e2wm world`: show one program and optionally replay it."""

    program: str = option(help="program id, e.g. file1003_2")
    replay: bool = option(False, "execute the human program; report the goal facts")
