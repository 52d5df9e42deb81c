"""Embodied experiences: goal-oriented plans (MCTS) and random exploration, collected in parallel."""
