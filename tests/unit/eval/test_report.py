"""Reports: item-by-item comparison tables with paired intervals and permutation tests, moving averages and PNG
charts, from fixture runs."""

import json
import re
import warnings
from pathlib import Path

import pytest
from helpers.files import write_run

from e2wm.errors import InputError
from e2wm.eval.report import (
    TrainLog,
    curve_keys,
    labels_for,
    load_train_log,
    moving_average,
    run_style,
    train_table,
    write_report,
)
from e2wm.eval.statistics import wilson_interval


def qa(correct: list[int], majority: float = 0.25, chance: float = 0.25) -> dict:
    """A QA task: per item right (1) or wrong (0); its metrics and prediction rows (without digests, as runs
    written before them)."""
    rows = [{"index": i, "scores": [0.0, 0.0], "prediction": "a" if c else "b", "answer": "a"}
            for i, c in enumerate(correct)]
    n = len(correct)
    p = sum(correct) / n
    metrics = {"accuracy": p, "n": n, "norm": "ln", "truncated": 0, "accuracy_stderr": (p * (1 - p) / (n - 1)) ** 0.5,
               "accuracy_ci95": list(wilson_interval(sum(correct), n)),
               "chance": chance, "majority": majority, "majority_answer": "a", "constant_prediction": False,
               "answers": {"gold": {"a": n}, "predicted": {"a": sum(correct), "b": n - sum(correct)}}}
    return {"metrics": metrics, "rows": rows}


def gen(scores: list[float], metric: str = "rougeL") -> dict:
    rows = [{"index": i, "prediction": "x", "ref": f"ref {i}", "score": s} for i, s in enumerate(scores)]
    metrics = {metric: sum(scores) / len(scores), "n": len(scores), "truncated": 0, f"{metric}_stderr": 0.01}
    if metric == "rougeL":
        metrics |= {"rouge1": 0.0, "rouge2": 0.0}
    return {"metrics": metrics, "rows": rows}


def ppl(nll: list[float], tokens: list[int]) -> dict:
    rows = [{"index": i, "sha256": f"{i:016x}", "nll": x, "tokens": t} for i, (x, t) in enumerate(zip(nll, tokens))]
    mean = sum(nll) / sum(tokens)
    return {"metrics": {"perplexity": 2.718281828 ** mean, "nll": mean, "tokens": sum(tokens), "texts": len(nll),
                        "mode": "windows"}, "rows": rows}


# 40 items each: act_recog 20 -> 36 right (16 items turn right, none wrong), count 10 -> 9 right (one lost),
# plan_gen the same scores, obj_move_path 0 -> 0.5 on 4 items (no relative change from 0); perplexity over 8 texts
# (43 + 43 tokens), every text worse
BASE = {"act_recog": qa([1] * 20 + [0] * 20), "count": qa([1] * 10 + [0] * 30, majority=0.25),
        "plan_gen": gen([0.3] * 40), "obj_move_path": gen([0.0] * 40, "lcs"),
        "ppl": ppl([20.0, 30.0, 25.0, 22.0] * 2, [10, 12, 11, 10] * 2)}
TUNED = {"act_recog": qa([1] * 36 + [0] * 4), "count": qa([1] * 9 + [0] * 31, majority=0.25),
         "plan_gen": gen([0.3] * 40), "obj_move_path": gen([0.5] * 4 + [0.0] * 36, "lcs"),
         "ppl": ppl([22.0, 33.0, 27.0, 24.0] * 2, [10, 12, 11, 10] * 2)}


