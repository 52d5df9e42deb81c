"""Facts: node states and edges of a scene graph, and the goal of a program as the facts it gains."""

from typing import NamedTuple

SYMMETRIC = "CLOSE"  # CLOSE edges come in both directions; a fact names the pair once


class Fact(NamedTuple):
    """`fridge || OPEN` is Fact(fridge_id, 'OPEN'); `cup || INSIDE || cabinet` is Fact(cup_id, 'INSIDE', cabinet_id)."""

    subject: int
    relation: str
    target: int | None = None


def edge_fact(source: int, relation: str, target: int) -> Fact:
    if relation == SYMMETRIC and source > target:
        source, target = target, source
    return Fact(source, relation, target)


def graph_facts(graph: dict) -> set[Fact]:
    """Every node state and every edge (self-loops left out) of a graph dictionary."""
    facts = {Fact(node["id"], state.upper()) for node in graph["nodes"] for state in node["states"]}
    for edge in graph["edges"]:
        if edge["from_id"] != edge["to_id"]:
            facts.add(edge_fact(edge["from_id"], edge["relation_type"].upper(), edge["to_id"]))
    return facts


def goal_facts(init_graph: dict, final_graph: dict) -> list[Fact]:
    """The facts of the final graph that the initial graph lacks (new states, new edges), sorted."""
    gained = graph_facts(final_graph) - graph_facts(init_graph)
    return sorted(gained, key=lambda f: (f.subject, f.relation, f.target or 0))


def fact_string(fact: Fact, names: dict[int, str]) -> str:
    """'fridge || OPEN' or 'cup || INSIDE || kitchen_cabinet' (class names, as in the experience records)."""
    parts = [names[fact.subject], fact.relation] + ([] if fact.target is None else [names[fact.target]])
    return " || ".join(parts)
