"""Monte-Carlo tree search for a plan that reaches a program's goal facts (E2WM's planner, SPEC section 2).

Reward per step: +2 for each goal fact achieved for the first time, -1.5 for each goal fact undone (and
+1.5 when an undone fact is achieved again, so toggling a fact cannot farm reward), -0.1 per step, +5
when every goal fact holds (the episode ends there). Discount 0.99, rollouts up to 25 steps, PUCT
selection with a hand-made prior that favours actions which make or touch a missing goal fact. The plan
is the highest-return prefix of any simulated trajectory, then pruned: steps whose removal leaves a plan
the simulator accepts with no lower return are dropped (random rollouts leave detours in it).
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from virtualhome_eval.simulation.evolving_graph.environment import EnvironmentState

from e2wm.experience.goals import Goal
from e2wm.world.sim import Action

FIRST, UNDONE, STEP, DONE = 2.0, 1.5, 0.1, 5.0


@dataclass
class SearchConfig:
    simulations: int = 100  # most simulations per program (success flattens by 50: docs/benchmarks.md)
    rollout_depth: int = 25
    discount: float = 0.99
    exploration: float = 1.0  # PUCT constant (values are min-max normalised)
    patience: int = 20  # after a success, stop when this many simulations bring no better plan
    make_weight: float = 30.0  # prior weight of an action that can make a missing goal fact
    touch_weight: float = 3.0  # prior weight of an action on an object of a missing goal fact


@dataclass
class SearchResult:
    actions: list[Action]
    held: int  # bitmask of goal facts true after the plan
    success: bool
    value: float  # discounted return of the plan
    simulations: int


@dataclass
class _Node:
    state: EnvironmentState
    held: int
    ever: int
    reward: float = 0.0
    terminal: bool = False
    visits: int = 0
    total: float = 0.0
    actions: list[int] | None = None  # admissible candidate indices, set on expansion
    prior: list[float] = field(default_factory=list)
    children: dict[int, "_Node"] = field(default_factory=dict)


class Search:
    """One search over a goal; `run()` returns the best plan found."""

    def __init__(self, goal: Goal, config: SearchConfig, rng: random.Random):
        self.goal, self.config, self.rng = goal, config, rng
        self.full = (1 << len(goal.facts)) - 1
        self.low, self.high = math.inf, -math.inf  # range of values seen, for normalising Q
        self.best = SearchResult([], 0, not goal.facts, 0.0, 0)

    # --- the model: which goal facts hold, and the reward of a transition
    def held(self, state: EnvironmentState) -> int:
        holds = self.goal.world.holds
        return sum(1 << bit for bit, fact in enumerate(self.goal.facts) if holds(state, fact))

    def reward(self, before: int, after: int, ever: int) -> float:
        first = bin(after & ~ever).count("1")
        again = bin(after & ever & ~before).count("1")
        undone = bin(before & ~after).count("1")
        return FIRST * first + UNDONE * (again - undone) - STEP + (DONE if after == self.full else 0.0)

    def weights(self, indices: list[int], held: int) -> list[float]:
        missing, c = self.full & ~held, self.config
        goal = self.goal
        return [
            1.0 + c.make_weight * bool(goal.effects[i] & missing) + c.touch_weight * bool(goal.touches[i] & missing)
            for i in indices
        ]

    # --- tree
    def expand(self, node: _Node) -> None:
        world, candidates = self.goal.world, self.goal.candidates
        node.actions = [i for i, action in enumerate(candidates) if world.can(node.state, action)]
        weights = self.weights(node.actions, node.held)
        total = sum(weights) or 1.0
        node.prior = [w / total for w in weights]

    def child(self, node: _Node, index: int) -> _Node:
        outcome = self.goal.world.step(node.state, self.goal.candidates[index])
        held = self.held(outcome.state) if outcome.success else node.held
        reward = self.reward(node.held, held, node.ever) if outcome.success else -STEP
        return _Node(outcome.state, held, node.ever | held, reward, held == self.full)

    def select(self, node: _Node) -> int:
        scale = math.sqrt(node.visits + 1) * self.config.exploration
        span = self.high - self.low if self.high > self.low else 1.0
        best, best_score = node.actions[0], -math.inf
        for index, prior in zip(node.actions, node.prior):
            child = node.children.get(index)
            q = (child.total / child.visits - self.low) / span if child is not None and child.visits else 0.0
            score = q + scale * prior / (1 + (child.visits if child is not None else 0))
            if score > best_score:
                best, best_score = index, score
        return best

    # --- one simulation: select and expand down the tree, roll out, back up
    def simulate(self) -> None:
        gamma = self.config.discount
        node, path, plan = self.root, [self.root], []
        value, discount = 0.0, 1.0
        while not node.terminal:
            if node.actions is None:
                self.expand(node)
            if not node.actions:
                break
            index = self.select(node)
            fresh = index not in node.children
            if fresh:
                node.children[index] = self.child(node, index)
            node = node.children[index]
            path.append(node)
            plan.append(self.goal.candidates[index])
            value += discount * node.reward
            discount *= gamma
            self.consider(value, plan, node.held)
            if fresh:
                break
        tail = 0.0 if node.terminal else self.rollout(node, value, discount, plan)
        for child in reversed(path[1:]):
            tail = child.reward + gamma * tail
            child.visits += 1
            child.total += tail
            self.low, self.high = min(self.low, tail), max(self.high, tail)
        self.root.visits += 1

    def rollout(self, node: _Node, value: float, discount: float, plan: list[Action]) -> float:
        """Random steps weighted by the prior, executed in place on a copy; returns their discounted return."""
        world, candidates, gamma = self.goal.world, self.goal.candidates, self.config.discount
        state, held, ever = world.clone(node.state), node.held, node.ever
        plan, tail, tail_discount = list(plan), 0.0, 1.0
        everything = range(len(candidates))
        for _ in range(self.config.rollout_depth):
            weights = self.weights(everything, held)
            order = sorted(everything, key=lambda i: self.rng.random() ** (1.0 / weights[i]), reverse=True)
            for index in order:
                outcome = world.step(state, candidates[index], in_place=True)
                if outcome.success:
                    break
            else:
                break
            state, before, held = outcome.state, held, self.held(outcome.state)
            reward = self.reward(before, held, ever)
            ever |= held
            tail += tail_discount * reward
            plan.append(candidates[index])
            self.consider(value + discount * tail, plan, held)
            tail_discount *= gamma
            if held == self.full:
                break
        return tail

    def consider(self, value: float, plan: list[Action], held: int) -> None:
        if value > self.best.value + 1e-9:
            self.best = SearchResult(list(plan), held, held == self.full, value, 0)
            self.improved = self.count

    def run(self, on_simulation: Callable[[int, SearchResult], None] | None = None) -> SearchResult:
        """Simulate until the budget is spent or, after a success, `patience` simulations bring nothing better.

        on_simulation(count, best) is called after every simulation (for measuring curves)."""
        state = self.goal.world.initial_state()
        held = self.held(state)
        self.root = _Node(state, held, held, terminal=held == self.full)
        self.count = self.improved = 0
        while self.count < self.config.simulations and not self.root.terminal:
            self.simulate()
            self.count += 1
            if on_simulation is not None:
                on_simulation(self.count, self.best)
            if self.best.success and self.count - self.improved >= self.config.patience:
                break
        self.best.simulations = self.count
        return self.prune(self.best)

    def replay(self, actions: list[Action]) -> SearchResult | None:
        """Execute a plan from the start; its result (cut where the goal is complete), or None if a step fails."""
        world, gamma = self.goal.world, self.config.discount
        state = world.initial_state()
        held = ever = self.held(state)
        value, done = 0.0, []
        for t, action in enumerate(actions):
            if held == self.full or not world.step(state, action, in_place=True).success:
                return None if held != self.full else SearchResult(done, held, True, value, self.count)
            before, held = held, self.held(state)
            value += gamma**t * self.reward(before, held, ever)
            ever |= held
            done.append(action)
        return SearchResult(done, held, held == self.full, value, self.count)

    def prune(self, result: SearchResult) -> SearchResult:
        """Drop single steps, then pairs (an open undone by a close), while the plan still runs, reaches the
        same goal facts and its return does not fall."""
        for width in (1, 2, 1):
            for index in reversed(range(len(result.actions) - width + 1)):
                if index + width > len(result.actions):
                    continue
                shorter = self.replay(result.actions[:index] + result.actions[index + width:])
                if shorter is not None and shorter.value >= result.value - 1e-9 and shorter.held == result.held:
                    result = shorter
        return result


def plan(goal: Goal, config: SearchConfig | None = None, seed: int | str = 0) -> SearchResult:
    """The highest-return plan MCTS finds for a goal within the configured budget."""
    return Search(goal, config or SearchConfig(), random.Random(seed)).run()
