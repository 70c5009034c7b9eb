"""Hypothesis strategies for the fuzzer (tests/test_fuzz.py): hostile storyboards and lock files.

A storyboard is untrusted input, so these strategies draw boards the way an attacker or a
careless teammate would write them: built from the real schema (storyboard/model.py) so that
most of them get past the TOML parser and reach the loader's rules, with every field now and
then given a hostile value or a value of the wrong type. Paths name the files of the sandbox
test_fuzz.py lays out (`SANDBOX_FILES`), including symlinks that leave the board's folder.
`@VICTIM@` in any string stands for the absolute path of the sandbox's victim folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

# hypothesis keeps caches in ./.hypothesis; tests never write inside the repository
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "storyboard-hypothesis"))

VICTIM = "@VICTIM@"
IDS = ["a", "b", "c", "intro", "x-1", "y_2"]
ASSET_NAMES = ["keeper", "top", "link", "escape", "fake", "trunc", "missing"]
PROVIDERS = ["animatic", "animatic", "animatic", "gemini", "vertex", "apiframe", "nope", "Animatic"]

SANDBOX_FILES = {
    # name in the board's assets/ folder -> what test_fuzz.py puts there
    "keeper.png": "a real PNG",
    "top.png": "a real PNG",
    "notimage.png": "text",
    "empty.png": "no bytes",
    "trunc.png": "the first 60 bytes of a PNG",
    "fake.mp4": "an ftyp box and noise",
    "inside.png": "symlink to keeper.png",
    "link.png": "symlink to the victim's secret.png",
    "escape": "symlink to the victim folder",
    "loop": "symlink to itself",
    "dangling.png": "symlink to nothing",
}

PATHS = [
    "assets/keeper.png", "assets/top.png", "assets/notimage.png", "assets/empty.png", "assets/trunc.png",
    "assets/fake.mp4", "assets/inside.png", "assets/link.png", "assets/escape/secret.png", "assets/loop",
    "assets/loop/x.png", "assets/dangling.png", "assets/missing.png", "assets", "assets/", ".", "", "..",
    "../victim/secret.png", "assets/../../victim/secret.png", f"{VICTIM}/secret.png", "/etc/passwd",
    "/dev/zero", "~/x.png", "assets//keeper.png", "ASSETS/KEEPER.PNG", "assets/keeper.png\x00.txt",
    "C:\\Windows\\x.png", "\\\\server\\share\\x.png", "x" * 300 + ".png", "a/" * 2100 + "x.png",
    "http://127.0.0.1:9/x.png", "https://127.0.0.1:9/x.png", "file:///etc/passwd", "ftp://127.0.0.1/x",
]

OUTPUTS = [
    "build/film.mp4", "build/film.mp4", "film.mp4", "../x.mp4", "../victim/x.mp4", "/etc/x.mp4",
    f"{VICTIM}/x.mp4", "assets/escape/x.mp4", "assets/link.png", "", ".", "..", "build/", "build/../../x.mp4",
    "~/x.mp4", "x.mp4\x00", "a/" * 2100 + "x.mp4", "x" * 300 + ".mp4", "storyboard.toml", "assets",
]

HOSTILE = [
    "", " ", "\n", "a\n", "a\r\nb", "\x00", "\x1b[31mred\x1b[0m", "\x07", "\u202eevil", "\ufeff", "\u200b",
    "😀", "ß", "İ", "ǅ", "\\", '"', "'''", '"""', "${HOME}", "$(touch pwned)", "`id`", "%s%n%x", "{0}",
    "../x", "/etc/passwd", "..", "NUL", "CON", "a" * 5000, "ab" * 3000, "1e309", "nan", "-0", "0x10",
    "__class__", "__proto__", "constructor", "None", "null", "true",
]

