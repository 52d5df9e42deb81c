"""Balancing answers: which question to ask of a record so that a file's answers approach given shares.

A record offers several questions (a counting story can ask about any receptacle it mentions, a path story
about any object that changed rooms), each with its answer. `Quota.pick` takes the answer on offer that its
file has had least of relative to its share ((count + 1) / share, the lowest wins; ties go to the caller's
seeded Random), then one of the questions with that answer. Over a file the answers approach the shares as
far as the records allow: an answer the records rarely offer (a count of 3 in a 30-step episode) stays below
its share, and the others fill in in proportion to theirs. Answers without a share are never asked.

An answer that nearly every record offers would still fill every record that offers nothing else (a counting
story that puts nothing anywhere still mentions a table: "0"). Such answers can be capped: a record whose
best answer is capped and already at its share of the file is declined (`Declined`), so that the file holds
fewer items rather than too many of that answer (a capped answer at its share gives way to the record's other
answers first).
"""

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TypeVar

Key = TypeVar("Key")

# the released count.json of the dev slice (65 items): answers 0, 1, 2, 3, 4
COUNT_SHARES = {"0": 12, "1": 36, "2": 11, "3": 5, "4": 1}
# the released train_count.json (1000 examples): no item, one, 2, 3, 4 items (and 4 examples of 5)
TRAIN_COUNT_SHARES = {"0": 235, "1": 513, "2": 196, "3": 46, "4": 6}
# the released obj_move_path.json of the dev slice (67 items): paths of 2, 3 and 4 rooms
PATH_SHARES = {"2": 39, "3": 22, "4": 6}


class Declined(Exception):
    """The record's best answer is capped and its file already has its share of it."""


@dataclass
class Quota:
    """The answers given so far in one file, the shares they should approach (relative weights), and the answers
    never given beyond their share."""

    shares: dict[str, float]
    capped: tuple[str, ...] = ()
    given: Counter = field(default_factory=Counter)

    def pick(self, offered: dict[Key, str], rng: random.Random) -> Key | None:
        """One key of offered (question -> its answer) whose answer the file needs most, counted as given; None
        when no offered answer has a share. Raises Declined (see the module's docstring)."""
        total = sum(self.given.values()) + 1
        weight = sum(self.shares.values())
        needs = {answer: (self.given[answer] + 1) / self.shares[answer]
                 for answer in dict.fromkeys(offered.values()) if self.shares.get(answer, 0) > 0}
        if not needs:
            return None
        allowed = {a: need for a, need in needs.items()
                   if a not in self.capped or self.given[a] + 1 <= total * self.shares[a] / weight}
        if not allowed:
            raise Declined(next(iter(needs)))
        lowest = min(allowed.values())
        answer = rng.choice([a for a, need in allowed.items() if need == lowest])
        self.given[answer] += 1
        return rng.choice([key for key, a in offered.items() if a == answer])
