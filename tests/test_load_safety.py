"""A storyboard is untrusted input: loading it never runs code, leaks a key, hangs, or blows up."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest

from storyboard.errors import StoryboardFileError
from storyboard.load import MAX_DEPTH, MAX_FILE_BYTES, load
from tests.test_cli import run_main

ROOT = Path(__file__).resolve().parent.parent


def board_with_prompt(folder: Path, prompt: str, vars_: str = 'name = "Ann"') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "storyboard.toml"
    path.write_text(f"[vars]\n{vars_}\n\n[[shot]]\nid = \"a\"\nprompt = {json.dumps(prompt)}\n")
    return path


# ---- templates are data ------------------------------------------------------------------------

CODE_EXECUTION = [
    "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "{{ lipsum.__globals__.os.system('touch MARKER') }}",
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('touch MARKER').read() }}",
    "{{ name.__class__.__mro__[1].__subclasses__() }}",
    "{{ (name|attr('__class__')).__mro__ }}",
    "{% set x = name.__class__ %}{{ x }}",
    "{{ name.format('{0.__class__}') }}",
]


@pytest.mark.parametrize("prompt", CODE_EXECUTION)
def test_a_template_cannot_run_code(prompt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = board_with_prompt(tmp_path / "board", prompt)
    code, out, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2, err
    assert not (tmp_path / "MARKER").exists()
    assert not (tmp_path / "board" / "MARKER").exists()
    assert "Traceback" not in err and "shot 'a'" in err and "field 'prompt'" in err
    assert "__subclasses__" not in out and "<class" not in err


LEAKS = [
    "{{ lipsum.__globals__.os.environ.GEMINI_API_KEY }}",
    "{{ lipsum.__globals__['os'].environ['GEMINI_API_KEY'] }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ range.__self__ }}",
    "{{ config }}{{ environ }}{{ env }}",
]


@pytest.mark.parametrize("prompt", LEAKS)
def test_a_template_cannot_read_a_key(prompt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789-never-print-me"
    monkeypatch.setenv("GEMINI_API_KEY", secret)
    path = board_with_prompt(tmp_path / "board", prompt)
    for command in (["validate", str(path)], ["plan", str(path)], ["build", str(path)]):
        code, out, err = run_main(command, capsys, monkeypatch)
        assert code == 2, err
        assert secret not in out and secret not in err
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file


RUNAWAY = [
    "{% for i in range(10**12) %}{% endfor %}",
    "{% for i in range(10**12) %}x{% endfor %}",
    "{{ 'x' * 10**12 }}",
    "{{ [1] * 10**10 }}",
    "{{ 2 ** 10000000 }}",
    "{% set n = 2 ** 4000 %}{{ n * n * n * n }}",
    "{% set a = big %}" + "{% set a = a ~ a %}" * 40 + "{{ a }}",
    "{% for a in big %}{% for b in big %}{% for c in big %}{% endfor %}{% endfor %}{% endfor %}",
    "{% for a in big %}{% for b in big %}{{ a }}{% endfor %}{% endfor %}",
    "{{ big|replace('x', big)|replace('x', big) }}",
    "{{ name|indent(10**10) }}",
    "{{ big|join(big) }}",
    "{{ '%999999999999d' % 1 }}",
    "{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}",
    "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
    "{{ name ~ name }}" * 700,
    "{% for a in big %}" * 200 + "x" + "{% endfor %}" * 200,
    "x" * 9000 + "{{ name }}{% if name %}{% endif %}",
]


def test_runaway_templates_stop_within_two_seconds(tmp_path: Path) -> None:
    """Each in a child process capped at 1 GiB, so a template that did run away cannot take the machine."""
    boards = []
    for i, prompt in enumerate(RUNAWAY):
        boards.append(str(board_with_prompt(tmp_path / f"b{i}", prompt, 'name = "Ann"\nbig = "' + "x" * 3000 + '"')))
    script = textwrap.dedent("""
        import json, resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from storyboard.errors import StoryboardFileError
        from storyboard.load import load
        results = []
        for path in sys.argv[1:]:
            start = time.monotonic()
            try:
                load(path)
                results.append(["loaded", time.monotonic() - start, ""])
            except StoryboardFileError as exc:
                results.append(["refused", time.monotonic() - start, exc.message])
        print(json.dumps(results))
    """)
    proc = subprocess.run([sys.executable, "-c", script, *boards], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    for prompt, (outcome, seconds, message) in zip(RUNAWAY, results, strict=True):
        assert outcome == "refused", prompt
        assert seconds < 2, (prompt, seconds)
        assert "shot 'a'" in message and "field 'prompt'" in message, message


def test_the_range_loop_is_refused_through_the_cli_quickly(tmp_path: Path) -> None:
    path = board_with_prompt(tmp_path / "board", "{% for i in range(10**12) %}{% endfor %}a lighthouse")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "storyboard", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert time.monotonic() - start < 20
    assert "templates may only use [vars] and these filters" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_output_past_the_providers_limit_stops_rendering(tmp_path: Path) -> None:
    words = json.dumps(["w"] * 2000)
    path = board_with_prompt(tmp_path / "board", "{% for w in words %}{% for v in words %}{{ v }}{% endfor %}{% endfor %}",
                             f"words = {words}")
    start = time.monotonic()
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    assert time.monotonic() - start < 2
    assert "longer than 4000 characters" in info.value.message
    assert "at most 4000" in info.value.message


@pytest.mark.parametrize("prompt, expected", [
    ("{{ name }} walks", "Ann walks"),
    ("{{name}} and {{ place }}", "Ann and the pier"),
    ("{% if night %}night{% else %}day{% endif %}: {{ name|upper }}", "day: ANN"),
    ("{{ names|join(', ') }}; {{ names|length }} of them; first {{ names|first }}", "Ann, Bob; 2 of them; first Ann"),
    ("{% for n in names %}{{ loop.index }}.{{ n|lower }} {% endfor %}", "1.ann 2.bob "),
    ("{{ missing|default('nobody') }} {{ name ~ '!' }} {{ count * 2 + 1 }}", "nobody Ann! 7"),
    ("{{ place|title|replace('Pier', 'Harbour') }} {{ '  x  '|trim }}", "The Harbour x"),
    ("{% set who = name|capitalize %}{{ who }} {{ size.width }}x{{ size['height'] }}", "Ann 1280x720"),
    ("{% for k, v in size|items %}{{ k }}={{ v }} {% endfor %}", "width=1280 height=720 "),
    ("{{ ratio|round(1) }} {{ '3'|int + 1 }} {{ 'a b c'|wordcount }} {{ long|truncate(10, leeway=0) }}", "0.6 4 3 a long..."),
    ("{# a comment #}{{ name }}{% raw %}{{ kept }}{% endraw %}", "Ann{{ kept }}"),
])
def test_ordinary_templates_still_render(prompt: str, expected: str, write_board) -> None:
    path = write_board(f"""
        [vars]
        name = "Ann"
        place = "the pier"
        night = false
        names = ["Ann", "Bob"]
        count = 3
        size = {{ width = 1280, height = 720 }}
        ratio = 0.5625
        long = "a long sentence"

        [[shot]]
        id = "a"
        prompt = {json.dumps(prompt)}
    """)
    assert load(path).shots["a"].prompt == expected


@pytest.mark.parametrize("prompt, says", [
    ("{{ name|center(80) }}", "filter 'center' is not allowed"),
    ("{{ name.upper() }}", "calling a function or method is not allowed"),
    ("{% include 'other.toml' %}", "including other files is not allowed"),
    ("{{ name.__class__ }}", "is unsafe"),
    ("{{ lipsum }}", "unknown variable 'lipsum'"),
    ("{{ 1 // 0 }}", "ZeroDivisionError"),
])
def test_refused_templates_say_what_is_allowed(prompt: str, says: str, tmp_path: Path) -> None:
    path = board_with_prompt(tmp_path / "board", prompt)
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    assert says in info.value.message
    assert "shot 'a': field 'prompt'" in info.value.message
    if "unknown variable" not in says and "ZeroDivision" not in says:
        assert "templates may only use [vars] and these filters: " in info.value.message


# ---- the TOML file itself ------------------------------------------------------------------------

@pytest.mark.parametrize("inner", ["1", "{ x = 1 }", ""])
def test_values_may_nest_max_depth_levels_deep_and_no_deeper(inner: str) -> None:
    """The root is level 0 and `[vars]` level 1: `a = [[...]]` with k brackets puts its value k + 2 deep."""
    from storyboard.load import _parse

    def nested(k: int) -> str:
        return "[vars]\na = " + "[" * k + inner + "]" * k + "\n"

    deepest = MAX_DEPTH - 2 - (inner == "{ x = 1 }") + (inner == "")  # an empty array holds no value
    _parse(Path("ok.toml"), nested(deepest))
    with pytest.raises(StoryboardFileError, match=f"more than {MAX_DEPTH} levels"):
        _parse(Path("deep.toml"), nested(deepest + 1))


@pytest.mark.parametrize("text", [
    "a = " + "[" * 100_000,
    "a = " + "[" * 5000 + "]" * 5000,
    "a = " + "{ b = " * 3000 + "1" + " }" * 3000,
    "[vars]\na = " + "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2),
])
def test_deep_nesting_is_an_error_not_a_crash(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text + "\n")
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2, err
    assert "Traceback" not in err and "deep.toml" in err and f"more than {MAX_DEPTH} levels" in err


def test_moderate_nesting_in_vars_is_fine(write_board) -> None:
    path = write_board("""
        [vars]
        grid = [[[["deep"]]]]

        [[shot]]
        id = "a"
        prompt = "{{ grid[0][0][0][0] }}"
    """)
    assert load(path).shots["a"].prompt == "deep"


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.toml"
    padding = ("# " + "x" * 98 + "\n") * (MAX_FILE_BYTES // 100 + 1)
    path.write_text('[[shot]]\nid = "a"\nprompt = "a"\n' + padding)
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2
    assert "huge.toml" in err and "larger than 4 MiB" in err


def test_a_storyboard_that_is_a_named_pipe_does_not_hang(tmp_path: Path) -> None:
    path = tmp_path / "storyboard.toml"
    os.mkfifo(path)
    proc = subprocess.run([sys.executable, "-m", "storyboard", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "is a named pipe (FIFO), not a file" in proc.stderr


# ---- assets --------------------------------------------------------------------------------------

def test_an_asset_that_is_a_named_pipe_says_so(write_board, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_board("""
        [assets]
        pipe = "assets/pipe.png"

        [[shot]]
        id = "a"
        prompt = "a"
        first_frame = "pipe"

        [[shot]]
        id = "b"
        prompt = "b"
        first_frame = "assets/pipe.png"
    """)
    os.mkfifo(path.parent / "assets" / "pipe.png")
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2
    assert "[assets] 'pipe': 'assets/pipe.png' is a named pipe (FIFO), not a file" in err
    assert "shot 'b': field 'first_frame': 'assets/pipe.png' is a named pipe (FIFO), not a file" in err
    assert "not found" not in err


def test_a_device_as_an_asset_says_so(write_board) -> None:
    path = write_board("""
        [[shot]]
        id = "a"
        prompt = "a"
        first_frame = "/dev/zero"
    """)
    with pytest.raises(StoryboardFileError, match=r"'/dev/zero' is a character device, not a file"):
        load(path, allow_outside=True)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size and holds one empty row: enough for Pillow to read the size."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (30_000, 30_000)])
def test_an_oversized_image_is_an_error(width: int, height: int, write_board) -> None:
    path = write_board("""
        [assets]
        huge = "assets/huge.png"

        [[shot]]
        id = "a"
        prompt = "a"
        first_frame = "huge"
    """)
    (path.parent / "assets" / "huge.png").write_bytes(png_header(width, height))
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    assert "[assets] 'huge': 'assets/huge.png' is too large to decode safely" in info.value.message
    assert f"{width * height}" in info.value.message


def test_a_truncated_image_is_an_error_naming_the_asset(write_board) -> None:
    from PIL import Image

    path = write_board("""
        [assets]
        keeper = "assets/keeper.png"

        [[shot]]
        id = "a"
        prompt = "a"
        references = ["keeper"]
    """)
    image = path.parent / "assets" / "keeper.png"
    Image.effect_noise((256, 256), 40).convert("RGB").save(image)
    assert load(path).shots["a"].references[0].name == "keeper"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    assert "line 3: [assets] 'keeper': 'assets/keeper.png' cannot be decoded" in info.value.message
    assert "truncated or corrupt" in info.value.message


def test_an_image_is_decoded_once_while_unchanged(write_board, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    path = write_board("""
        [[shot]]
        id = "a"
        prompt = "a"
        first_frame = "assets/keeper.png"
    """, keeper=(10, 20, 30))
    opened: list[object] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(fp) or real_open(fp, *a, **k))
    load(path)
    load(path)
    assert len(opened) == 1
    Image.new("RGB", (32, 18), (1, 2, 3)).save(path.parent / "assets" / "keeper.png")
    load(path)
    assert len(opened) == 2


@pytest.mark.parametrize("assets, field", [
    ('[assets]\nharbour = { url = "https://example.com/harbour.jpg" }\n', 'first_frame = "harbour"'),
    ('[assets]\nharbour = "https://example.com/harbour.jpg"\n', 'first_frame = "harbour"'),
    ("", 'first_frame = "https://example.com/harbour.jpg"'),
    ("", 'references = ["http://example.com/harbour.jpg"]'),
])
def test_url_assets_are_refused_at_validate(assets: str, field: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "storyboard.toml"
    path.write_text(f'{assets}\n[[shot]]\nid = "a"\nprompt = "a"\n{field}\n')
    code, out, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2, out
    assert "is a URL; storyboard does not fetch URLs: download the file into the board's folder" in err


def test_an_mp4_asset_may_be_declared_but_not_used_as_an_image(write_board) -> None:
    path = write_board("""
        [assets]
        clip = "assets/clip.mp4"

        [[shot]]
        id = "a"
        prompt = "a"
    """)
    (path.parent / "assets" / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + b"\0" * 16)
    assert load(path).assets["clip"].kind == "mp4"
    path.write_text(path.read_text() + 'first_frame = "clip"\n')
    with pytest.raises(StoryboardFileError, match="'clip' is a video clip, but first_frame needs a PNG or JPEG"):
        load(path)


def test_a_symlink_loop_as_an_asset_is_an_error(write_board) -> None:
    path = write_board("""
        [[shot]]
        id = "a"
        prompt = "a"
        first_frame = "assets/loop.png"
    """)
    os.symlink("loop.png", path.parent / "assets" / "loop.png")
    with pytest.raises(StoryboardFileError, match=r"field 'first_frame': 'assets/loop.png' is a symbolic link"):
        load(path)


def test_template_output_never_shows_a_memory_address(write_board) -> None:
    path = write_board("""
        [vars]
        size = { width = 1280 }

        [[shot]]
        id = "a"
        prompt = "{{ size|items }} {{ size }}"
    """)
    assert load(path).shots["a"].prompt == "[('width', 1280)] {'width': 1280}"


def test_the_templates_of_a_board_share_a_time_budget() -> None:
    from storyboard.errors import TemplateError
    from storyboard.template import TOTAL_BUDGET, PromptRenderer

    now = [0.0]

    def clock() -> float:
        now[0] += 0.25
        return now[0]

    renderer = PromptRenderer({"name": "Ann"}, clock=clock)
    rendered = 0
    with pytest.raises(TemplateError, match=f"more than {TOTAL_BUDGET:g} s in all"):
        for i in range(200):
            assert renderer.render(f"{{% if name %}}{i} {{{{ name }}}}{{% endif %}}", 100) == f"{i} Ann"
            rendered += 1
    assert 5 <= rendered < 100
