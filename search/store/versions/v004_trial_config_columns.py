"""Version 4: ``ls_trials.data_hash`` and ``ls_trials.config_params``, read without the config.

The report's collect read every trial's ``config`` to pick out its ``data`` and
``params`` blocks: at 100,000 trials the server spent seconds decompressing the big
config JSON of each row (bench/store_scale.py). The store now keeps, beside the config
and from the same write, ``config_params`` (a copy of the config's ``params``) and
``data_hash`` (a hash of the config's ``data``, which a study's trials share: a reader
fetches each distinct block once). This step adds both columns and fills them for the
trials already stored.

Frozen: later changes go in new version modules.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, literal_column, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

VERSION = 4
DESCRIPTION = "ls_trials.data_hash and ls_trials.config_params (the config's data and params)"
_CHUNK = 5000


def _data_hash(data: Any) -> str | None:
    """The hash of a config's ``data`` block (this version's rule; None when absent)."""
    if data is None:
        return None
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _trials() -> Table:
    json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    return Table("ls_trials", MetaData(), Column("id", Integer), Column("config", json),
                 Column("data_hash", String(64)), Column("config_params", json))  # fmt: skip


def upgrade(conn: Connection) -> None:
    """Add the columns, then fill both in one pass over the rows (hashes per chunk of ids)."""
    postgres = conn.dialect.name == "postgresql"
    conn.execute(text("ALTER TABLE ls_trials ADD COLUMN data_hash VARCHAR(64)"))
    kind = "JSONB" if postgres else "JSON"
    conn.execute(text(f"ALTER TABLE ls_trials ADD COLUMN config_params {kind}"))
    if postgres:  # the config's params when they are an object, else NULL
        params = "CASE WHEN jsonb_typeof(config -> 'params') = 'object' THEN config -> 'params' END"
    else:
        params = ("CASE WHEN json_type(config, '$.params') = 'object' "
                  "THEN json_extract(config, '$.params') END")  # fmt: skip
    t = _trials()
    ids_by_hash: dict[str | None, list[int]] = defaultdict(list)
    stmt = select(t.c.id, t.c.config["data"]).where(t.c.config.is_not(None))
    for trial_id, data in conn.execute(stmt):
        ids_by_hash[_data_hash(data)].append(trial_id)
    for digest, ids in ids_by_hash.items():
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            values = {"data_hash": digest, "config_params": literal_column(params)}
            conn.execute(t.update().where(t.c.id.in_(chunk)).values(values))
