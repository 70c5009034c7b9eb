"""Property-based fuzzing (hypothesis) of untrusted storyboards and of hosted providers' responses.

The property, for any input: the run ends in exit 0, 1 or 2 with one clear message (one
`storyboard: error: ...` block, no control characters), never a traceback, never a hang, never a
file written outside the board's folder. Boards come from tests/fuzz_strategies.py: built from the
schema with hostile values, or the example's bytes mutated. Provider responses come from a
loopback server that answers each request with a generated status, headers and body.

CI runs a bounded, derandomized number of examples (profile "fuzz"); the long run is
`pytest -m slow tests/test_fuzz.py` (profile "fuzz-long", random, STORYBOARD_FUZZ_EXAMPLES
examples per test) and shrinks what fails to the smallest input, with a @reproduce_failure blob.

Known crash classes (issue #11), fixed in other branches, that this harness finds until they
are merged: jinja code execution and huge loops in prompts; deeply nested TOML/JSON
(RecursionError); output paths outside the folder; oversized or trickling downloads; truncated
images; shot ids such as "a\\n" echoed raw into messages.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests import fuzz_strategies as fs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "lighthouse"
BOUND = 8.0
"""CPU seconds one command may take: a clean run takes well under one."""
WALL = 60.0
"""Wall seconds before a command counts as hung: generous, as a busy machine stretches wall time."""

settings.register_profile(
    "fuzz", max_examples=25, deadline=timedelta(seconds=2 * BOUND), derandomize=True, database=None,
    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # CI stops at the first failure, unshrunk: shrinking a slow failure can take minutes
    phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
settings.register_profile("fuzz-long", parent=settings.get_profile("fuzz"), derandomize=False,
                          phases=list(Phase), report_multiple_bugs=True,
                          max_examples=int(os.environ.get("STORYBOARD_FUZZ_EXAMPLES", "1500")))
FAST = settings(settings.get_profile("fuzz"))
LONG = settings(settings.get_profile("fuzz-long"))


# ---- running the CLI in-process, bounded ------------------------------------------------------


class Hung(BaseException):
    """Raised in the main thread by the watchdog alarm; a BaseException so `except Exception` cannot eat it."""


@dataclass
class Run:
    code: int | str
    out: str
    err: str
    seconds: float
    """CPU seconds (this process, every thread)."""


@contextmanager
def watchdog(cpu: float = BOUND, wall: float = WALL) -> Iterator[None]:
    """Raise Hung in the main thread after `cpu` seconds of work (runaway loops, bombs) or `wall`
    seconds in all (a wait that never ends)."""
    def alarm(signum: int, frame: object) -> None:
        raise Hung(f"still running after {cpu} CPU s" if signum == signal.SIGPROF else f"still waiting after {wall} s")

    old = {sig: signal.signal(sig, alarm) for sig in (signal.SIGPROF, signal.SIGALRM)}
    try:
        signal.setitimer(signal.ITIMER_PROF, cpu)
        signal.setitimer(signal.ITIMER_REAL, wall)
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run_cli(argv: list[str], cwd: Path, bound: float = BOUND) -> Run:
    """`storyboard ARGV` through the console entry point, in-process, stopped after `bound` CPU seconds."""
    from storyboard import cli
    from storyboard.entry import main

    old_argv, old_cwd = sys.argv, os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["storyboard", *argv]
    cli._state["verbose"] = False
    code: int | str = 0
    started = time.process_time()
    try:
        os.chdir(cwd)
        with watchdog(cpu=bound, wall=max(WALL, bound)), redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else str(exc.code))
    except Hung as exc:
        code = f"hung: {exc}"
    except BaseException as exc:  # noqa: BLE001 - anything escaping main() is the finding
        import traceback

        code = f"escaped main(): {type(exc).__name__}"
        err.write("Traceback (escaped main)\n" + traceback.format_exc())
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return Run(code, out.getvalue(), err.getvalue(), time.process_time() - started)


def assert_clean(run: Run, what: str) -> None:
    """Exit 0, 1 or 2; no traceback; a failure says one clear error block; within the time bound.

    The block is `storyboard: error: ...` on one line, or a header line and then one indented line per
    problem (a file with several mistakes reports them together, at most 20).
    """
    shown = f"{what}: exit {run.code!r} after {run.seconds:.1f} CPU s\n--- stdout\n{run.out[-3000:]}\n--- stderr\n{run.err[-3000:]}"
    assert run.code in (0, 1, 2), shown
    assert run.seconds < BOUND, shown
    assert "Traceback" not in run.out + run.err, shown
    lines = [line for line in run.err.rstrip("\n").split("\n") if line and not line.startswith("storyboard: warning: ")]
    if run.code == 0:
        assert not lines, shown
        return
    assert lines and lines[0].startswith("storyboard: error: "), "no error line: " + shown
    assert all(line.startswith("  ") for line in lines[1:]) and len(lines) <= 22, "not one error block: " + shown
    assert lines[0].removeprefix("storyboard: error: ").strip(), shown
    for line in lines:
        assert not [c for c in line if unicodedata.category(c) == "Cc"], "control characters in: " + shown
        assert len(line) < 8000, "a wall of text, not a clear message: " + shown  # room to quote a 5,000-char key


# ---- the sandbox: a board folder, a victim folder beside it, and a snapshot of everything else ----


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def quiet_environment():
    """No credentials, remote cache or cache folder from the developer's environment."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("STORYBOARD_") or name.endswith(("_API_KEY", "_ACCESS_TOKEN")):
                mp.delenv(name)
        yield


