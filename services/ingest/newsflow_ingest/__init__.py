"""Ingest: validate raw articles, give each a stable id, and skip exact re-sends."""

__version__ = "0.1.0"
