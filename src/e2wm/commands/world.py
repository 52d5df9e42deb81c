"""`e2wm world`: show a program (activity, initial facts, human program, goal) and optionally replay it."""

from e2wm.world.config import WorldConfig
from e2wm.world.describe import show_program

CONFIG = WorldConfig


def run(config: WorldConfig) -> None:
    print("\n".join(show_program(config)))
