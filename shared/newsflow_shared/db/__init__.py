"""The database every stateful service shares: SQLite by default, PostgreSQL when ``DATABASE_URL`` says so.

Tables are defined once in :mod:`.tables` and created by Alembic migrations
(:func:`upgrade`), which every service runs on start under a lock.
"""

from .engine import make_engine, ping_database
from .migrate import require_database, upgrade

__all__ = ["make_engine", "ping_database", "require_database", "upgrade"]