# templates: harmless, erroneous, sandbox escapes and bombs (bounded so an unsandboxed run survives)
TEMPLATE_PIECES = [
    "A lighthouse at dusk. ", "{{ keeper }}", "{{keeper}}", "{{ place }} ", "{{ missing }}", "{{ keeper|upper }}",
    "{% if keeper %}yes{% endif %}", "{% for w in words %}{{ w }} {% endfor %}", "{# a comment #}", "{{", "}}",
    "{%", "%}", "{#", "{{ }}", "{{ keeper.nope.deeper }}", "{{ keeper[0] }}", "{{ words[99] }}", "{{ 1/0 }}",
    "{{ 2**100000 }}", "{{ 'x' * 10**7 }}", "{% for i in range(10**6) %}{% endfor %}done",
    "{{ range(10**12)|length }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self.__init__.__globals__ }}", "{{ lipsum.__globals__['os'].getcwd() }}",
    "{{ cycler.__init__.__globals__.os.popen('touch @VICTIM@/pwned').read() }}",
    "{{ joiner.__init__.__globals__.__builtins__.open('@VICTIM@/pwned', 'w').write('x') }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "{% include 'storyboard.toml' %}",
    "{% extends '/etc/passwd' %}", "{% import 'os' as os %}", "{{ range(3) }}", "{{ keeper() }}",
    "{% set x = namespace(a=1) %}{{ x.a }}", "{{ config }}", "{{ request }}", "{{ '%s'|format(keeper) }}",
    "{% raw %}{{ keeper }}{% endraw %}", "{{ keeper * 100000 }}", "{% filter upper %}x{% endfilter %}",
]


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest raw."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class Raw(str):
    """TOML written as is (deep nesting the emitter would not make)."""


def toml_value(value: Any) -> str:
    """TOML for a Python value: strings, numbers (inf, nan), booleans, arrays and inline tables."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def to_toml(doc: dict[str, Any]) -> str:
    """A storyboard file: top-level keys first, then tables, then the [[shot]] array of tables."""
    head, tables, shots = [], [], []
    for key, value in doc.items():
        name = toml_string(key)
        if key == "shot" and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for shot in value:
                shots.append("[[shot]]")
                shots += [f"{toml_string(k)} = {toml_value(v)}" for k, v in shot.items()]
                shots.append("")
        elif isinstance(value, dict) and not isinstance(value, Raw):
            tables.append(f"[{name}]")
            tables += [f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items()]
            tables.append("")
        else:
            head.append(f"{name} = {toml_value(value)}")
    return "\n".join([*head, "", *tables, *shots]) + "\n"


# ---- values ---------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
strings = st.one_of(texts, st.sampled_from(HOSTILE), st.sampled_from(IDS))
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 1, 4, 6, 7, 8, 2**32, 2**63 - 1, -(2**63), 10**30, -(10**40)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.booleans(), numbers, strings)
deep = st.builds(lambda depth, table: Raw(("{x = " * depth + "1" + "}" * depth) if table else "[" * depth + "]" * depth),
                 st.sampled_from([2, 50, 500, 5000, 20_000]), st.booleans())
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
                      max_leaves=10)
values = st.integers(0, 19).flatmap(lambda n: deep if n == 0 else nested)
"""Any TOML value; one in twenty is nested hundreds or thousands deep."""


def typical(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, now and then any value of any type."""
    return st.one_of(strategy, strategy, strategy, values)


prompts = st.one_of(st.lists(st.sampled_from(TEMPLATE_PIECES) | texts, min_size=1, max_size=4).map("".join),
                    st.sampled_from(HOSTILE))
ids = st.sampled_from(IDS) | st.sampled_from(HOSTILE) | texts
frame_refs = st.fixed_dictionaries(
    {"shot": typical(st.sampled_from(IDS))},
    optional={"frame": typical(st.sampled_from(["first", "last"]) | numbers),
              "nope": values},
)
image_refs = st.one_of(st.sampled_from(ASSET_NAMES), st.sampled_from(PATHS), frame_refs, st.sampled_from(IDS))


@st.composite
def shot_tables(draw: st.DrawFn) -> dict[str, Any]:
    """One [[shot]] table: an id and a prompt (usually), and any of the other fields."""
    shot: dict[str, Any] = {}
    if draw(st.integers(0, 19)):
        shot["id"] = draw(typical(ids))
    if draw(st.integers(0, 19)):
        shot["prompt"] = draw(typical(prompts))
    optional = {
        "duration": st.sampled_from([4, 6, 8]) | numbers, "resolution": st.sampled_from(["720p", "1080p", "4k", "8k"]),
        "aspect_ratio": st.sampled_from(["16:9", "9:16", "4:3"]), "seed": numbers, "audio": st.booleans(),
        "take": st.sampled_from([1, 2, 0, -1, 2**63 - 1]), "provider": st.sampled_from(PROVIDERS),
        "model": strings, "negative_prompt": prompts, "first_frame": image_refs, "last_frame": image_refs,
        "continues": st.sampled_from(IDS), "extends": st.sampled_from(IDS),
        "references": st.lists(image_refs, max_size=5), "nope": values,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=5, unique=True)):
        shot[key] = draw(typical(optional[key]))
    return shot


