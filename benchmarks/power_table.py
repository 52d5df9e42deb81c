"""The power tables of docs/statistics.md: per E2WM file, the 95% interval of one score and the smallest paired
difference found with 80% power, on the dev slice and on the full file (about 3x the dev items); and the items a
paired accuracy difference needs.

    python benchmarks/power_table.py [--data-dir ../shared/e2wm-benchmark/eval-dev]

Arithmetic from the formulas in docs/statistics.md (e2wm.eval.statistics.detectable_difference, PSI,
SD_DIFFERENCE); only the item counts are read, from the dev files.
"""

import argparse
import math
from pathlib import Path
from statistics import NormalDist

from e2wm.eval.statistics import PSI, SD_DIFFERENCE, detectable_difference

DEV = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "eval-dev"
Z95 = 1.96
SD_SCORE = 0.2  # assumed per-item standard deviation of one ROUGE / LCS score (docs/statistics.md)


def counts(folder: Path) -> dict[str, int]:
    """Items per file (non-blank lines) of the dev slice's qa/ and gen/ files: {'qa/count': 65, ...}."""
    return {f"{path.parent.name}/{path.stem}": sum(1 for line in path.open() if line.strip())
            for path in sorted(folder.glob("*/*.json"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEV)
    args = parser.parse_args()
    found = counts(args.data_dir)
    print(f"| QA file | dev n | full n (≈) | 95% interval of one accuracy, ± (dev / full) | smallest paired "
          f"difference, ψ = {PSI} (dev / full) |\n|---|---:|---:|---:|---:|")
    for name, n in sorted(((k, v) for k, v in found.items() if k.startswith("qa/")), key=lambda kv: -kv[1]):
        width = [Z95 * math.sqrt(0.25 / (m - 1)) for m in (n, 3 * n)]
        smallest = [detectable_difference(m, "accuracy") for m in (n, 3 * n)]
        print(f"| {name[3:]} | {n} | {3 * n} | {width[0]:.2f} / {width[1]:.2f} | "
              f"{smallest[0]:.2f} / {smallest[1]:.2f} |")
    print(f"\n| generation file | dev n | full n (≈) | 95% interval of one score, ± (dev / full) | smallest paired "
          f"difference, s_d = {SD_DIFFERENCE} (dev / full) |\n|---|---:|---:|---:|---:|")
    for name, n in sorted(((k, v) for k, v in found.items() if k.startswith("gen/")), key=lambda kv: -kv[1]):
        width = [Z95 * SD_SCORE / math.sqrt(m) for m in (n, 3 * n)]
        smallest = [detectable_difference(m, "rougeL") for m in (n, 3 * n)]
        print(f"| {name[4:]} | {n} | {3 * n} | {width[0]:.3f} / {width[1]:.3f} | "
              f"{smallest[0]:.3f} / {smallest[1]:.3f} |")
    normal = NormalDist()
    factor = (normal.inv_cdf(0.975) + normal.inv_cdf(0.8)) ** 2  # (z_0.975 + z_0.8)^2 = 7.85
    print(f"\nItems needed for a paired accuracy difference δ: n ≈ {factor:.2f} ψ / δ².\n\n"
          "| ψ (items the runs disagree on) | δ = 0.05 | δ = 0.10 | δ = 0.20 |\n|---|---:|---:|---:|")
    for psi in (0.1, 0.3, 0.5):
        print(f"| {psi} | " + " | ".join(f"{math.ceil(factor * psi / d**2)}" for d in (0.05, 0.10, 0.20)) + " |")


if __name__ == "__main__":
    main()
