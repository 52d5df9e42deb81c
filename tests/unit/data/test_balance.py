"""Quota: the answers of a file approach their shares as far as the records offer them; capped answers wait."""

import random

import pytest

from e2wm.data.balance import Declined, Quota


def test_answers_approach_the_shares_when_every_answer_is_offered():
    quota, rng = Quota({"0": 1, "1": 3}), random.Random(0)
    picks = [quota.pick({"a": "0", "b": "1", "c": "1"}, rng) for _ in range(40)]
    assert picks.count("a") == 10 and quota.given == {"0": 10, "1": 30}


def test_a_rare_answer_is_taken_whenever_it_is_offered_and_answers_without_a_share_never():
    quota, rng = Quota({"0": 1, "1": 1, "2": 1}), random.Random(0)
    for i in range(30):
        offered = {"x": "0", "y": "1", "huge": "9"} | ({"z": "2"} if i % 10 == 5 else {})
        picked = quota.pick(offered, rng)
        assert picked != "huge" and (picked == "z") == ("z" in offered)
    assert quota.given["2"] == 3 and sorted([quota.given["0"], quota.given["1"]]) == [13, 14]
    assert quota.pick({"huge": "9"}, rng) is None


def test_a_capped_answer_gives_way_then_declines_beyond_its_share():
    quota, rng = Quota({"0": 1, "1": 3}, capped=("0",)), random.Random(0)
    for _ in range(3):
        assert quota.pick({"empty": "0", "full": "1"}, rng) == "full"  # "0" needs more, but is at its share
    assert quota.pick({"empty": "0"}, rng) == "empty"  # 1 of 4 is its share
    with pytest.raises(Declined):
        quota.pick({"empty": "0"}, rng)
    assert quota.given == {"0": 1, "1": 3}