def row(text: str, task: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {task} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", cell)]


def test_table_gives_paired_intervals_and_marks_noise(tmp_path):
    base = write_run(tmp_path / "base", BASE)
    tuned = write_run(tmp_path / "tuned", TUNED)
    out = tmp_path / "out" / "report.md"
    text = write_report([base, tuned], [], out)
    assert out.read_text() == text
    cells = row(text, "act_recog")
    # Wilson intervals of 20 and 36 of 40
    assert cells[:5] == ["act_recog", "accuracy", "40", "0.5000 [0.3520, 0.6480]", "0.9000 [0.7695, 0.9604]"]
    # 16 of 40 items differ by +1: 0.4 +- 1.96 * sqrt(0.4 * 0.6 / 40) = 0.4 +- 0.152; exact sign test 2 / 2^16
    estimate, low, high = numbers(cells[5])
    assert estimate == 0.4 and low == pytest.approx(0.248, abs=0.03) and high == pytest.approx(0.552, abs=0.03)
    assert cells[6].startswith("gain +80.0% [") and cells[7] == "3.05e-05"  # 0.5 -> 0.9
    count = row(text, "count")
    assert numbers(count[5]) == [-0.025, pytest.approx(-0.075), 0.0]  # resamples without the lost item give 0
    assert count[6:] == ["noise", "1"]  # never written as a change in percent; one item changed: p = 1
    assert row(text, "plan_gen")[5:] == ["+0.0000 [+0.0000, +0.0000]", "no change", "1"]
    # +0.5 on 4 of 40 items: the percentile interval excludes 0 (a resample misses all 4 with chance 0.9**40 = 1.5%
    # < 2.5%), but 4 changed items give p = 2 / 2^4 at best: noise
    assert row(text, "obj_move_path")[5:] == ["+0.0500 [+0.0125, +0.1000]", "noise", "0.125"]
    assert "**mean**" not in text  # accuracies and ROUGE-L/LCS are never averaged together
    accuracy = row(text, "**mean accuracy**")  # act_recog and count
    assert accuracy[1:5] == ["unweighted, 2 QA tasks", "", "0.3750", "0.5625"]
    assert numbers(accuracy[5])[0] == pytest.approx((0.4 - 0.025) / 2)
    # 17 items differ (16 up, 1 down), all 2^17 swaps enumerated: |sum of signs| >= 15 in 2 * (1 + 17) of them
    assert accuracy[6:] == ["gain", format(36 / 2**17, ".3g")]
    overlap = row(text, "**mean ROUGE-L / LCS**")  # plan_gen and obj_move_path
    assert overlap[1:5] == ["unweighted, 2 generation tasks", "", "0.1500", "0.1750"]
    assert numbers(overlap[5])[0] == pytest.approx(0.025) and overlap[6:] == ["noise", "0.125"]  # 4 items moved
    headline = row(text, "**mean relative gain**")  # obj_move_path left out: its base is 0
    assert headline[5].startswith(f"{(0.8 - 0.1 + 0.0) / 3 * 100:+.1f}% [") and headline[6] == "gain"
    perplexity = row(text, "perplexity (lower is better)")
    assert perplexity[1:3] == ["exp(mean NLL), 86 tokens", "8"]  # n: the texts, the unit of the bootstrap
    assert numbers(perplexity[5])[0] == pytest.approx(2.718281828 ** (106 / 43) - 2.718281828 ** (97 / 43), abs=1e-4)
    # exp(9 / 43) - 1: every one of the 8 texts got worse, p = 2 / 2^8
    assert perplexity[6].startswith("higher, worse +23.3% [") and perplexity[7] == "0.00781"
    assert "Warning: fewer than 30 items in ppl (8 texts)" in text
    assert ("- **count** (40 items): the change -0.025 (95% CI -0.075 to +0.000) has p = 1 in the paired "
            "permutation test, so it may well be chance and no gain or loss can be claimed; at 40 items a change of "
            "about ±0.24 would be found 80% of the time (two-sided 5%, assuming 30% of items changing "
            "correctness)") in text  # 2.8016 * sqrt(0.3 / 40) = 0.243, from n alone
    assert ("- **obj_move_path** (40 items): the change +0.050 (95% CI +0.013 to +0.100) has p = 0.125" in text
            and "a change of about ±0.07 would be found 80% of the time (two-sided 5%, assuming a per-item SD of "
            "the differences of 0.15)" in text)  # 2.8016 * 0.15 / sqrt(40) = 0.066
    assert ("- **act_recog** (40 items): `tuned` scores higher by 0.400 (95% CI +0.250 to +0.550); the paired "
            "permutation test gives p = 3.05e-05 < 0.05") in text
    assert "- **perplexity** (8 texts): " in text and "higher, worse +23.3% [" in text
    assert ("4 tasks are tested at once: when nothing changed, each is called a gain or a loss with chance 5% at "
            "most, so the expected number of tasks called so by chance alone is up to 0.20 of the 4") in text
    chart = out.with_name("report.png")
    assert chart.stat().st_size > 10_000
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](report.png)" in text


