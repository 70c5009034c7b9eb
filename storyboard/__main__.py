"""`python -m storyboard` runs the CLI."""

from storyboard.cli import main

main()
