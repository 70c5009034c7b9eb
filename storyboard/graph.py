"""The shot graph: the only module that imports networkx.

An edge A -> B means B needs an output of A (a frame or the clip); every shot in the edit's
sequence feeds the film node.
"""

from __future__ import annotations

from collections.abc import Mapping


import networkx as nx

from storyboard.errors import GraphError
from storyboard.model import Board

FILM = ":film"
"""The film's node name; ':' cannot appear in a shot id, so it never clashes."""


def build_graph(board: Board) -> nx.DiGraph:
    """Nodes are shot ids plus FILM; raises GraphError naming the cycle as `a -> b -> a`."""
    graph = nx.DiGraph()
    for shot in board.shots.values():
        graph.add_node(shot.id, shot=shot)
    graph.add_node(FILM)
    for shot in board.shots.values():
        for upstream in shot.upstream():
            graph.add_edge(upstream, shot.id)
    for shot_id in board.sequence:
        graph.add_edge(shot_id, FILM)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    nodes = [u for u, _ in cycle] + [cycle[0][0]]
    message = f"{board.path}: the shots form a cycle: {' -> '.join(nodes)}; break it by removing one of these references"
    raise GraphError(message)


def order(graph: nx.DiGraph) -> list[str]:
    """Shot ids in a deterministic topological order (lexicographic among ready shots by file order)."""
    index = {n: d["shot"].index for n, d in graph.nodes(data=True) if "shot" in d}
    ranked = nx.lexicographical_topological_sort(graph, key=lambda n: (index.get(n, 1 << 30), n))
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


def render(board: Board, graph: nx.DiGraph, fmt: str = "text", status: Mapping[str, str] | None = None) -> str:
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


def descendants(graph: nx.DiGraph, node: str) -> set[str]:
    """Shots that depend on `node`, directly or not."""
    return {n for n in nx.descendants(graph, node) if n != FILM}


def ancestors(graph: nx.DiGraph, node: str) -> set[str]:
    """Shots that `node` depends on."""
    return set(nx.ancestors(graph, node))


__all__ = ["FILM", "ancestors", "build_graph", "descendants", "order", "render"]