@pytest.fixture(scope="module", autouse=True)
def warm(sandboxes: Path) -> None:
    """Import everything once, unbounded: an import cut short by the watchdog would break the rest."""
    import importlib

    from storyboard.providers import BUILTIN

    for target in BUILTIN.values():
        importlib.import_module(target.partition(":")[0])
    importlib.import_module("storyboard.media")
    parent, board = make_sandbox(sandboxes)
    shutil.copyfile(EXAMPLE / "storyboard.toml", board / "storyboard.toml")
    for command in ("validate", "plan"):
        run_cli([command, str(board / "storyboard.toml")], cwd=parent / "cwd", bound=600)
    shutil.rmtree(parent, ignore_errors=True)


def make_sandbox(base: Path) -> tuple[Path, Path]:
    """(parent folder, board folder) laid out as fuzz_strategies.SANDBOX_FILES describes."""
    parent = Path(tempfile.mkdtemp(dir=base))
    victim, board, cwd = parent / "victim", parent / "board", parent / "cwd"
    for folder in (victim, board / "assets", cwd):
        folder.mkdir(parents=True)
    png = (EXAMPLE / "assets" / "keeper.png").read_bytes()
    (victim / "secret.png").write_bytes(png)
    (victim / "notes.txt").write_text("not yours\n")
    assets = board / "assets"
    for picture in (EXAMPLE / "assets").iterdir():
        shutil.copyfile(picture, assets / picture.name)
    shutil.copyfile(EXAMPLE / "assets" / "tower_top.png", assets / "top.png")
    (assets / "notimage.png").write_text("hello\n")
    (assets / "empty.png").write_bytes(b"")
    (assets / "trunc.png").write_bytes(png[:60])
    (assets / "fake.mp4").write_bytes(b"\0\0\0\x18ftypisom\0\0\0\0isomavc1" + bytes(range(256)) * 4)
    (assets / "inside.png").symlink_to("keeper.png")
    (assets / "link.png").symlink_to("../../victim/secret.png")
    (assets / "escape").symlink_to("../../victim", target_is_directory=True)
    (assets / "loop").symlink_to("loop")
    (assets / "dangling.png").symlink_to("nowhere.png")
    return parent, board


