"""Storage: persist enriched articles idempotently, serve the query API, announce what was stored."""

__version__ = "0.1.0"
