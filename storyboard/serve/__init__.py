"""`storyboard serve`: the review room, a local page to watch the film and pick each shot's candidate."""

from storyboard.serve.room import Room
from storyboard.serve.server import make_server, serve

__all__ = ["Room", "make_server", "serve"]