def snapshot(parent: Path, board: Path) -> dict[str, tuple[int, int]]:
    """Every path under `parent` outside `board`, with its size and mtime (symlinks not followed)."""
    found = {}
    for folder, dirs, files in os.walk(parent):
        here = Path(folder)
        if here == board:
            dirs[:] = []
            continue
        for name in dirs + files:
            if here / name == board:
                continue
            st_ = (here / name).lstat()
            found[str(here / name)] = (st_.st_size, st_.st_mtime_ns)
    return found


def check_board(text: bytes | str, base: Path, lock: str | None = None,
                commands: tuple[tuple[str, ...], ...] = (("validate",), ("plan",))) -> None:
    """Write the board into a fresh sandbox, run each command on it and check the property."""
    parent, board = make_sandbox(base)
    try:
        victim = str(parent / "victim")
        data = text.encode() if isinstance(text, str) else text
        path = board / "storyboard.toml"
        path.write_bytes(data.replace(fs.VICTIM.encode(), victim.encode()))
        if lock is not None:
            (board / "storyboard.lock").write_text(lock.replace(fs.VICTIM, victim))
        before = snapshot(parent, board)
        for command in commands:
            run = run_cli([*command, str(path)], cwd=parent / "cwd")
            what = "storyboard " + " ".join(command)
            assert_clean(run, what)
            after = snapshot(parent, board)
            assert after == before, (f"{what} wrote outside the board's folder: "
                                     f"{sorted(set(after.items()) ^ set(before.items()))}")
            if command[0] == "validate":
                if run.code != 0:
                    break  # plan loads the board the same way: it would fail the same way
                assert_valid(path)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def assert_valid(path: Path) -> None:
    """A board that validates keeps its film and local assets inside its folder, and its ids are ids."""
    import re

    from storyboard.load import load

    board = load(path)
    root = board.root
    assert all(re.fullmatch(r"[a-z0-9_-]+", shot) for shot in board.shots), f"shot ids: {list(board.shots)}"
    assert board.output.resolve().is_relative_to(root), f"the film is written outside: {board.film.output!r}"
    for asset in board.assets.values():
        if asset.path is not None:
            assert asset.path.resolve().is_relative_to(root), f"asset outside the folder: {asset.path}"


# ---- storyboard files -----------------------------------------------------------------------------


HOSTILE_BOARDS = [
    # one of each crash class found so far, so CI always tries them whatever hypothesis draws
    {"shot": [{"id": "a", "prompt": "{{ cycler.__init__.__globals__.os.popen('touch @VICTIM@/pwned').read() }}"}]},
    {"shot": [{"id": "a", "prompt": "{% for i in range(10**6) %}{% endfor %}{{ 'x' * 10**7 }}"}]},
    {"vars": {"v": fs.Raw("[" * 5000 + "]" * 5000)}, "shot": [{"id": "a", "prompt": "p"}]},
    {"film": {"output": "../escaped.mp4"}, "shot": [{"id": "a", "prompt": "p"}]},
    {"film": {"output": "@VICTIM@/x.mp4"}, "shot": [{"id": "a", "prompt": "p"}]},
    {"assets": {"t": "assets/trunc.png"}, "shot": [{"id": "a", "prompt": "p", "references": ["t"]}]},
    {"shot": [{"id": "a\n", "prompt": "p"}]},
    {"shot": [{"id": "a", "prompt": "p", "first_frame": "assets/loop"}]},
    {"shot": [{"id": "a", "prompt": "p", "first_frame": "x" * 300 + ".png"}]},
    {"shot": [{"id": "a", "prompt": "p", "first_frame": "assets/keeper.png\x00.txt"}]},
    {"None": True, "film": {"Foo": 1}, "shot": [{"id": "a", "prompt": "p"}]},
]


@FAST
@given(doc=fs.boards(), lock=st.none() | fs.lock_files)
def test_generated_boards_fail_cleanly(sandboxes: Path, doc: dict, lock: str | None) -> None:
    check_board(fs.to_toml(doc), sandboxes, lock)


@pytest.mark.parametrize("doc", HOSTILE_BOARDS, ids=[f"hostile-{i}" for i in range(len(HOSTILE_BOARDS))])
def test_hostile_boards_fail_cleanly(sandboxes: Path, doc: dict) -> None:
    check_board(fs.to_toml(doc), sandboxes)


