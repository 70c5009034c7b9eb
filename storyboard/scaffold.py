"""init(): write a small storyboard that builds at once, with its pictures and a .gitignore.

The pictures are drawn with Pillow when `init` runs, so the package ships no binary assets.
The board shows the three ways shots connect: a reference image, a shot that continues the
one before it from its exact last frame, and a shot that ends on a given picture.
"""

from __future__ import annotations

import io
from pathlib import Path

from storyboard.errors import StoryboardError

BOARD = """\
# A storyboard: the shots of a film, how they connect, and how they become the film.
#
#   storyboard build storyboard.toml    renders what is not cached and stitches the film
#   storyboard plan storyboard.toml     says what would run, and why
#   storyboard report storyboard.toml   an HTML contact sheet of every shot
#
# Editor completion (Taplo / Even Better TOML): run `storyboard schema > storyboard.schema.json`
# and make `#:schema ./storyboard.schema.json` the first line of this file.

[film]
title = "The Paper Boat"
output = "build/paper-boat.mp4"     # relative to this file
provider = "animatic"               # offline drafts; "gemini" or "vertex" generate with Veo 3.1
resolution = "720p"                 # 720p | 1080p | 4k
aspect_ratio = "16:9"               # 16:9 | 9:16
duration = 4                        # seconds per shot unless a shot says otherwise: 4, 6 or 8
seed = 42                           # a shot may override it; `take = 2` asks for another take
audio = true

[vars]                              # used in prompts as {{ boat }}
boat = "a small paper boat folded from yellow newspaper"

[assets]                            # pictures, relative to this file
boat = "assets/boat.png"            # what the boat looks like
sunset = "assets/sunset.png"        # the picture the film ends on

[[shot]]
id = "launch"
prompt = "Close-up: a child's hands set {{ boat }} on a rain puddle in a cobbled street."
references = ["boat"]               # keeps the boat looking the same; references need 8 s shots
duration = 8

[[shot]]
id = "stream"
continues = "launch"                # starts on the exact last frame of "launch"
prompt = "{{ boat }} is carried down the gutter stream, spinning slowly past fallen leaves."

[[shot]]
id = "harbour"
continues = "stream"
last_frame = "sunset"               # and ends on this picture
prompt = "{{ boat }} drifts out of a drain into a calm harbour at sunset."

[edit]
transition = { kind = "cut" }       # cut | crossfade | fade (with duration = seconds)
"""

IGNORE = (".storyboard/", "build/", "*.lock.log")
_IGNORE_HEADER = "# storyboard: the cache and the built film (commit storyboard.lock)"
_SIZE = (1280, 720)


def init(folder: Path) -> Path:
    """Write the example storyboard, its pictures and a .gitignore into `folder`; returns the board.

    The folder is created if needed. An existing .gitignore gets the missing lines appended.

    Raises:
        StoryboardError: `folder` already holds a storyboard.toml or one of the pictures
            (nothing is overwritten), or cannot be written.
    """
    folder = Path(folder)
    board = folder / "storyboard.toml"
    pictures = {folder / "assets" / "boat.png": _boat(), folder / "assets" / "sunset.png": _sunset()}
    if board.exists():
        raise StoryboardError(f"{board} already exists: init never overwrites a storyboard; "
                              "give it another folder (storyboard init DIR)")
    taken = [p.name for p in pictures if p.exists()]
    if taken:
        raise StoryboardError(f"{folder / 'assets'}: {' and '.join(taken)} already exist"
                              f"{'s' if len(taken) == 1 else ''}: init never overwrites; give it "
                              "an empty folder (storyboard init DIR)")
    try:
        (folder / "assets").mkdir(parents=True, exist_ok=True)
        for path, data in pictures.items():
            path.write_bytes(data)
        _ignore(folder / ".gitignore")
        # Last, so a board on disk means the pictures it names are there too.
        with open(board, "x", encoding="utf-8") as fh:
            fh.write(BOARD)
    except OSError as exc:
        raise StoryboardError(f"cannot write the storyboard into {folder}: {exc.strerror or exc}") from exc
    return board


def _ignore(path: Path) -> None:
    """Append the lines .gitignore lacks, creating it if needed."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = [line for line in IGNORE if line not in text.splitlines()]
    if not missing:
        return
    prefix = "" if not text or text.endswith("\n") else "\n"
    path.write_text(text + prefix + "\n".join([_IGNORE_HEADER, *missing]) + "\n", encoding="utf-8")


def _png(image: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)  # type: ignore[attr-defined]
    return buf.getvalue()


def _gradient(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> object:
    from PIL import Image

    w, h = _SIZE
    column = Image.new("RGB", (1, h))
    for y in range(h):
        t = y / (h - 1)
        column.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
    return column.resize(_SIZE)


def _boat() -> bytes:
    """A yellow paper boat on a grey-blue puddle."""
    from PIL import ImageDraw

    image = _gradient((96, 112, 128), (40, 58, 78))
    draw = ImageDraw.Draw(image)
    for y in range(420, 720, 36):  # ripples
        draw.line([(0, y), (1280, y + 8)], fill=(70, 90, 110), width=3)
    draw.polygon([(380, 430), (900, 430), (800, 520), (480, 520)], fill=(236, 196, 60))
    draw.polygon([(640, 220), (780, 430), (500, 430)], fill=(250, 214, 90))
    draw.line([(640, 220), (640, 430)], fill=(190, 150, 40), width=4)
    for x in range(520, 780, 40):  # newsprint
        draw.line([(x, 450), (x + 24, 450)], fill=(150, 120, 40), width=3)
    return _png(image)


def _sunset() -> bytes:
    """A harbour at sunset: sky, sun, sea and a quay with a lamp post."""
    from PIL import ImageDraw

    image = _gradient((250, 150, 70), (120, 60, 120))
    draw = ImageDraw.Draw(image)
    draw.ellipse([560, 300, 720, 460], fill=(255, 214, 120))
    draw.rectangle([0, 420, 1280, 720], fill=(44, 52, 92))
    for y in range(440, 720, 28):
        draw.line([(520, y), (760, y)], fill=(230, 160, 90), width=2)
    draw.rectangle([0, 380, 360, 440], fill=(30, 30, 40))
    draw.rectangle([300, 250, 312, 380], fill=(30, 30, 40))
    draw.ellipse([292, 236, 320, 264], fill=(255, 230, 160))
    return _png(image)
