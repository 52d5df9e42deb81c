"""Monte-Carlo tree search for a plan that reaches a program's goal facts (E2WM's planner, SPEC section 2).

Reward per step: +2 for each goal fact achieved for the first time, -1.5 for each goal fact undone (and
+1.5 when an undone fact is achieved again, so toggling a fact cannot farm reward), -0.1 per step, +5
when every goal fact holds (the episode ends there). Discount 0.99, rollouts up to 25 steps, PUCT
selection with a hand-made prior that favours actions which make or touch a missing goal fact. A goal with
action goals (`Goal.action_goals`, EAI's) gives +2 for each one met in order (`Goal.after`), counts as complete
only when they are all met too, and favours the actions that meet the next one; a goal whose plans use each verb
once (`Goal.once`) refuses a verb already used (`Goal.allows`). The plan is the highest-return prefix of any
simulated trajectory, then pruned: steps whose removal leaves a plan the simulator accepts with no lower return
are dropped (random rollouts leave detours in it).
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from virtualhome_eval.simulation.evolving_graph.environment import EnvironmentState

from e2wm.experience.goals import Goal, Trace
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
    met: int = 0  # action goals met in order by the plan (Goal.action_goals)


@dataclass
class _Node:
    state: EnvironmentState
    held: int
    ever: int
    trace: Trace
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
        self.best = SearchResult([], 0, not goal.facts and goal.actions_done(Trace()), 0.0, 0)

    # --- the model: which goal facts hold, and the reward of a transition
    def held(self, state: EnvironmentState) -> int:
        holds = self.goal.world.holds
        return sum(1 << bit for bit, fact in enumerate(self.goal.facts) if holds(state, fact))

    def complete(self, held: int, trace: Trace) -> bool:
        """Every goal fact holds and every action goal is met."""
        return held == self.full and self.goal.actions_done(trace)

    def reward(self, before: int, after: int, ever: int, trace: Trace, progress: int = 0) -> float:
        """The reward of a transition to facts `after` and trace `trace`, that met `progress` action goals."""
        first = bin(after & ~ever).count("1") + progress
        again = bin(after & ever & ~before).count("1")
        undone = bin(before & ~after).count("1")
        return FIRST * first + UNDONE * (again - undone) - STEP + (DONE if self.complete(after, trace) else 0.0)

    def transition(self, held: int, ever: int, trace: Trace, action: Action, state: EnvironmentState
                   ) -> tuple[int, Trace, float]:
        """(facts held, trace, reward) after `action` executed into `state`."""
        after, new = self.held(state), self.goal.after(trace, action)
        return after, new, self.reward(held, after, ever, new, new.met - trace.met)

    def weights(self, indices, held: int, trace: Trace) -> list[float]:
        missing, c = self.full & ~held, self.config
        goal, candidates = self.goal, self.goal.candidates
        return [
            1.0 + c.make_weight * bool(goal.effects[i] & missing) + c.touch_weight * bool(goal.touches[i] & missing)
            + c.make_weight * goal.advances(trace, candidates[i])
            for i in indices
        ]

    # --- tree
    def expand(self, node: _Node) -> None:
        world, candidates = self.goal.world, self.goal.candidates
        allows = self.goal.allows
        node.actions = [i for i, action in enumerate(candidates)
                        if allows(node.trace, action) and world.can(node.state, action)]
        weights = self.weights(node.actions, node.held, node.trace)
        total = sum(weights) or 1.0
        node.prior = [w / total for w in weights]

    def child(self, node: _Node, index: int) -> _Node:
        action = self.goal.candidates[index]
        outcome = self.goal.world.step(node.state, action)
        if not outcome.success:
            return _Node(outcome.state, node.held, node.ever, node.trace, -STEP, self.complete(node.held, node.trace))
        held, trace, reward = self.transition(node.held, node.ever, node.trace, action, outcome.state)
        return _Node(outcome.state, held, node.ever | held, trace, reward, self.complete(held, trace))

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
            self.consider(value, plan, node.held, node.trace)
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
        state, held, ever, trace = world.clone(node.state), node.held, node.ever, node.trace
        plan, tail, tail_discount = list(plan), 0.0, 1.0
        everything, allows = range(len(candidates)), self.goal.allows
        for _ in range(self.config.rollout_depth):
            weights = self.weights(everything, held, trace)
            order = sorted(everything, key=lambda i: self.rng.random() ** (1.0 / weights[i]), reverse=True)
            for index in order:
                if not allows(trace, candidates[index]):
                    continue
                outcome = world.step(state, candidates[index], in_place=True)
                if outcome.success:
                    break
            else:
                break
            state = outcome.state
            held, trace, reward = self.transition(held, ever, trace, candidates[index], state)
            ever |= held
            tail += tail_discount * reward
            plan.append(candidates[index])
            self.consider(value + discount * tail, plan, held, trace)
            tail_discount *= gamma
            if self.complete(held, trace):
                break
        return tail

    def consider(self, value: float, plan: list[Action], held: int, trace: Trace) -> None:
        if value > self.best.value + 1e-9:
            self.best = SearchResult(list(plan), held, self.complete(held, trace), value, 0, trace.met)
            self.improved = self.count

    def run(self, on_simulation: Callable[[int, SearchResult], None] | None = None) -> SearchResult:
        """Simulate until the budget is spent or, after a success, `patience` simulations bring nothing better.

        on_simulation(count, best) is called after every simulation (for measuring curves)."""
        state = self.goal.world.initial_state()
        held = self.held(state)
        self.root = _Node(state, held, held, Trace(), terminal=self.complete(held, Trace()))
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
        trace, value, done = Trace(), 0.0, []
        for t, action in enumerate(actions):
            if self.complete(held, trace):
                return SearchResult(done, held, True, value, self.count, trace.met)
            if not self.goal.allows(trace, action) or not world.step(state, action, in_place=True).success:
                return None
            held, trace, reward = self.transition(held, ever, trace, action, state)
            value += gamma**t * reward
            ever |= held
            done.append(action)
        return SearchResult(done, held, self.complete(held, trace), value, self.count, trace.met)

    def prune(self, result: SearchResult) -> SearchResult:
        """Drop single steps, then pairs (an open undone by a close), while the plan still runs, reaches the
        same goal facts and action goals and its return does not fall."""
        for width in (1, 2, 1):
            for index in reversed(range(len(result.actions) - width + 1)):
                if index + width > len(result.actions):
                    continue
                shorter = self.replay(result.actions[:index] + result.actions[index + width:])
                if (shorter is not None and shorter.value >= result.value - 1e-9 and shorter.held == result.held
                        and shorter.met == result.met):
                    result = shorter
        return result


def plan(goal: Goal, config: SearchConfig | None = None, seed: int | str = 0) -> SearchResult:
    """The highest-return plan MCTS finds for a goal within the configured budget."""
    return Search(goal, config or SearchConfig(), random.Random(seed)).run()