@pytest.mark.parametrize("link", ["extends", "continues"])
def test_a_chain_past_the_recursion_limit_plans(sandboxes: Path, link: str) -> None:
    """1,100 shots, each needing the one before (the JSON plan: rich's table of 1,100 rows alone takes seconds)."""
    check_board(fs.to_toml(fs.chain(1100, link)), sandboxes, commands=(("validate",), ("plan", "--json")))


@settings(FAST, max_examples=15)
@given(data=fs.mutated((EXAMPLE / "storyboard.toml").read_bytes()))
def test_mutated_example_fails_cleanly(sandboxes: Path, data: bytes) -> None:
    check_board(data, sandboxes)


@pytest.mark.slow
@LONG
@given(doc=fs.boards(), lock=st.none() | fs.lock_files)
def test_generated_boards_fail_cleanly_long(sandboxes: Path, doc: dict, lock: str | None) -> None:
    check_board(fs.to_toml(doc), sandboxes, lock)


@pytest.mark.slow
@LONG
@given(data=fs.mutated((EXAMPLE / "storyboard.toml").read_bytes()))
def test_mutated_example_fails_cleanly_long(sandboxes: Path, data: bytes) -> None:
    check_board(data, sandboxes)


# ---- provider responses ---------------------------------------------------------------------------

KEY = "fuzz-secret-key-0123456789"
HOSTED = ["gemini", "vertex", "omni", "apiframe", "azerion", "uniall", "cometapi"]


