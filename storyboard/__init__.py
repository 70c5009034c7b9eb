"""storyboard: make for AI films."""

__version__ = "0.1.0"

__all__ = ["__version__"]