@st.composite
def boards(draw: st.DrawFn) -> dict[str, Any]:
    """A storyboard as a dict of tables, built from the schema with hostile values mixed in."""
    film_fields = {
        "title": strings, "output": st.sampled_from(OUTPUTS), "provider": st.sampled_from(PROVIDERS),
        "model": strings, "resolution": st.sampled_from(["720p", "1080p", "4k"]),
        "aspect_ratio": st.sampled_from(["16:9", "9:16"]), "duration": st.sampled_from([4, 6, 8]) | numbers,
        "seed": numbers, "negative_prompt": prompts, "audio": st.booleans(), "nope": values,
    }
    doc: dict[str, Any] = {}
    film = {key: draw(typical(film_fields[key]))
            for key in draw(st.lists(st.sampled_from(sorted(film_fields)), max_size=5, unique=True))}
    if film or draw(st.booleans()):
        doc["film"] = film
    if draw(st.booleans()):
        names = st.sampled_from(["keeper", "place", "words", "range", "cycler", "self", "__class__", ""]) | texts
        doc["vars"] = draw(st.dictionaries(names, typical(prompts | st.lists(strings, max_size=3)), max_size=4))
    if draw(st.booleans()):
        asset = st.sampled_from(PATHS) | st.fixed_dictionaries({}, optional={"path": typical(st.sampled_from(PATHS)),
                                                                              "url": strings})
        doc["assets"] = draw(st.dictionaries(st.sampled_from(ASSET_NAMES) | strings, typical(asset), max_size=4))
    shots = draw(st.lists(shot_tables(), max_size=6))
    if shots or draw(st.booleans()):
        doc["shot"] = shots
    if draw(st.booleans()):
        transition = st.fixed_dictionaries({}, optional={
            "kind": typical(st.sampled_from(["cut", "crossfade", "fade", "wipe"])),
            "duration": typical(numbers)})
        doc["edit"] = draw(st.fixed_dictionaries({}, optional={
            "sequence": typical(st.lists(st.sampled_from(IDS), max_size=6)), "transition": typical(transition),
            "audio": typical(st.fixed_dictionaries({"normalize": typical(st.booleans())})), "nope": values}))
    if draw(st.integers(0, 3)) == 0:
        table = st.fixed_dictionaries({}, optional={
            key: typical(kind) for key, kind in {
                "model": strings, "base_url": st.sampled_from(["http://127.0.0.1:9", "https://evil.example", ""]),
                "concurrency": numbers, "rpm": numbers, "poll_interval": numbers, "timeout": numbers,
                "nope": values}.items()})
        doc["providers"] = draw(st.dictionaries(st.sampled_from(PROVIDERS) | strings, typical(table), max_size=2))
    if draw(st.integers(0, 5)) == 0:
        remote = st.sampled_from(["../victim/remote", f"{VICTIM}/remote", "memory://fuzz", "remote-here",
                                  f"file://{VICTIM}/remote", "http://127.0.0.1:9/remote", ""])
        doc["cache"] = draw(st.fixed_dictionaries({}, optional={"remote": typical(remote),
                                                               "remote_write": typical(st.booleans())}))
    if draw(st.integers(0, 9)) == 0:
        doc[draw(strings)] = draw(values)
    return doc


def chain(n: int, link: str) -> dict[str, Any]:
    """`n` shots, each extending or continuing the one before: a deep graph, long recursions."""
    shots = [{"id": "s0", "prompt": "start", "duration": 8}]
    shots += [{"id": f"s{i}", "prompt": "next", "duration": 8, link: f"s{i - 1}"} for i in range(1, n)]
    return {"film": {"provider": "animatic"}, "shot": shots}