def test_the_same_seed_gives_the_same_report(tmp_path):
    scores = [(i * 37 % 50) / 50 for i in range(50)]
    base = write_run(tmp_path / "base", {"plan_gen": gen(scores)})
    tuned = write_run(tmp_path / "tuned", {"plan_gen": gen([min(s + (i % 3) / 10, 1) for i, s in enumerate(scores)])})
    first = write_report([base, tuned], [], tmp_path / "a" / "r.md", seed=5)
    assert write_report([base, tuned], [], tmp_path / "b" / "r.md", seed=5) == first
    other = write_report([base, tuned], [], tmp_path / "c" / "r.md", seed=6)
    assert numbers(row(other, "plan_gen")[5]) != numbers(row(first, "plan_gen")[5])
    assert numbers(row(other, "plan_gen")[5])[0] == numbers(row(first, "plan_gen")[5])[0]  # only the interval moves
    assert "(10000 resamples, seed 5)" in first and "(500 resamples" in write_report(
        [base, tuned], [], tmp_path / "d.md", resamples=500)


def test_small_tasks_are_warned_about_and_noise_is_never_a_gain(tmp_path):
    """The demo's case: 4 items, an accuracy from 0.25 to 0.75 (+200%) is noise at this size."""
    base = write_run(tmp_path / "base", {"act_infer": qa([1, 0, 0, 0], majority=0.25)})
    tuned = write_run(tmp_path / "tuned", {"act_infer": qa([1, 1, 1, 0], majority=0.25)})
    text = write_report([base, tuned], [], tmp_path / "r.md")
    assert "**Warning: fewer than 30 items in act_infer (4)" in text
    assert row(text, "act_infer")[6:] == ["noise", "0.5"] and "+200" not in text  # 2 items up: p = 2 / 4
    assert ("- **act_infer** (4 items): the change +0.500 (95% CI +0.000 to +1.000) has p = 0.5 in the paired "
            "permutation test, so it may well be chance and no gain or loss can be claimed; at 4 items no change can "
            "be told from noise, however large: the paired test's smallest two-sided p is 2 / 2^4 = 0.125; `base` is "
            "not above the majority baseline (0.250; chance 0.250).") in text
    # above chance but not above majority (the demo's act_recog_unseen): the sentence names the majority baseline
    above_chance = write_run(tmp_path / "above", {"act_infer": qa([1, 1, 1, 0, 0], majority=0.7)})
    better = write_run(tmp_path / "better", {"act_infer": qa([1, 1, 1, 1, 0], majority=0.7)})  # 0.8 > 0.7
    text = write_report([above_chance, better], [], tmp_path / "r7.md")
    assert "; `above` is not above the majority baseline (0.700; chance 0.250)." in text
    assert "chance (0.250) or majority" not in text
    # 0/5 -> 3/5 (made-up runs of the trial): the bootstrap called it a gain; the exact test gives p = 0.25
    five = write_run(tmp_path / "five", {"act_infer": qa([0] * 5)})
    three = write_run(tmp_path / "three", {"act_infer": qa([1, 1, 1, 0, 0])})
    assert row(write_report([five, three], [], tmp_path / "r5.md"), "act_infer")[6:] == ["noise", "0.25"]


def test_runs_over_different_items_are_rejected(tmp_path):
    base = write_run(tmp_path / "base", BASE)
    fewer = write_run(tmp_path / "fewer", BASE | {"count": qa([1] * 10 + [0] * 10)})  # another --limit
    with pytest.raises(InputError, match=r"task count: .*base/predictions/count.jsonl \(40 items\) and "
                                         r".*fewer/predictions/count.jsonl \(20 items\) scored different items"):
        write_report([base, fewer], [], tmp_path / "r.md")
    rows = [r | {"ref": "other"} if r["index"] == 7 else r for r in BASE["plan_gen"]["rows"]]
    other = dict(BASE["plan_gen"], rows=rows)
    changed = write_run(tmp_path / "changed", BASE | {"plan_gen": other})  # other data, same size
    with pytest.raises(InputError, match="task plan_gen: .* scored different items \\(they first differ at row 8\\)"):
        write_report([base, changed], [], tmp_path / "r.md")
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "r.png").exists()


