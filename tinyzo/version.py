"""The tinyzo version (one place: setup.cfg reads it, tinyzo.__version__ re-exports it)."""

__version__ = "0.1.0"
