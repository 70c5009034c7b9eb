"""`python -m storyboard` runs the CLI."""

from storyboard.entry import console

console()
