"""One evaluation run's results.md and answers.png, from its metrics ({task: result}, as in metrics.json).

results.md: warnings first (--limit cut a file, a model that gave every item the same answer, an accuracy not
above the majority baseline of the scored items), then a row per task with its score, 95% interval, standard
error and baselines, then per multiple-choice file the predicted against the gold answers. answers.png draws
those histograms.
"""

from pathlib import Path

from e2wm.eval.metrics import headline
from e2wm.eval.report import cell, pyplot, quiet_glyphs, save_figure, visible
from e2wm.eval.statistics import score_interval

TOP_ANSWERS = 8  # answers shown per file in results.md and answers.png; the rest are summed as "other"
ANSWER_WIDTH = 40  # characters of an answer shown at most


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def short(answer: str) -> str:
    """An answer on one line (`visible`) cut to ANSWER_WIDTH characters for tables and charts (… marks a cut)."""
    answer = visible(answer)
    return answer if len(answer) <= ANSWER_WIDTH else answer[: ANSWER_WIDTH - 1] + "…"


def warnings(results: dict, limit: int | None) -> list[str]:
    """The warning lines of results.md: --limit cut files, constant answers, and accuracies not above the better
    of the chance and majority baselines."""
    lines = []
    cut = [name for name, result in results.items() if result.get("n", 0) < result.get("n_original", 0)]
    if limit and cut:
        lines.append(f"**Warning: --limit {limit} scored only the first {limit} items of {len(cut)} file(s) "
                     f"({', '.join(cut)}); these are not full-benchmark scores, and their baselines are those of the "
                     "scored items.**")
    for name, result in results.items():
        if "majority" not in result:
            continue
        if result["constant_prediction"]:
            answer = next(iter(result["answers"]["predicted"]))
            lines.append(f"**Warning: {name}: the model gave the same answer ('{short(answer)}') to all "
                         f"{result['n']} items; its accuracy is only that answer's share of the gold answers.**")
        if result["accuracy"] <= max(result["majority"], result["chance"]):
            if result["majority"] >= result["chance"]:
                baseline = (f"the majority baseline {result['majority']:.4f} (always answering "
                            f"'{short(result['majority_answer'])}')")
            else:
                baseline = f"the chance baseline {result['chance']:.4f} (an option picked at random)"
            lines.append(f"**Warning: {name}: accuracy {result['accuracy']:.4f} is not above {baseline}.**")
    return lines


def task_row(name: str, result: dict) -> str:
    """| task | metric | score | 95% CI | stderr | chance | majority | n | truncated | for one task or perplexity
    (n: its texts, its tokens beside the score)."""
    metric, value = headline(result)
    extra, stderr = "", result.get(f"{metric}_stderr")
    if metric == "rougeL":
        extra = f" (R1 {result['rouge1']:.4f}, R2 {result['rouge2']:.4f})"
    if result.get("execution_known"):  # plans run in the simulator (e2wm.eval.execution)
        extra += (f"; run in the simulator, {result['execution_known']} of known program: executable "
                  f"{fmt(result.get('executable'))}, steps executed {fmt(result.get('steps_executed'))}, goal facts "
                  f"reached {fmt(result.get('goals_reached'))}")
    if metric == "task_success":  # EAI's: the evaluator counts only the tasks whose gold program passes its check
        executable = "—" if result.get("executable") is None else f"{result['executable']:.4f}"
        extra = f" (executable {executable}; {result['eai_counted']} counted, {result['eai_form']} form)"
    if metric == "perplexity":
        extra = f" ({result['tokens']} tokens)"
        if "perplexity_base2" in result:  # --ppl-mode paper: also the number the paper's tables print
            extra += f" (paper's 2**NLL {result['perplexity_base2']:.4f})"
    span = score_interval(result)
    ci = "—" if span is None else "{:.4f}-{:.4f}".format(*span)
    n = result.get("n", result.get("texts", ""))
    if metric == "task_success":
        n = f"{result['eai_counted']} counted of {n}"
    return (f"| {cell(name)} | {metric} | {fmt(value)}{extra} | {ci} | {fmt(stderr)} | {fmt(result.get('chance'))} | "
            f"{fmt(result.get('majority'))} | {n} | {result.get('truncated', '')} |")


def answer_rows(answers: dict[str, dict[str, int]]) -> list[tuple[str, int, int]]:
    """(answer, gold count, predicted count) for the TOP_ANSWERS answers most often gold or predicted (ties:
    gold answers first, in the histogram's order), then ("other (k answers)", gold, predicted) summing the rest."""
    gold, predicted = answers["gold"], answers["predicted"]
    texts = sorted(dict.fromkeys([*gold, *predicted]), key=lambda a: -max(gold.get(a, 0), predicted.get(a, 0)))
    rows = [(a, gold.get(a, 0), predicted.get(a, 0)) for a in texts[:TOP_ANSWERS]]
    rest = texts[TOP_ANSWERS:]
    if rest:
        rows.append((f"other ({len(rest)} answers)", sum(gold.get(a, 0) for a in rest),
                     sum(predicted.get(a, 0) for a in rest)))
    return rows


