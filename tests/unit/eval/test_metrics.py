"""ROUGE and the room-list LCS against hand-worked examples."""

import pytest

from e2wm.eval.metrics import accuracy, lcs_score, longest_common_run, rouge_scores, split_list


def test_rouge_hand_worked():
    [scores] = rouge_scores(["the cat sat on the mat"], ["the cat is on the mat"])
    assert scores["rouge1"] == pytest.approx(5 / 6)  # 5 shared unigrams (the x2, cat, on, mat) of 6
    assert scores["rouge2"] == pytest.approx(3 / 5)  # the cat, on the, the mat
    assert scores["rougeL"] == pytest.approx(5 / 6)  # the cat on the mat


def test_rouge_uses_stemming_per_pair():
    stemmed, unrelated = rouge_scores(["Walking to kitchen.", "xyz"], ["Walk to kitchen.", "abc"])
    assert stemmed == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}  # walking ~ walk
    assert unrelated == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_lcs_hand_worked():
    assert split_list(" hallway,kitchen , ,bedroom") == ["hallway", "kitchen", "bedroom"]
    assert longest_common_run(["a", "b", "c", "d"], ["x", "b", "c", "y"]) == 2
    assert lcs_score("hallway, kitchen, bedroom", "hallway, kitchen, bathroom, bedroom") == 0.5
    assert lcs_score("hallway, dining room, bathroom", "hallway, dining room, bathroom") == 1.0
    assert lcs_score("", "kitchen") == 0.0
    assert lcs_score("bedroom, kitchen", "kitchen, bedroom") == 0.5  # order matters
    assert lcs_score("kitchen", "kitchen, bedroom") == 0.5


def test_accuracy():
    assert accuracy([0, 2, 1, 1], [0, 1, 1, 3]) == 0.5
