"""Few-shot assembly: question blocks, shots drawn from other sources, and the held-out activity split."""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """One question and its answer, made from one source record (a program or an episode)."""

    prompt: str  # ends with the answer cue, e.g. "...\nA:"
    answer: str
    source: str  # a block never serves as a shot for a query of the same source
    group: str = ""  # the activity for plan blocks: shots come from distinct other groups when there are enough
    label: str = ""  # what stats.json tallies for this task (plan length, activity, item count, rooms)

    def shot(self) -> str:
        return f"{self.prompt} {self.answer}"


@dataclass(frozen=True)
class Format:
    """How a task joins its blocks: an optional instruction header, then shots and query."""

    separator: str
    header: str = ""


def assemble(fmt: Format, shots: list[Block], query: Block) -> dict[str, str]:
    """The E2WM training line: the shots with answers and the query's prompt; ref is the query's answer."""
    return {"input": fmt.header + fmt.separator.join([s.shot() for s in shots] + [query.prompt]), "ref": query.answer}


def pick_shots(pool: list[Block], query: Block, k: int, rng: random.Random) -> list[Block] | None:
    """k blocks from other sources; for grouped blocks one from each of k groups other than the query's
    (as in the released files) when there are that many. None if the pool is too small."""
    if not query.group and pool:  # fast path for large pools: draw, rejecting the query's own source
        picked: dict[int, Block] = {}
        for _ in range(8 * k):
            i = rng.randrange(len(pool))
            if pool[i].source != query.source:
                picked.setdefault(i, pool[i])
            if len(picked) == k:
                return list(picked.values())
    others = [b for b in pool if b.source != query.source]
    groups: dict[str, list[Block]] = {}
    for block in others:
        if query.group and block.group != query.group:
            groups.setdefault(block.group, []).append(block)
    if len(groups) >= k:
        return [rng.choice(groups[name]) for name in rng.sample(list(groups), k)]
    return rng.sample(others, k) if len(others) >= k else None


def unique(blocks: list[Block]) -> tuple[list[Block], int]:
    """Blocks with repeated (prompt, answer) removed, first kept; and how many were removed."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for block in blocks:
        if (block.prompt, block.answer) not in seen:
            seen.add((block.prompt, block.answer))
            kept.append(block)
    return kept, len(blocks) - len(kept)


def choose_holdout(activities: list[str], k: int, seed: int) -> set[str]:
    """k activity names (of the sorted distinct ones) held out of training, fixed by the seed."""
    names = sorted(set(activities))
    return set(random.Random(f"{seed}/holdout").sample(names, k)) if k else set()
