"""`e2wm report`'s learning-against-forgetting frontier on run folders laid out as `e2wm eval` leaves them: its table
holds the report's own comparison numbers, the frontier and who dominates whom, the chart, --drift-on, and the
cases without a frontier."""

import re

import pytest
from helpers.files import write_run

from e2wm.cli import main
from e2wm.eval.statistics import wilson_interval


def qa(right: int, n: int = 40) -> dict:
    """A QA task with the first `right` of n items right."""
    rows = [{"index": i, "scores": [0.0, 0.0], "prediction": "a" if i < right else "b", "answer": "a"}
            for i in range(n)]
    p = right / n
    metrics = {"accuracy": p, "n": n, "accuracy_stderr": (p * (1 - p) / (n - 1)) ** 0.5,
               "accuracy_ci95": list(wilson_interval(right, n)), "chance": 0.25, "majority": 0.25}
    return {"metrics": metrics, "rows": rows}


def gen(score: float, metric: str, n: int = 40) -> dict:
    """A generation task where every one of n items scores `score`."""
    rows = [{"index": i, "prediction": "x", "ref": f"ref {i}", "score": score} for i in range(n)]
    return {"metrics": {metric: score, "n": n, f"{metric}_stderr": 0.0}, "rows": rows}


def perplexity(scale: float) -> dict:
    """8 texts of 10 tokens, text i's NLL (18 + i) * scale nats: 2.15 nats per token at scale 1."""
    nll = [scale * (18.0 + text) for text in range(8)]
    rows = [{"index": i, "sha256": f"{i:016x}", "nll": x, "tokens": 10} for i, x in enumerate(nll)]
    mean = sum(nll) / 80
    return {"metrics": {"perplexity": 2.718281828459045 ** mean, "nll": mean, "tokens": 80, "texts": 8,
                        "mode": "windows"}, "rows": rows}


def tasks(act_recog: int, count: int, plan_gen: float, obj_move_path: float, ppl: float | None,
          human: float | None) -> dict:
    found = {"act_recog": qa(act_recog), "count": qa(count), "plan_gen": gen(plan_gen, "rougeL"),
             "obj_move_path": gen(obj_move_path, "lcs")}
    if ppl is not None:
        found["ppl"] = perplexity(ppl)
    if human is not None:
        found["ppl:human"] = perplexity(human)
    return found


# accuracy gains (mean over act_recog and count): lora +0.30, ewc +0.15, worse +0.10; ROUGE-L / LCS gains: lora +0.10,
# ewc +0.20, worse 0; drift on ppl: ewc < lora < worse; on ppl:human: worse < lora < ewc
RUNS = {"base": tasks(20, 10, 0.3, 0.2, 1.0, 1.0),
        "lora": tasks(36, 18, 0.4, 0.3, 1.2, 1.05),
        "ewc": tasks(28, 14, 0.5, 0.4, 1.02, 1.10),
        "worse": tasks(26, 12, 0.3, 0.2, 1.25, 1.03)}


@pytest.fixture
def runs(tmp_path):
    return [str(write_run(tmp_path / name, found)) for name, found in RUNS.items()]