def test_old_or_incomplete_runs_get_a_clear_error(tmp_path):
    base = write_run(tmp_path / "base", BASE)
    old = write_run(tmp_path / "old", BASE)
    rows = [json.loads(line) for line in (old / "predictions" / "plan_gen.jsonl").read_text().splitlines()]
    (old / "predictions" / "plan_gen.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if k != "score"}) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"plan_gen.jsonl:1: field 'score' is missing .* re-run `e2wm eval`"):
        write_report([base, old], [], tmp_path / "r.md")
    (old / "predictions" / "plan_gen.jsonl").unlink()
    with pytest.raises(InputError, match=r"plan_gen.jsonl: missing; the report compares runs item by item"):
        write_report([base, old], [], tmp_path / "r.md")


def test_perplexity_without_the_same_texts_has_no_interval(tmp_path):
    base = write_run(tmp_path / "base", {"count": BASE["count"], "ppl": BASE["ppl"]})
    other_texts = dict(TUNED["ppl"], rows=[r | {"sha256": "f" * 16} for r in TUNED["ppl"]["rows"]])
    tuned = write_run(tmp_path / "tuned", {"count": TUNED["count"], "ppl": other_texts})
    text = write_report([base, tuned], [], tmp_path / "r.md")
    assert row(text, "perplexity (lower is better)")[5:] == ["—", "—", "—"]
    assert "- **perplexity**: no interval: the runs scored different texts" in text


def test_three_runs_missing_tasks_and_repeated_folder_names(tmp_path):
    a = write_run(tmp_path / "a" / "eval", BASE)
    b = write_run(tmp_path / "b" / "eval", {"act_recog": qa([1] * 40)})
    c = write_run(tmp_path / "c" / "eval", TUNED)
    text = write_report([a, b, c], [], tmp_path / "r.md")
    header = next(line for line in text.splitlines() if line.startswith("| task"))
    assert "| a |" in header and "Δ b − a [95% CI]" in header  # the parts that differ: a, b, c
    cells = row(text, "act_recog")
    assert cells[2:5] == ["40", "0.5000 [0.3520, 0.6480]", "1.0000 [0.9124, 1.0000]"] and numbers(cells[5])[0] == 0.5
    assert row(text, "count")[4:8] == ["—", "—", "—", "—"]  # b has no count
    assert row(text, "**mean accuracy**")[4:8] == ["—", "—", "—", "—"]  # nor a mean with count: the warning says why
    assert numbers(row(text, "**mean accuracy**")[9])[0] == pytest.approx((0.4 - 0.025) / 2)  # c has both tasks
    assert ("**Warning: `b` lacks count, plan_gen, obj_move_path: those tasks have no Δ against `a`, and "
            "the means over tasks that include them and the mean relative gain of `b` are not given (they need "
            "each of their tasks in both runs).**") in text
    assert "`c` against `a`:" in text
    assert (tmp_path / "r.png").stat().st_size > 10_000


@pytest.mark.parametrize(("paths", "labels"), [
    (["runs/base", "runs/lora"], ["base", "lora"]),  # distinct folder names: kept
    (["runs/s/base/eval", "runs/s/lora/eval", "runs/s/ewc-0.5/eval"], ["base", "lora", "ewc-0.5"]),
    (["x/a/eval", "y/b/c/eval"], ["x/a", "y/b/c"]),  # a differing middle of several parts
    (["runs/a/eval", "runs/a/eval/again/eval"], ["a/eval", "again/eval"]),  # one path inside another: last two parts
    (["r/eval", "r/eval"], ["r/eval", "r/eval"]),  # the same run twice: nothing differs
])
def test_labels_are_the_path_parts_that_differ(paths, labels):
    assert labels_for([Path(p) for p in paths]) == labels


def test_each_of_40_runs_has_its_own_look():
    looks = [run_style(i) for i in range(40)]
    assert len({look.color for look in looks[:10]}) == 10  # tab10
    assert len({(look.color, look.marker) for look in looks}) == 40  # the 11th run on: another marker ...
    assert len({(look.color, look.hatch) for look in looks}) == 40  # ... hatch ...
    assert len({(look.color, look.linestyle) for look in looks}) == 40  # ... and line style
    assert looks[0] == run_style(40) and looks[0].marker == "o" and looks[0].hatch == ""  # the first 10 plain


def test_runs_sharing_no_task_are_refused_and_repeats_warned_about(tmp_path):
    base = write_run(tmp_path / "base", {"act_recog": BASE["act_recog"]})
    other = write_run(tmp_path / "other", {"count": BASE["count"]})
    with pytest.raises(InputError, match=r"base \(act_recog\) and .*other \(count\) share no task: there is nothing "
                                         "to compare"):
        write_report([base, other], [], tmp_path / "r.md")
    text = write_report([base, base], [], tmp_path / "self.md")
    label = f"{tmp_path.name}/base"  # the folder names repeat: the last two parts of the path
    assert (f"**Warning: `{label}` ({base}) is the first run again: it is compared with itself, so every change is 0 "
            "by construction.**") in text
    tuned = write_run(tmp_path / "tuned", {"act_recog": TUNED["act_recog"]})
    text = write_report([base, tuned, tuned], [], tmp_path / "twice.md")
    label = f"{tmp_path.name}/tuned"
    assert f"**Warning: {tuned} is given twice (`{label}` and `{label}`).**" in text
    assert "compared with itself" not in text


def test_items_with_other_inputs_under_the_same_index_are_refused(tmp_path):
    """Rows with digests (`e2wm eval` since they exist) pair only when the items' inputs and options agree."""
    def digested(task: dict, changed: int | None = None) -> dict:
        rows = [r | {"sha256": "e" * 16 if r["index"] == changed else f"{r['index']:016x}"} for r in task["rows"]]
        return dict(task, rows=rows)

    base = write_run(tmp_path / "base", {"act_recog": digested(BASE["act_recog"])})
    same = write_run(tmp_path / "same", {"act_recog": digested(TUNED["act_recog"])})
    assert row(write_report([base, same], [], tmp_path / "r.md"), "act_recog")[6].startswith("gain")
    other = write_run(tmp_path / "other", {"act_recog": digested(TUNED["act_recog"], changed=12)})
    with pytest.raises(InputError, match=r"task act_recog: .*base/predictions/act_recog.jsonl \(40 items\) and "
                                         r".*other/predictions/act_recog.jsonl \(40 items\) scored different items: at "
                                         r"index 12 \(row 13\) the digests of the item's input and options differ"):
        write_report([base, other], [], tmp_path / "r.md")
    old = write_run(tmp_path / "old", {"act_recog": TUNED["act_recog"]})  # no digests: the old check only
    assert row(write_report([base, old], [], tmp_path / "r.md"), "act_recog")[6].startswith("gain")


def test_table_cells_stay_on_one_line_and_glyphs_stay_quiet(tmp_path):
    base = write_run(tmp_path / "基线|a", {"act_recog": BASE["act_recog"]})
    tuned = write_run(tmp_path / "tuned", {"act_recog": TUNED["act_recog"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing-glyph warning would fail the test
        text = write_report([base, tuned], [], tmp_path / "r.md")
    header = next(line for line in text.splitlines() if line.startswith("| task"))
    assert "| 基线\\|a | tuned | Δ tuned − 基线\\|a [95% CI] | verdict | p |" in header


def test_moving_average():
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert moving_average([2.0, 4.0], 1) == [2.0, 4.0]


def test_bad_requests(tmp_path):
    with pytest.raises(InputError, match="give run directories"):
        write_report([], [], tmp_path / "r.md")
    with pytest.raises(InputError, match="ending in .md"):
        write_report([write_run(tmp_path / "a", BASE)], [], tmp_path / "r.txt")
    with pytest.raises(InputError, match="no log.jsonl"):
        write_report([], [tmp_path / "a"], tmp_path / "r.md")


def test_train_table_adds_the_last_curve_values_only_when_a_log_has_them():
    plain = TrainLog("lora", None, [{"step": s, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "lr": 1e-3} for s in (1, 2, 3)])
    curve = TrainLog("ewc", None, [{"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0},
                                   {"step": 2, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "eval_ppl": 12.5},
                                   {"step": 3, "loss": 1.0, "ce": 1.0, "ewc": 0.0}])
    assert curve_keys([plain]) == [] and "eval" not in train_table([plain])
    assert curve_keys([plain, curve]) == ["eval_ppl"]
    lines = train_table([plain, curve]).splitlines()
    assert lines[0].endswith("| last lr | last eval_ppl |") and lines[1].count("---:|") == 8
    assert lines[2].endswith("| — |") and lines[3].endswith("| 12.5000 |")  # the last row that has it: step 2
    assert curve.last("eval_ppl") == 12.5 and curve.last("eval_accuracy") is None


def test_curve_chart_only_when_the_logs_have_eval_fields(tmp_path):
    rows = [{"step": s, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "eval_accuracy": 0.1 * s} for s in (1, 2)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report([], [run], tmp_path / "r.md")
    assert (tmp_path / "r-eval.png").stat().st_size > 10_000 and "](r-eval.png)" in text
    assert "| last eval_accuracy |" in text and "last eval_ppl" not in text
    (run / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0}) + "\n")
    text = write_report([], [run], tmp_path / "plain.md")
    assert not (tmp_path / "plain-eval.png").exists() and "eval" not in text


def test_the_training_table_gives_the_regularisers_a_run_used():
    rows = [{"step": 1, "loss": 1.5, "loss_ce": 1.0, "loss_kl": 0.5, "ce": 1.2, "ewc": 0.0, "kl": 0.25, "lr": 1e-3}]
    table = train_table([TrainLog("kl", None, rows), TrainLog("lora", None, [{"step": 1, "loss": 1.0, "ce": 1.2,
                                                                               "ewc": 0.0, "lr": 1e-3}])])
    assert " last kl |" in table and " last replay |" not in table
    assert table.splitlines()[2].endswith("| 0.25 |") and table.splitlines()[3].endswith("| — |")
    # every regulariser's column as last EWC's, to 3 significant digits: a small KL is not rounded away to 0
    rows = [{"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 2.5e-4, "kl": 1.2e-05, "replay": 2.34567, "lr": 1e-3}]
    assert train_table([TrainLog("all", None, rows)]).splitlines()[2].endswith(
        "| 0.00025 | 1.00e-03 | 1.2e-05 | 2.35 |")
    # a run without a Fisher logs no ewc (e2wm before it logged 0.0): its last EWC is a dash, not 0
    table = train_table([TrainLog("lora", None, [{"step": 1, "loss": 1.0, "ce": 1.2, "lr": 1e-3}]),
                         TrainLog("ewc", None, [{"step": 1, "loss": 1.0, "ce": 1.2, "ewc": 2.5e-4, "lr": 1e-3}])])
    assert "| lora | 1 | 1.0000 | 1.0000 | 1.2000 | 1.2000 | — | 1.00e-03 |" in table
    assert "| ewc | 1 | 1.0000 | 1.0000 | 1.2000 | 1.2000 | 0.00025 | 1.00e-03 |" in table


def test_a_log_of_a_run_without_a_fisher_reads_without_its_zero_ewc(tmp_path):
    """e2wm before 2026-12-06 logged ewc 0.0 without a Fisher: read back, the run has no EWC value, not 0."""
    rows = [{"step": 1, "loss": 1.0, "ce": 1.2, "ewc": 0.0, "lr": 1e-3}]
    for name, fisher in (("lora", None), ("ewc", "f.safetensors"), ("unrecorded", "no config.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.jsonl").write_text(json.dumps(rows[0]) + "\n")
        if fisher != "no config.json":
            (tmp_path / name / "config.json").write_text(json.dumps({"options": {"fisher": fisher}}))
    logs = {name: load_train_log(tmp_path / name, name) for name in ("lora", "ewc", "unrecorded")}
    assert [log.last("ewc") for log in logs.values()] == [None, 0.0, 0.0]
    assert logs["lora"].rows == [{"step": 1, "loss": 1.0, "ce": 1.2, "lr": 1e-3}]


def test_the_training_chart_has_a_panel_per_regulariser_used(tmp_path, monkeypatch):
    from e2wm.eval import report

    drawn = []
    monkeypatch.setattr(report, "save_figure", lambda figure, file: drawn.append(figure))
    kl = [{"step": s, "loss": 1.0 + s, "ce": 1.0, "ewc": 0.0, "kl": 0.1 * s} for s in (1, 2, 3)]
    plain = [{"step": s, "loss": 1.0, "ce": 1.0, "ewc": 0.0} for s in (1, 2, 3)]
    report.train_chart([TrainLog("kl", None, kl), TrainLog("lora", None, plain)], tmp_path / "t.png")
    titles = [ax.get_title() for ax in drawn[0].axes]
    assert titles[3] == "KL anchor (before its weight)" and len(titles) == 4
    assert [list(line.get_ydata()) for line in drawn[0].axes[3].lines] == [pytest.approx([0.1, 0.2, 0.3])]
    drawn.clear()  # runs without a Fisher (no ewc in their rows) draw no EWC panel
    report.train_chart([TrainLog("lora", None, [{k: v for k, v in row.items() if k != "ewc"} for row in plain])],
                       tmp_path / "t.png")
    assert [ax.get_title() for ax in drawn[0].axes] == ["total loss = CE term + Σ weight·regulariser",
                                                         "cross-entropy (nats / ref token)"]