class ScriptedServer:
    """Loopback HTTP that answers from a script: API calls and downloads each from their own list.

    The last reply of a list repeats. A second listener on 127.0.0.2 stands for another host: a
    request reaching it with the key is a leak.
    """

    def __init__(self, clip: bytes) -> None:
        from http.server import ThreadingHTTPServer

        self.clip, self.script, self.counts, self.leaks = clip, {"api": [], "download": []}, {}, []
        self.servers = [ThreadingHTTPServer((host, 0), self._handler()) for host in ("127.0.0.1", "127.0.0.2")]
        for server in self.servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, n: int = 0) -> str:
        host, port = self.servers[n].server_address[:2]
        return f"http://{host}:{port}"

    def load(self, script: dict) -> None:
        self.script, self.counts, self.leaks = script, {"api": 0, "download": 0}, []

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def body(self, raw: bytes | str, n: int) -> bytes:
        import base64

        if isinstance(raw, str):
            return {"@MP4@": self.clip, "@HALF-MP4@": self.clip[: len(self.clip) // 2], "@MP4@@MP4@": self.clip * 2,
                    "@FTYP@": b"\0\0\0\x18ftypisom\0\0\0\0isomavc1" + bytes(range(256)), "": b""}[raw]
        return (raw.replace(b"@DL@", f"{self.url()}/dl/{n}".encode())
                .replace(b"@OTHER@", f"{self.url(1)}/dl/x".encode())
                .replace(b"@MP4B64@", base64.b64encode(self.clip))
                .replace(b"@DEEP@", b"[" * 100_000 + b"]" * 100_000))

    def _handler(self):  # noqa: ANN202 - a BaseHTTPRequestHandler subclass bound to this server
        from http.server import BaseHTTPRequestHandler

        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: object) -> None:
                pass

            def answer(self) -> None:
                length = self.headers.get("Content-Length", "0")
                self.rfile.read(int(length) if length.isdigit() else 0)
                if self.server is fake.servers[1] and any(KEY in v for v in self.headers.values()):
                    fake.leaks.append(self.path)
                path = self.path.split("?")[0]
                kind = "download" if path.startswith(("/dl/", "/storage/")) or path.endswith(
                    (":download", "/content")) else "api"
                n = fake.counts[kind]
                fake.counts[kind] += 1
                replies = fake.script[kind]
                reply = replies[min(n, len(replies) - 1)]
                if reply["action"] == "reset":
                    self.close_connection = True
                    return
                body = fake.body(reply["body"], n)
                self.send_response(reply["status"])
                for name, value in reply["headers"]:
                    self.send_header(name, value.replace("@DL@", f"{fake.url()}/dl/{n}")
                                     .replace("@OTHER@", f"{fake.url(1)}/dl/x"))
                if "content-length" not in {name.lower() for name, _ in reply["headers"]}:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if reply["action"] == "trickle":
                    step = max(1, len(body) // 20)
                    for at in range(0, len(body), step):
                        self.wfile.write(body[at:at + step])
                        self.wfile.flush()
                        time.sleep(0.05)
                else:
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = answer

        return Handler


@pytest.fixture(scope="module")
def scripted():
    from tests.fakes.google_server import clip

    server = ScriptedServer(clip(4, (256, 144)).read_bytes())
    yield server
    server.close()


@pytest.fixture(scope="module")
def client():
    """One client for every example, as a provider builds it (loading the CA bundle each time costs 0.3 s)."""
    with httpx.Client(timeout=httpx.Timeout(2.0), follow_redirects=False, headers={"User-Agent": "storyboard"}) as c:
        yield c


def check_provider(server: ScriptedServer, client: httpx.Client, name: str, script: dict, base: Path) -> None:
    """Render one job against the scripted answers: a clip at dest, or one clean StoryboardError."""
    import random

    from storyboard.cache import FileJournal
    from storyboard.errors import StoryboardError
    from storyboard.job import RenderContext, RenderJob
    from storyboard.providers import BUILTIN, provider_class
    from storyboard.sniff import sniff

    server.load(script)
    cls = provider_class(name, BUILTIN)
    env = {var: KEY for var in cls.key_env} | {"GOOGLE_CLOUD_PROJECT": "fuzz",
                                               "STORYBOARD_VERTEX_STORAGE_BASE_URL": server.url()}
    provider = cls(cls.Settings(base_url=server.url(), poll_interval=60, timeout=2), env=env,
                   rng=random.Random(0), client=client)
    work = Path(tempfile.mkdtemp(dir=base))
    now = [0.0]
    ctx = RenderContext(shot_id="s", inputs={}, journal=FileJournal(work / "journal" / "j.json"),
                        sleep=lambda s: now.__setitem__(0, now[0] + max(0.0, s)), clock=lambda: now[0])
    job = RenderJob(provider=name, model=cls.default_model, prompt="A lighthouse at dusk", duration=4)
    dest = work / "clip.mp4"

    started = time.process_time()
    try:
        with watchdog():
            provider.render(job, dest, ctx)
        outcome = None
    except StoryboardError as exc:
        outcome = exc
    seconds = time.process_time() - started
    shown = f"{name}: {outcome!r} after {seconds:.1f} CPU s; requests {server.counts}"
    assert seconds < BOUND, shown
    assert not server.leaks, f"the key went to another host: {server.leaks}; " + shown
    left = sorted(p.name for p in work.iterdir() if p.name != "journal")
    if outcome is None:
        assert left == ["clip.mp4"] and sniff(dest) == "mp4", f"success without an MP4: {left}; " + shown
        return
    assert left == [], f"a failed render left files: {left}; " + shown
    message = outcome.message
    assert KEY not in message, "the key is in the message: " + shown
    assert message.strip() and len(message) < 2000 and "\n" not in message, "not one clear line: " + shown
    assert not [c for c in message if unicodedata.category(c) == "Cc"], "control characters in: " + shown


def _answers(*bodies: bytes) -> dict:
    """A script of 200s with these API bodies and a good download."""
    ok = {"status": 200, "headers": [], "action": "answer"}
    return {"api": [{**ok, "body": body} for body in bodies], "download": [{**ok, "body": "@MP4@"}]}


@settings(FAST, max_examples=50)
@given(case=fs.provider_scripts | st.tuples(st.sampled_from(HOSTED), fs.scripts))
@example(case=("gemini", _answers(b'{"name": "operations/op1"}', b'{"done": true, "response": {'
                                  b'"generateVideoResponse": {"generatedSamples": {"video": {"video": 0}}}}}')))
@example(case=("azerion", _answers(b'{"videos": [{"url": "@MP4B64@"}]}')))
@example(case=("uniall", {"api": [{"status": 301, "headers": [("Location", "data:video/mp4;base64,AAAA")],
                                   "action": "answer", "body": b""}],
                          "download": [{"status": 200, "headers": [], "action": "answer", "body": "@MP4@"}]}))
@example(case=("gemini", {"api": [{"status": 409, "headers": [], "action": "answer", "body": b"\x1b[31mred\n\x00"}],
                          "download": [{"status": 200, "headers": [], "action": "answer", "body": "@MP4@"}]}))
@example(case=("apiframe", _answers(b'{"jobId": "j1"}', b'{"status": "' + b"AB" * 200_000 + b'"}')))
def test_provider_responses_end_cleanly(scripted: ScriptedServer, client: httpx.Client, sandboxes: Path,
                                        case: tuple[str, dict]) -> None:
    check_provider(scripted, client, *case, sandboxes)


@pytest.mark.slow
@LONG
@given(case=fs.provider_scripts | st.tuples(st.sampled_from(HOSTED), fs.scripts))
def test_provider_responses_end_cleanly_long(scripted: ScriptedServer, client: httpx.Client, sandboxes: Path,
                                             case: tuple[str, dict]) -> None:
    check_provider(scripted, client, *case, sandboxes)


def check_build(server: ScriptedServer, script: dict, base: Path) -> None:
    """`storyboard build` of a one-shot Gemini board against the scripted answers: exit 0 or 1, said cleanly."""
    from storyboard.providers._base import HttpProvider
    from storyboard.providers._http import RetryPolicy

    server.load(script)
    parent, board = make_sandbox(base)
    path = board / "storyboard.toml"
    path.write_text(fs.to_toml({"film": {"provider": "gemini"}, "shot": [{"id": "a", "prompt": "p", "duration": 4}],
                                "providers": {"gemini": {"poll_interval": 0, "timeout": 2,
                                                         "allow_retired": True}}}))  # Veo on Gemini: shut down
    before = snapshot(parent, board)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMINI_API_KEY", KEY)
        mp.setenv("STORYBOARD_GEMINI_BASE_URL", server.url())
        mp.setattr(HttpProvider, "policy", RetryPolicy(tries=3, base=0.01, cap=0.05, max_retry_after=0.5))
        # an answer that never says done is polled until the deadline (30 min): at poll_interval 0, 3 s
        mp.setattr(HttpProvider, "max_wait", 3.0)
        run = run_cli(["build", "--yes", str(path)], cwd=parent / "cwd", bound=30)
    shown = f"build: exit {run.code!r} after {run.seconds:.1f} CPU s\n{run.out[-2000:]}\n{run.err[-2000:]}"
    try:
        assert run.code in (0, 1) and "Traceback" not in run.out + run.err, shown
        assert snapshot(parent, board) == before, "wrote outside the board's folder: " + shown
        assert KEY not in run.out + run.err and not server.leaks, "the key leaked: " + shown
        for file in board.rglob("*"):
            assert not file.is_file() or KEY.encode() not in file.read_bytes(), f"the key is in {file}"
        failed = [line for line in run.err.rstrip("\n").split("\n") if line.startswith("failed: ")]
        if run.code == 1:
            assert len(failed) == 1, shown
            assert not [c for c in failed[0] if unicodedata.category(c) == "Cc"], "control characters: " + shown
        else:
            assert not failed and (board / "build" / "film.mp4").is_file(), shown
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
@settings(LONG, max_examples=int(os.environ.get("STORYBOARD_FUZZ_BUILDS", "60")))
@given(script=fs.conversations("gemini"))
def test_builds_against_provider_responses_end_cleanly_long(scripted: ScriptedServer, sandboxes: Path,
                                                            script: dict) -> None:
    check_build(scripted, script, sandboxes)
