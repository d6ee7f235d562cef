"""Classify: IPTC Media Topics for every article, with a transformers model, in batches, off the event loop."""

__version__ = "0.1.0"
