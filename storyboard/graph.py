"""The shot graph, and the only module that imports networkx (to name a cycle).

An edge A -> B means B needs an output of A (a frame or the clip); every shot in the edit's
sequence feeds the film node. The graph is a few dicts: networkx takes longer to import than
planning a thousand cached shots, so it is loaded only when the shots form a cycle, where its
``find_cycle`` names the one reported.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from typing import Any

from storyboard.errors import GraphError
from storyboard.model import Board

FILM = ":film"
"""The film's node name; ':' cannot appear in a shot id, so it never clashes."""


class ShotGraph:
    """A directed graph with networkx's DiGraph reading API (nodes, edges, predecessors, successors).

    Nodes and edges keep their insertion order, as networkx's do, so every walk matches its.
    """

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        self._succ: dict[str, dict[str, None]] = {}
        self._pred: dict[str, dict[str, None]] = {}

    def add_node(self, node: str, **data: Any) -> None:
        """Add ``node`` (again: update its data)."""
        if node not in self._data:
            self._data[node], self._succ[node], self._pred[node] = {}, {}, {}
        self._data[node].update(data)

    def add_edge(self, upstream: str, downstream: str) -> None:
        """Add the edge, and either end that is not a node yet."""
        for node in (upstream, downstream):
            if node not in self._data:
                self.add_node(node)
        self._succ[upstream][downstream] = None
        self._pred[downstream][upstream] = None

    def nodes(self, data: bool = False) -> list[Any]:
        """Node names, or (name, data) pairs with ``data=True``."""
        return list(self._data.items()) if data else list(self._data)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Every (upstream, downstream) pair."""
        return [(u, v) for u, downs in self._succ.items() for v in downs]

    def predecessors(self, node: str) -> Iterator[str]:
        """The nodes with an edge into ``node``."""
        return iter(self._pred[node])

    def successors(self, node: str) -> Iterator[str]:
        """The nodes ``node`` has an edge to."""
        return iter(self._succ[node])

    def reachable(self, node: str, forward: bool) -> set[str]:
        """Nodes reached from ``node`` along edges (``forward``) or against them, itself excluded."""
        step = self._succ if forward else self._pred
        seen: set[str] = set()
        todo = list(step[node])
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(step[n])
        seen.discard(node)
        return seen

    def cycle(self) -> list[tuple[str, str]] | None:
        """The edges of a cycle, as ``networkx.find_cycle`` names it, or None when there is none."""
        indegree = {n: len(ups) for n, ups in self._pred.items()}
        ready = [n for n, d in indegree.items() if d == 0]
        sorted_count = 0
        while ready:
            n = ready.pop()
            sorted_count += 1
            for child in self._succ[n]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        if sorted_count == len(self._data):
            return None
        import networkx as nx  # only here: the message names the cycle networkx finds

        graph = nx.DiGraph()
        graph.add_nodes_from(self._data)
        graph.add_edges_from(self.edges)
        return list(nx.find_cycle(graph))


def build_graph(board: Board) -> ShotGraph:
    """Nodes are shot ids plus FILM; raises GraphError naming the cycle as `a -> b -> a`.

    Built once per board (loading checks the cycles, the project plans with it): a board is
    frozen, and nothing changes a graph once built.
    """
    known = board.__dict__.get("_graph")
    if known is not None:
        return known
    graph = ShotGraph()
    for shot in board.shots.values():
        graph.add_node(shot.id, shot=shot)
    graph.add_node(FILM)
    for shot in board.shots.values():
        for upstream in shot.upstream():
            graph.add_edge(upstream, shot.id)
    for shot_id in board.sequence:
        graph.add_edge(shot_id, FILM)
    cycle = graph.cycle()
    if cycle is None:
        object.__setattr__(board, "_graph", graph)  # not a field: equality and hash ignore it
        return graph
    nodes = [u for u, _ in cycle] + [cycle[0][0]]
    message = f"{board.path}: the shots form a cycle: {' -> '.join(nodes)}; break it by removing one of these references"
    raise GraphError(message)


def order(graph: ShotGraph) -> list[str]:
    """Shot ids in a deterministic topological order (lexicographic among ready shots by file order).

    Kahn's algorithm with a heap keyed by (file position, id), as networkx's
    ``lexicographical_topological_sort`` with that key: the keys are unique, so the order is too.
    """
    index = {n: d["shot"].index for n, d in graph.nodes(data=True) if "shot" in d}

    def key(n: str) -> tuple[int, str]:
        return index.get(n, 1 << 30), n

    indegree = {n: sum(1 for _ in graph.predecessors(n)) for n in graph.nodes()}
    ready = [(key(n), n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    ranked = []
    while ready:
        _, n = heapq.heappop(ready)
        ranked.append(n)
        for child in graph.successors(n):
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (key(child), child))
    return [n for n in ranked if n != FILM]


def _edge_label(board: Board, src: str, dst: str) -> str:
    shot = board.shots[dst] if dst in board.shots else None
    if shot is None:
        return ""
    if shot.extends == src:
        return "extends"
    if shot.edits == src:
        return "edits"
    if shot.continues == src:
        return "continues"
    labels = []
    for name, image in (("first", shot.first_frame), ("last", shot.last_frame)):
        if getattr(image, "shot", None) == src:
            labels.append(f"{name} frame")
    if any(getattr(r, "shot", None) == src for r in shot.references):
        labels.append("reference")
    return ", ".join(labels)


def render(board: Board, graph: ShotGraph, fmt: str = "text", status: Mapping[str, str] | None = None) -> str:
    """The graph as text, Mermaid or DOT; `status` marks each shot (e.g. cached / to run)."""
    status = status or {}
    shots = order(graph)

    def title(n: str) -> str:
        return f"{n} ({status[n]})" if n in status else n

    if fmt == "text":
        lines = []
        for n in shots:
            ups = sorted(graph.predecessors(n), key=shots.index)
            needs = "; ".join(f"{_edge_label(board, u, n)} {u}" for u in ups)
            lines.append(f"{title(n)}" + (f"  <- {needs}" if needs else ""))
        lines.append(f"film <- {', '.join(board.sequence)}")
        return "\n".join(lines) + "\n"
    if fmt == "mermaid":
        out = ["flowchart LR"]
        for n in shots:
            out.append(f'    {_mid(n)}["{title(n)}"]')
            cls = status.get(n, "").replace(" ", "_")
            if cls:
                out.append(f"    class {_mid(n)} {cls}")
        out.append('    film_node[["film"]]')
        for u, v in sorted(graph.edges, key=lambda e: (shots.index(e[0]), e[1])):
            dst = "film_node" if v == FILM else _mid(v)
            label = _edge_label(board, u, v)
            out.append(f"    {_mid(u)} -->|{label}| {dst}" if label else f"    {_mid(u)} --> {dst}")
        out.append("    classDef cached fill:#d4edda,stroke:#28a745")
        out.append("    classDef to_run fill:#fff3cd,stroke:#d39e00")
        return "\n".join(out) + "\n"
    if fmt == "dot":
        out = ["digraph storyboard {", "  rankdir=LR;"]
        for n in shots:
            colour = {"cached": "palegreen", "to run": "lightyellow"}.get(status.get(n, ""), "white")
            out.append(f'  "{n}" [label="{title(n)}", style=filled, fillcolor={colour}];')
        out.append('  "film" [shape=doubleoctagon];')
        for u, v in sorted(graph.edges, key=lambda e: (shots.index(e[0]), e[1])):
            label = _edge_label(board, u, v)
            attrs = f' [label="{label}"]' if label else ""
            out.append(f'  "{u}" -> "{"film" if v == FILM else v}"{attrs};')
        out.append("}")
        return "\n".join(out) + "\n"
    raise ValueError(f"unknown graph format {fmt!r}")


def _mid(node: str) -> str:
    """A Mermaid-safe node id (ids may contain '-')."""
    return "s_" + node.replace("-", "_h_")


def descendants(graph: ShotGraph, node: str) -> set[str]:
    """Shots that depend on `node`, directly or not."""
    return {n for n in graph.reachable(node, forward=True) if n != FILM}


def ancestors(graph: ShotGraph, node: str) -> set[str]:
    """Shots that `node` depends on."""
    return graph.reachable(node, forward=False)


__all__ = ["FILM", "ShotGraph", "ancestors", "build_graph", "descendants", "order", "render"]