lock_files = st.one_of(
    values.map(lambda v: json.dumps(v)),
    st.fixed_dictionaries({}, optional={
        "version": values, "film": values,
        "shots": st.dictionaries(st.sampled_from(IDS) | strings,
                                 values | st.fixed_dictionaries({}, optional={"key": values, "components": values,
                                                                             "clip": values})),
    }).map(lambda v: json.dumps(v)),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` after a few byte-level edits: flips, cuts, inserts, duplicated or swapped lines."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "dup-line", "swap-lines", "snippet", "truncate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "truncate":
            del data[at:]
        else:
            lines = bytes(data).split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "dup-line":
                lines.insert(j, lines[i])
            elif kind == "swap-lines":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, draw(st.sampled_from(SNIPPETS)).encode())
            data = bytearray(b"\n".join(lines))
    return bytes(data)


SNIPPETS = [
    'prompt = "{{ 1/0 }}"', 'id = "a\\n"', 'continues = "arrival"', 'extends = "dawn"', 'extends = "lamp"',
    "[[shot]]", "[film]", "[edit]", 'sequence = ["arrival", "arrival", "nope"]', "duration = 9223372036854775807",
    "duration = inf", "seed = -1", 'output = "../escaped.mp4"', f'output = "{VICTIM}/x.mp4"',
    'keeper = "assets/link.png"', 'first_frame = { shot = "storm", frame = 1e308 }', "references = [" * 3000,
    'prompt = "{{ cycler.__init__.__globals__.os.popen(\'touch @VICTIM@/pwned\').read() }}"',
    'last_frame = "../victim/secret.png"', "take = 0", 'provider = "gemini"', "[providers.gemini]",
    'base_url = "http://127.0.0.1:9"', "[cache]", 'remote = "../victim/remote"', "x = " + "[" * 5000,
]


# ---- provider responses ------------------------------------------------------------------------
# `@DL@` in a body is a download URL on the fake server, `@OTHER@` one on another loopback host
# (credentials must not go there), `@MP4B64@` a real clip in base64.

STATUSES = [200] * 8 + [201, 202, 204, 301, 302, 307, 400, 401, 403, 404, 408, 409, 413, 418, 422, 429, 500, 502,
                        503, 504, 599]
RETRY_AFTER = ["0", "1", "-5", "1e309", "nan", "inf", "99999999", "Wed, 21 Oct 2015 07:28:00 GMT",
               "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 32 Foo 2020 99:99:99 GMT", "garbage", ""]
STATES = ["done", "completed", "COMPLETED", "succeeded", "success", "SUCCESS", "finished", "failed", "FAILED",
          "failure", "error", "processing", "pending", "queued", "running", "in_progress", "cancelled", "expired", ""]
URLS = ["@DL@", "@DL@", "@DL@", "@OTHER@", "/dl/relative", "gs://bucket/clip.mp4", "gs://", "ftp://127.0.0.1/x",
        "file:///etc/passwd", "", "not a url", "http://[::1", "http://127.0.0.1:0/x", "data:video/mp4;base64,AAAA"]
API_KEYS = ["name", "id", "task_id", "jobId", "data", "status", "state", "done", "progress", "progressPercent",
            "metadata", "error", "message", "code", "detail", "response", "generateVideoResponse", "generatedSamples",
            "video", "videos", "uri", "url", "video_url", "videoUrl", "result", "outputs", "raiMediaFilteredCount",
            "raiMediaFilteredReasons", "encodedVideo", "bytesBase64Encoded", "base64_encoded", "base_64_encoded",
            "job", "expired", "fail_reason", "failure_reason", "creditsRequired", "creditsAvailable", "details",
            "gcsUri", "mimeType", "steps", "type", "content", "usage", "errors", "data"]
SKELETONS: list[list[Any]] = [
    # (submit answer, poll answer) of each API family, for mutations to start from
    [{"name": "operations/op1"}, {"name": "operations/op1", "done": True, "response": {"generateVideoResponse": {
        "generatedSamples": [{"video": {"uri": "@DL@"}}]}}}],
    [{"name": "operations/op1"}, {"done": True, "response": {"videos": [{"gcsUri": "gs://bucket/clip.mp4",
                                                                          "bytesBase64Encoded": "@MP4B64@"}]}}],
    [{"id": "task_1", "status": "queued"}, {"id": "task_1", "status": "completed", "progress": 100,
                                            "video_url": "@DL@"}],
    [{"data": {"task_id": "task_1"}}, {"data": {"status": "SUCCESS", "result": {"outputs": [{"url": "@DL@"}]}}}],
    [{"jobId": "j1"}, {"id": "j1", "status": "COMPLETED", "result": {"video_url": "@DL@"}}],
    [{"videos": [{"url": "@DL@"}]}, {"videos": [{"base64_encoded": "@MP4B64@"}]}],
]

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), strings, st.sampled_from(STATES),
                        st.sampled_from(URLS), st.just("@MP4B64@"))
api_json = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.sampled_from(API_KEYS), inner, max_size=5), max_leaves=12)


@st.composite
def mutate(draw: st.DrawFn, value: Any) -> Any:
    """`value` with now and then a subtree replaced by any API-ish JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(api_json)
    if isinstance(value, dict):
        return {k: draw(mutate(v)) for k, v in value.items() if draw(st.integers(0, 14))}
    if isinstance(value, list):
        return [draw(mutate(v)) for v in value]
    return value


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


api_bodies = st.one_of(
    st.sampled_from(SKELETONS).flatmap(lambda pair: st.sampled_from(pair)).flatmap(mutate).map(_json_bytes),
    st.sampled_from(SKELETONS).flatmap(lambda pair: st.sampled_from(pair)).map(_json_bytes),
    api_json.map(_json_bytes),
    st.sampled_from([b"", b"{", b"null", b"[]", b"<html>502 Bad Gateway</html>", b"\xff\xfe\x00",
                     b"@DEEP@", b'{"error": "\\u001b[31mred\\n\\nsecond line"}']),
    st.binary(max_size=64),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@st.composite
def replies(draw: st.DrawFn, download: bool) -> dict[str, Any]:
    """One answer: status, headers and body, or a reset connection, or (downloads) a trickle."""
    headers: list[tuple[str, str]] = []
    status = draw(st.sampled_from(STATUSES))
    if status in (301, 302, 307):
        headers.append(("Location", draw(st.sampled_from(URLS) | header_text)))
    if draw(st.integers(0, 3)) == 0:
        headers.append(("Retry-After", draw(st.sampled_from(RETRY_AFTER) | header_text)))
    if draw(st.integers(0, 4)) == 0:
        headers.append((draw(st.sampled_from(["Content-Length", "Content-Encoding", "Content-Type",
                                              "Transfer-Encoding"])),
                        draw(st.sampled_from(["0", "-1", "10", "99999999999", "abc", "gzip", "br", "identity",
                                              "chunked", "application/json", "video/mp4"]) | header_text)))
    if download:
        body = draw(st.sampled_from(["@MP4@", "@MP4@", "@MP4@", "@HALF-MP4@", "@FTYP@", "", "@MP4@@MP4@"])
                    | st.binary(max_size=64))
    else:
        body = draw(api_bodies)
    action = draw(st.sampled_from(["answer"] * 12 + ["reset"] + (["trickle"] if download else [])))
    return {"status": status, "headers": headers, "body": body, "action": action}


scripts = st.fixed_dictionaries({
    "api": st.lists(replies(download=False), min_size=1, max_size=6),
    "download": st.lists(replies(download=True), min_size=1, max_size=3),
})

HAPPY: dict[str, list[Any]] = {
    # each API's answers on its happy path (submit, then poll); a download follows where a URL is given
    "gemini": [{"name": "operations/op1"}, {"name": "operations/op1", "done": True, "response": {
        "generateVideoResponse": {"generatedSamples": [{"video": {"uri": "@DL@"}}]}}}],
    "vertex": [{"name": "projects/fuzz/locations/us-central1/publishers/google/models/m/operations/op1"},
               {"name": "op1", "done": True, "response": {"raiMediaFilteredCount": 0, "videos": [
                   {"gcsUri": "gs://bucket/clip.mp4", "mimeType": "video/mp4"}]}}],
    "apiframe": [{"jobId": "j1", "status": "QUEUED"}, {"id": "j1", "status": "COMPLETED", "progress": 100,
                                                       "result": {"video_url": "@DL@"}}],
    "azerion": [{"videos": [{"url": "@DL@"}]}],
    "uniall": [{"id": "task_1", "status": "queued"}, {"id": "task_1", "status": "completed", "progress": 100,
                                                      "video_url": "@DL@"}],
    "cometapi": [{"id": "task_1", "status": "queued"}, {"id": "task_1", "status": "completed", "progress": 100,
                                                        "video_url": "@DL@"}],
    "omni": [{"id": "int1", "status": "in_progress"}, {"id": "int1", "status": "completed", "usage": {
        "total_output_tokens": 10}, "steps": [{"type": "model_output", "content": [
            {"type": "video", "mime_type": "video/mp4", "uri": "@DL@"}, {"type": "video", "data": "@MP4B64@"}]}]}],
}


@st.composite
def conversations(draw: st.DrawFn, provider: str) -> dict[str, Any]:
    """A script that mostly follows `provider`'s happy path, with faults and mutated answers on the way."""
    ok = {"status": 200, "headers": [], "action": "answer"}
    api: list[dict[str, Any]] = []
    for answer in HAPPY[provider]:
        if draw(st.integers(0, 2)) == 0:  # faults first: the provider retries into the happy answer
            api += draw(st.lists(replies(download=False), max_size=2))
        kind = draw(st.sampled_from(["happy", "happy", "mutated", "any"]))
        if kind == "any":
            api.append(draw(replies(download=False)))
        else:
            api.append({**ok, "body": _json_bytes(answer if kind == "happy" else draw(mutate(answer)))})
    download = draw(st.lists(replies(download=True), max_size=2)) if draw(st.integers(0, 2)) == 0 else []
    download.append(draw(st.just({**ok, "body": "@MP4@"}) | replies(download=True)))
    return {"api": api, "download": download}


provider_scripts = st.sampled_from(list(HAPPY)).flatmap(lambda name: st.tuples(st.just(name), conversations(name)))
