"""The service's database: items editors recorded, with history and corrections, and recently scored items.

SQLite in the data directory by default (WAL, busy timeout), PostgreSQL by
``XINXI_DATABASE_URL``. Tables are made and changed by Alembic migrations
shipped in :mod:`service.store.migrations`; :meth:`Store.migrate` runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.store.records import LEVELS, ORIGINS, RejectedItem, clean_item
from service.store.repository import Store

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["LEVELS", "ORIGINS", "RejectedItem", "Store", "clean_item", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store the settings name (``XINXI_DATABASE_URL``, else SQLite in the data directory)."""
    return Store(
        settings.resolved_database_url,
        keep_predictions=settings.keep_predictions,
        busy_seconds=settings.store_busy_seconds,
    )
