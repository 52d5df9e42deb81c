"""Faster, equivalent versions of three simulator hot spots (installed when e2wm.world.sim is imported).

`virtualhome-eval` finds "every edge between X and anything" by trying all ~300 nodes of the scene, so a
walk costs ~1,300 edge deletions. We look up the edges that exist instead: forward ones from the state,
backward ones from a reverse index of the (immutable) base graph plus the state's few new edges. The
resulting states are the same (tests/unit/world/test_world.py compares them with the originals).
"""

from virtualhome_eval.simulation.evolving_graph import environment as env

ORIGINALS = {
    (env.DeleteEdges, "apply_changes"): env.DeleteEdges.apply_changes,
    (env.ObjectInsideNode, "enumerate"): env.ObjectInsideNode.enumerate,
    (env.BodyNode, "enumerate"): env.BodyNode.enumerate,
}


def _reverse(graph: env.EnvironmentGraph) -> dict[tuple[int, env.Relation], set[int]]:
    """(target id, relation) -> source ids over the base graph, built once per graph."""
    index = getattr(graph, "_e2wm_reverse", None)
    if index is None:
        index = {}
        for (source, relation), targets in graph._edge_map.items():
            for target in targets:
                index.setdefault((target, relation), set()).add(source)
        graph._e2wm_reverse = index
    return index


def _sources(state: env.EnvironmentState, target: int, relation: env.Relation) -> set[int]:
    """Nodes that may have a `relation` edge to target (the base graph's and the state's new edges)."""
    ids = set(_reverse(state._graph).get((target, relation), ()))
    ids.update(source for (source, r), targets in state._new_edges_from.items() if r == relation and target in targets)
    return ids


def _delete_edges(self, state, **kwargs):
    if not isinstance(self.to_node, env.AnyNode):
        return ORIGINALS[(env.DeleteEdges, "apply_changes")](self, state, **kwargs)
    for node in self.from_node.enumerate(state):
        for relation in self.relations:
            for target in list(state.get_node_ids_from(node.id, relation)):
                state.delete_edge(node, relation, env.Node(target))
            if self.delete_reverse:
                for source in _sources(state, node.id, relation):
                    state.delete_edge(env.Node(source), relation, node)


def _objects_inside(self, state, **kwargs):
    container = env.Node(self.container_node.id)
    for source in sorted(_sources(state, container.id, env.Relation.INSIDE)):
        if state.has_edge(env.Node(source), env.Relation.INSIDE, container):
            yield state.get_node(source)


def _body_parts(self, state, **kwargs):
    graph = state._graph
    body = getattr(graph, "_e2wm_body", None)
    if body is None:
        body = graph._e2wm_body = [n.id for n in graph.get_nodes() if env.Property.BODY_PART in n.properties]
    new = state._new_nodes
    yield from (state.get_node(i) for i in body if i not in new)
    yield from (n for n in new.values() if env.Property.BODY_PART in n.properties)


def install() -> None:
    env.DeleteEdges.apply_changes = _delete_edges
    env.ObjectInsideNode.enumerate = _objects_inside
    env.BodyNode.enumerate = _body_parts


def uninstall() -> None:
    for (cls, attribute), original in ORIGINALS.items():
        setattr(cls, attribute, original)
