"""`e2wm demo`: every stage on the embedded model (de-quantised SmolLM2-135M-Instruct), on a CPU, in about
20 minutes; the job is recipes.demo.run_demo."""

import time

from e2wm.recipes.demo import DemoConfig, run_demo

CONFIG = DemoConfig


def run(config: DemoConfig) -> None:
    start = time.time()
    report = run_demo(config)
    print(f"\ne2wm demo: done in {time.time() - start:.0f} s; the report is {report} (charts beside it)")