def histogram_tables(results: dict) -> list[str]:
    """Per multiple-choice file a small table of its answers, gold against predicted counts."""
    lines = []
    for name, result in results.items():
        if "answers" not in result:
            continue
        answers = result["answers"]
        lines += [f"**{name}** ({len(answers['gold'])} distinct gold answers, {len(answers['predicted'])} "
                  "predicted)", "", "| answer | gold | predicted |", "|---|---:|---:|"]
        lines += [f"| {cell(short(a))} | {g} | {p} |" for a, g, p in answer_rows(answers)]
        lines.append("")
    return lines


def stderr_note(results: dict) -> str:
    """One line saying how the interval and stderr columns were computed in this run ('' when no result has a
    stderr)."""
    parts = []
    if any(r.get("stderr_method") == "binomial" for r in results.values()):
        parts.append("accuracy: binomial, sqrt(p (1 - p) / (n - 1)) as lm-evaluation-harness; its 95% CI is "
                     "Wilson's score interval, which is not empty at an accuracy of 0 or 1")
    boot = next((r for r in results.values() if r.get("stderr_method") == "bootstrap"), None)
    if boot:
        parts.append(f"ROUGE / LCS: bootstrap over items ({boot['bootstrap_resamples']} resamples, seed "
                     f"{boot['seed']})")
    if any(r.get("perplexity_ci95") for r in results.values()):
        parts.append("perplexity: 95% percentile interval of a bootstrap over texts; n counts the texts")
    if not parts:
        return ""
    return ("stderr: the standard error of the score (" + "; ".join(parts) + "); the 95% CI of ROUGE and LCS is "
            "score ± 1.96 stderr. chance: the mean over the scored items of 1 / options; majority: the accuracy of "
            "always giving the most frequent gold answer of the scored items. See docs/statistics.md.")


def results_table(results: dict, model_id: str, limit: int | None = None, chart: Path | None = None) -> str:
    """results.md: warnings, a row per task (name, headline metric, score, 95% interval, stderr, chance and
    majority baselines, items, truncated prompts; perplexity with its tokens and, in paper mode, 2**NLL), then the
    answer histograms of the multiple-choice files, with the chart's link when there is one."""
    lines = [f"# E2WM evaluation: {model_id}", ""]
    for warning in warnings(results, limit):
        lines += [warning, ""]
    lines += ["| task | metric | score | 95% CI | stderr | chance | majority | n | truncated |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [task_row(name, result) for name, result in results.items()]
    note = stderr_note(results)
    lines += ["", note, ""] if note else [""]
    tables = histogram_tables(results)
    if tables:
        lines += ["## Answers given (multiple choice)", "",
                  "Per file, how often each answer was the gold one and how often the model gave it; a model "
                  "that always gives one answer has a single non-zero predicted count.", "", *tables]
        if chart is not None:
            lines += [f"![Predicted against gold answers]({chart.name})", ""]
    return "\n".join(lines)


@quiet_glyphs
def answer_chart(results: dict, file: Path) -> Path | None:
    """answers.png: a panel per multiple-choice file, horizontal bars of each answer's gold and predicted
    counts (`answer_rows`) on an axis of whole items, the title saying when --limit cut the file; returns file,
    or None (nothing written) when no result has answers. Answers in a script the font lacks are boxes."""
    names = [name for name, result in results.items() if "answers" in result]
    if not names:
        return None
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    columns = min(len(names), 3)
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        table = answer_rows(results[name]["answers"])[::-1]  # the most frequent on top
        ys = range(len(table))
        ax.barh([y + 0.2 for y in ys], [g for _, g, _ in table], 0.4, label="gold", color="0.6")
        ax.barh([y - 0.2 for y in ys], [p for _, _, p in table], 0.4, label="predicted", color="C3")
        ax.set_yticks(list(ys))
        ax.set_yticklabels([short(a) for a, _, _ in table], fontsize=8)
        ax.set_xlabel("items")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        result = results[name]
        cut = (f"\n(--limit: the first {result['n']} of {result['n_original']} items)"
               if result.get("cut_by_limit") else "")
        ax.set_title(f"{name}: accuracy {result['accuracy']:.2f}, majority {result['majority']:.2f}{cut}", fontsize=9)
    figure.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper center", ncol=2, fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    save_figure(figure, file)
    return file
