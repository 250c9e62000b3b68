"""Version 2: ``ls_trials.gpu_ids``, the GPU ids Ray gave the trial (JSON list; [] on none).

Frozen once released; later changes go in new version modules.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

VERSION = 2
DESCRIPTION = "add ls_trials.gpu_ids (the GPU ids Ray assigned to the trial)"


def upgrade(conn: Connection) -> None:
    """Add the nullable column (JSONB on PostgreSQL, JSON on SQLite)."""
    kind = "JSONB" if conn.dialect.name == "postgresql" else "JSON"
    conn.execute(text(f"ALTER TABLE ls_trials ADD COLUMN gpu_ids {kind}"))
