"""The shot graph: edges, deterministic order, cycles, the film node, and the three renderings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storyboard.errors import GraphError
from storyboard.graph import FILM, ancestors, build_graph, descendants, order, render
from storyboard.load import load

HEAD = '[film]\nprovider = "fake"\n\n'

# file order on purpose differs from dependency order:
#   a -> b (continues), a -> c (first frame), b -> d and c -> d (references): a diamond;
#   solo and tail are independent; d comes first in the file but must wait.
DIAMOND = HEAD + '''
[[shot]]
id = "d"
prompt = "both"
references = [{ shot = "b" }, { shot = "c", frame = 2.0 }]

[[shot]]
id = "solo"
prompt = "alone"

[[shot]]
id = "c"
prompt = "from the start of a"
first_frame = { shot = "a", frame = "first" }

[[shot]]
id = "b"
prompt = "after a"
continues = "a"

[[shot]]
id = "a"
prompt = "the origin"

[[shot]]
id = "tail"
prompt = "alone too"
'''

# every kind of edge: extends, continues, first frame, last frame, reference
KINDS = HEAD + '''
[[shot]]
id = "arrival"
prompt = "a lighthouse"

[[shot]]
id = "climb"
prompt = "stairs"
continues = "arrival"
last_frame = { shot = "arrival", frame = "first" }

[[shot]]
id = "storm"
prompt = "lightning"
extends = "climb"

[[shot]]
id = "dawn"
prompt = "dawn"
first_frame = { shot = "arrival", frame = 2.5 }
last_frame = { shot = "storm", frame = "last" }

[[shot]]
id = "gull-cam"
prompt = "a gull"
references = [{ shot = "dawn" }]
'''


@pytest.fixture
def board_of(tmp_path: Path, fake_provider):
    def make(text: str, name: str = "storyboard.toml"):
        path = tmp_path / name
        path.write_text(text)
        return load(path)

    return make


def test_diamond_edges(board_of) -> None:
    graph = build_graph(board_of(DIAMOND))
    shot_edges = {(u, v) for u, v in graph.edges if v != FILM}
    assert shot_edges == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert ancestors(graph, "d") == {"a", "b", "c"}
    assert descendants(graph, "a") == {"b", "c", "d"}
    assert descendants(graph, "solo") == set()


def test_order_is_topological_and_breaks_ties_by_file_order(board_of) -> None:
    board = board_of(DIAMOND)
    ranked = order(build_graph(board))
    assert ranked == ["solo", "a", "c", "b", "d", "tail"]
    assert FILM not in ranked
    # the same board always gives the same order
    assert all(order(build_graph(board_of(DIAMOND))) == ranked for _ in range(3))


def test_order_follows_file_order_among_independent_shots(board_of) -> None:
    shots = "".join(f'[[shot]]\nid = "{s}"\nprompt = "{s}"\n\n' for s in ("zeta", "alpha", "mid"))
    assert order(build_graph(board_of(HEAD + shots))) == ["zeta", "alpha", "mid"]


def test_order_puts_upstream_first_whatever_the_file_order(board_of) -> None:
    board = board_of(KINDS)
    ranked = order(build_graph(board))
    for shot in board.shots.values():
        for up in shot.upstream():
            assert ranked.index(up) < ranked.index(shot.id)


@pytest.mark.parametrize(("shots", "cycle"), [
    ([("a", 'continues = "b"'), ("b", 'continues = "a"')], "a -> b -> a"),
    ([("a", 'first_frame = { shot = "c", frame = "first" }'), ("b", 'continues = "a"'), ("c", 'extends = "b"')],
     "a -> b -> c -> a"),
    ([("x", ""), ("a", 'references = [{ shot = "b" }]'), ("b", 'references = [{ shot = "a" }]')], "a -> b -> a"),
])
def test_cycle_message(board_of, shots: list[tuple[str, str]], cycle: str) -> None:
    text = HEAD + "".join(f'[[shot]]\nid = "{s}"\nprompt = "{s}"\n{extra}\n\n' for s, extra in shots)
    with pytest.raises(GraphError) as info:
        board_of(text, "loop.toml")
    message = info.value.message
    assert "loop.toml" in message
    assert f"the shots form a cycle: {cycle};" in message
    assert re.search(r"(\w+)( -> \w+)+", message).group(0).split(" -> ")[0] == \
        re.search(r"(\w+)( -> \w+)+", message).group(0).split(" -> ")[-1]


def test_self_reference_is_a_cycle(board_of) -> None:
    from storyboard.errors import StoryboardFileError

    with pytest.raises(StoryboardFileError, match=r"shot 'a': field 'extends': .*a -> a"):
        board_of(HEAD + '[[shot]]\nid = "a"\nprompt = "x"\nextends = "a"\n')


def test_text_rendering(board_of) -> None:
    board = board_of(KINDS)
    text = render(board, build_graph(board), "text")
    lines = text.splitlines()
    assert lines[0] == "arrival"
    assert "climb  <- continues arrival" in lines
    assert "storm  <- extends climb" in lines
    assert "dawn  <- first frame arrival; last frame storm" in lines
    assert "gull-cam  <- reference dawn" in lines
    assert lines[-1] == "film <- arrival, storm, dawn, gull-cam"
    assert text.endswith("\n")


def test_text_rendering_with_both_frames_and_status(board_of) -> None:
    board = board_of(HEAD + '''
[[shot]]
id = "a"
prompt = "a"

[[shot]]
id = "b"
prompt = "b"
first_frame = { shot = "a", frame = "first" }
last_frame = { shot = "a", frame = "last" }
''')
    text = render(board, build_graph(board), "text", {"a": "cached", "b": "to run"})
    assert "a (cached)" in text.splitlines()
    assert "b (to run)  <- first frame, last frame a" in text.splitlines()


def test_mermaid_rendering(board_of) -> None:
    board = board_of(KINDS)
    text = render(board, build_graph(board), "mermaid", {"arrival": "cached", "storm": "to run"})
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "flowchart LR"
    assert 's_arrival["arrival (cached)"]' in lines
    assert "class s_arrival cached" in lines
    assert "class s_storm to_run" in lines
    assert 's_gull_h_cam["gull-cam"]' in lines  # '-' is not safe in a Mermaid id
    assert 'film_node[["film"]]' in lines
    assert "s_arrival -->|continues| s_climb" in lines
    assert "s_climb -->|extends| s_storm" in lines
    assert "s_arrival -->|first frame| s_dawn" in lines
    assert "s_storm -->|last frame| s_dawn" in lines
    assert "s_dawn -->|reference| s_gull_h_cam" in lines
    for shot in ("arrival", "storm", "dawn", "gull_h_cam"):
        assert f"s_{shot} --> film_node" in lines
    assert "s_climb --> film_node" not in lines  # replaced by its extension
    assert any(line.startswith("classDef cached") for line in lines)
    assert any(line.startswith("classDef to_run") for line in lines)
    # every node referenced by an edge was declared
    declared = {m.group(1) for m in re.finditer(r"^(\w+)\[", text, re.M)} | {
        m.group(1) for m in re.finditer(r"^\s+(\w+)\[", text, re.M)}
    for m in re.finditer(r"^\s+(\w+) -->(?:\|[^|]*\|)? (\w+)$", text, re.M):
        assert m.group(1) in declared and m.group(2) in declared, m.group(0)


def test_dot_rendering(board_of) -> None:
    board = board_of(KINDS)
    text = render(board, build_graph(board), "dot", {"arrival": "cached", "storm": "to run"})
    assert text.startswith("digraph storyboard {")
    assert text.rstrip().endswith("}")
    assert '"arrival" [label="arrival (cached)", style=filled, fillcolor=palegreen];' in text
    assert '"storm" [label="storm (to run)", style=filled, fillcolor=lightyellow];' in text
    assert '"film" [shape=doubleoctagon];' in text
    assert '"arrival" -> "climb" [label="continues"];' in text
    assert '"climb" -> "storm" [label="extends"];' in text
    assert '"arrival" -> "dawn" [label="first frame"];' in text
    assert '"storm" -> "dawn" [label="last frame"];' in text
    assert '"dawn" -> "gull-cam" [label="reference"];' in text
    assert '"gull-cam" -> "film";' in text
    assert '"climb" -> "film"' not in text
    assert text.count(" -> ") == 5 + 4


def test_unknown_format_is_refused(board_of) -> None:
    board = board_of(KINDS)
    with pytest.raises(ValueError, match="format"):
        render(board, build_graph(board), "svg")


def test_film_node_is_fed_by_the_sequence(board_of) -> None:
    board = board_of(KINDS + '\n[edit]\nsequence = ["dawn", "arrival", "storm"]\n')
    graph = build_graph(board)
    assert board.sequence == ("dawn", "arrival", "storm")
    assert set(graph.predecessors(FILM)) == {"dawn", "arrival", "storm"}
    assert list(graph.successors(FILM)) == []
    assert render(board, graph, "text").splitlines()[-1] == "film <- dawn, arrival, storm"


def test_default_sequence_replaces_an_extended_shot_by_its_extension(board_of) -> None:
    board = board_of(HEAD + '''
[[shot]]
id = "x"
prompt = "x"

[[shot]]
id = "a"
prompt = "a"

[[shot]]
id = "y"
prompt = "y"

[[shot]]
id = "b"
prompt = "a, longer"
extends = "a"

[[shot]]
id = "c"
prompt = "a, longer still"
extends = "b"
''')
    # a -> b -> c is one chain: its final clip takes the place of 'a', the first in file order
    assert board.sequence == ("x", "c", "y")
    assert set(build_graph(board).predecessors(FILM)) == {"x", "c", "y"}


def test_default_sequence_is_file_order(board_of) -> None:
    board = board_of(DIAMOND)
    assert board.sequence == ("d", "solo", "c", "b", "a", "tail")


MERMAID_PARSE_JS = r"""
import { createRequire } from "module";
import { pathToFileURL } from "url";
import { readFileSync } from "fs";
const req = createRequire(process.env.MERMAID_NODE_MODULES.replace(/\/?$/, "/") + "x.js");
const { JSDOM } = req("jsdom");
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import(pathToFileURL(req.resolve("mermaid")).href);
mermaid.initialize({ startOnLoad: false });
let bad = 0;
for (const f of process.argv.slice(2)) {
  try { await mermaid.parse(readFileSync(f, "utf8")); console.log("OK " + f); }
  catch (e) { bad++; console.log("ERR " + f + ": " + String(e.message || e)); }
}
process.exit(bad ? 1 : 0);
"""


def test_mermaid_output_parses_with_mermaid(board_of, tmp_path: Path) -> None:
    """Optional: the real Mermaid parser accepts what we print.

    Needs node and a folder whose node_modules hold `mermaid` and `jsdom`
    (`npm install mermaid jsdom` anywhere), named by MERMAID_NODE_MODULES.
    """
    import os
    import shutil
    import subprocess

    modules = os.environ.get("MERMAID_NODE_MODULES")
    node = shutil.which("node")
    if not modules or node is None:
        pytest.skip("set MERMAID_NODE_MODULES to a node_modules folder with mermaid and jsdom to run this")
    script = tmp_path / "parse.mjs"
    script.write_text(MERMAID_PARSE_JS)
    files = []
    for i, (text, status) in enumerate([(KINDS, {"arrival": "cached", "storm": "to run"}), (DIAMOND, {})]):
        board = board_of(text, f"board{i}.toml")
        files.append(tmp_path / f"board{i}.mmd")
        files[-1].write_text(render(board, build_graph(board), "mermaid", status))
    ok = subprocess.run([node, str(script), *map(str, files)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.mmd"
    broken.write_text(files[0].read_text().replace('film_node[["film"]]', 'film_node[["film"]'))
    assert subprocess.run([node, str(script), str(broken)], capture_output=True, text=True,
                          timeout=120).returncode != 0
