"""The results store: one database URL (SQLite file or PostgreSQL), our ``ls_*`` tables
beside Optuna's, versioned migrations, idempotent writes, typed records in and out
(:mod:`search.store.records`)."""

from search.store.jsonable import to_jsonable
from search.store.migrations import LATEST_VERSION, migrate, schema_version
from search.store.store import Store
from search.store.url import mask_url, optuna_url, resolve_url

__all__ = [
    "LATEST_VERSION",
    "Store",
    "mask_url",
    "migrate",
    "optuna_url",
    "resolve_url",
    "schema_version",
    "to_jsonable",
]
