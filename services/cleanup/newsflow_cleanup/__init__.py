"""Cleanup: repair the text, turn HTML into an article, strip boilerplate, identify the language."""

__version__ = "0.1.0"