def cells(text: str, first: str) -> list[str]:
    """The cells of the first table row whose first cell is `first`."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {first} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def section(text: str, heading: str) -> str:
    """The lines from `### heading` to the next heading."""
    return text.split(f"### {heading}\n")[1].split("\n#")[0]


def report(runs: list[str], out, *options) -> str:
    main(["report", *runs, "--out", str(out), "--bootstrap-resamples", "300", *options])
    return out.read_text()


def test_the_frontier_holds_the_reports_own_numbers_and_who_dominates_whom(runs, tmp_path):
    text = report(runs, tmp_path / "r.md")
    assert "## Learning against forgetting" in text
    later = ["lora", "ewc", "worse"]
    perplexity = cells(text, "perplexity (lower is better)")
    for family, heading in (("**mean accuracy**", "mean accuracy (QA tasks)"),
                            ("**mean ROUGE-L / LCS**", "mean ROUGE-L / LCS (generation tasks)")):
        mean, part = cells(text, family), section(text, heading)
        for k, name in enumerate(later):
            row = cells(part, name)
            assert row[2] == mean[5 + 4 * k]  # gain: the table's Δ of the family mean, interval included
            verdict = perplexity[6 + 4 * k]  # every text got worse in every run: p = 2 / 2^8, a loss
            assert verdict.startswith("higher, worse ") and row[1] == verdict.removeprefix("higher, worse ")
    accuracy = section(text, "mean accuracy (QA tasks)")
    # the first run is a point at (0, 0) like the others: on the frontier here (no run drifts less), said so
    assert cells(accuracy, "base") == ["base", "0 (reference)", "0 (reference)", "yes", "—"]
    assert [cells(accuracy, name)[3:] for name in later] == [["yes", "—"], ["yes", "—"], ["no", "lora, ewc"]]
    assert "- `lora` dominates `worse`." in accuracy and "- `ewc` dominates `worse`." in accuracy
    assert "- `base` dominates no other run." in accuracy
    overlap = section(text, "mean ROUGE-L / LCS (generation tasks)")
    assert cells(overlap, "base")[3:] == ["yes", "—"]
    assert [cells(overlap, name)[3:] for name in later] == [["no", "ewc"], ["yes", "—"], ["no", "base, lora, ewc"]]
    assert "- `ewc` dominates `lora`, `worse`." in overlap and "- `lora` dominates" not in overlap
    assert "- `base` dominates `worse`." in overlap
    assert re.search(r"\| lora \| \+\d+\.\d% \[\+\d+\.\d%, \+\d+\.\d%\] \| \+0\.3000 \[", accuracy)
    chart = tmp_path / "r-frontier.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
    assert "![Learning against forgetting](r-frontier.png)" in text
    # both perplexity sets are paired as the first always was: a row and a sentence each
    human = cells(text, "perplexity ppl:human (lower is better)")
    assert human[1:4] == ["exp(mean NLL), 80 tokens", "8", "8.5849"]  # exp(2.15)
    assert "- **perplexity ppl:human** (8 texts): " in text and "- **perplexity** (8 texts): " in text
    assert "fewer than 30 items in act_recog (40)" not in text and "ppl:human (8 texts)" in text


def test_drift_on_another_set_by_its_label(runs, tmp_path):
    text = report(runs, tmp_path / "a" / "r.md", "--drift-on", "human")
    human = cells(text, "perplexity ppl:human (lower is better)")
    accuracy = section(text, "mean accuracy (QA tasks)")
    for k, name in enumerate(["lora", "ewc", "worse"]):
        assert cells(accuracy, name)[1] == human[6 + 4 * k].removeprefix("higher, worse ")
    # on ppl:human worse drifts least: all three trade gain for drift, none dominates another
    assert [cells(accuracy, name)[3] for name in ("lora", "ewc", "worse")] == ["yes", "no", "yes"]
    assert "- `lora` dominates `ewc`." in accuracy and "- `worse` dominates no other run." in accuracy
    assert "| run | drift on ppl:human [95% CI] |" in accuracy
    assert report(runs, tmp_path / "b" / "r.md", "--drift-on", "ppl:human") == text


def test_an_unknown_drift_on_stops_before_anything_is_written(runs, tmp_path, capsys):
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as stop:
        report(runs, tmp_path / "r.md", "--drift-on", "wiki")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"--drift-on wiki: the first run {runs[0]} has no perplexity set of that name; its sets: ppl, "
                        "ppl:human") and "\n" not in err
    assert sorted(tmp_path.rglob("*")) == before  # no report, no chart
    with pytest.raises(SystemExit) as stop:  # a single run has no frontier, but a wrong option is still one
        report(runs[:1], tmp_path / "r.md", "--drift-on", "wiki")
    assert stop.value.code == 2 and "its sets: ppl, ppl:human" in capsys.readouterr().err


def test_fewer_than_two_runs_with_both_measures_draw_no_frontier(tmp_path):
    base = write_run(tmp_path / "base", RUNS["base"])
    lora = write_run(tmp_path / "lora", RUNS["lora"])
    bare = write_run(tmp_path / "bare", tasks(30, 12, 0.3, 0.2, None, None))
    text = report([str(base), str(lora), str(bare)], tmp_path / "r.md")
    accuracy = section(text, "mean accuracy (QA tasks)")
    assert "Fewer than two runs have both a drift on ppl and a mean accuracy against the first run (1)" in accuracy
    assert "Left out: `bare` (no drift on ppl: it has no ppl)." in accuracy
    assert not (tmp_path / "r-frontier.png").exists() and "r-frontier.png" not in text
    assert (tmp_path / "r.png").is_file()


def test_without_perplexity_the_section_says_so_and_a_single_run_has_none(tmp_path):
    base = write_run(tmp_path / "base", tasks(20, 10, 0.3, 0.2, None, None))
    lora = write_run(tmp_path / "lora", tasks(36, 18, 0.4, 0.3, None, None))
    text = report([str(base), str(lora)], tmp_path / "r.md")
    assert ("No drift to set against the gains: `base` has no perplexity on general text (evaluate the runs with "
            "`e2wm eval --ppl-data FILE`).") in text
    assert not (tmp_path / "r-frontier.png").exists()
    assert "Learning against forgetting" not in report([str(base)], tmp_path / "one.md")


def test_the_chart_marks_the_frontier_and_keeps_labels_off_other_markers(tmp_path, monkeypatch):
    """A run drawn just right of and below the first run (the real study's kl-1 beside base): no label covers
    another run's marker; filled and hollow markers are explained in the legend; the first run, on the frontier,
    is filled and a corner of the step line."""
    from e2wm.eval import frontier

    drawn = []
    monkeypatch.setattr(frontier, "save_figure", lambda figure, file: drawn.append(figure))
    near = {**RUNS, "near": tasks(19, 10, 0.29, 0.2, 1.007, 1.0)}  # drift +1.5%, gains -0.0125 and -0.005
    report([str(write_run(tmp_path / name, found)) for name, found in near.items()], tmp_path / "r.md")
    [figure] = drawn
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:
        labels = {text.get_text(): text for text in ax.texts}
        assert sorted(labels) == sorted(near)
        radius = 3.5 * figure.dpi / 72  # half a marker of size 7 points, in pixels
        for name, text in labels.items():
            box = text.get_window_extent(renderer).padded(radius)
            for other, marker in labels.items():
                x, y = ax.transData.transform(marker.xy)
                assert other == name or not box.contains(x, y), f"{ax.get_title()}: {name}'s label on {other}"
        legend = [entry.get_text() for entry in ax.get_legend().get_texts()]
        assert any("filled" in entry for entry in legend) and any("hollow" in entry for entry in legend)
        [base] = [line for line in ax.lines if line.get_marker() == "s" and len(line.get_xdata())]
        assert base.get_markerfacecolor() != "white"
        [step] = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert (0, 0) in zip(step.get_xdata(), step.get_ydata())
