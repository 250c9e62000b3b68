"""Database URLs with passwords stay in this process: pickles and files get the masked URL.

The store callback and Optuna's storage are pickled by Ray Tune into the experiment state
(files under ``--storage-path``, often shared storage). They keep only the masked URL
(``postgresql+psycopg://user:***@host/db``) as a key, and look the real URL up at use
time: first in this process's registry (every :meth:`Store.open` registers its URL), then
in ``$LEUKSEARCH_DB``. A URL without a password is its own key.
"""

from __future__ import annotations

import os
import threading

from leukmodels.errors import UserError
from search.store.url import ENV_VAR, mask_url, resolve_url

_lock = threading.Lock()
_registry: dict[str, str] = {}


def register(url: str) -> str:
    """Remember a resolved URL for this process; returns its key (the masked URL)."""
    key = mask_url(url)
    with _lock:
        _registry[key] = url
    return key


def lookup(key: str) -> str:
    """The real URL behind ``key`` (a masked URL); a UserError when this process has never
    seen its password."""
    with _lock:
        found = _registry.get(key)
    if found is not None:
        return found
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        url = resolve_url(env)
        if mask_url(url) == key:
            register(url)
            return url
    if ":***@" not in key:  # no password: the URL is its own key
        return key
    raise UserError(
        f"the password of the database {key} is not known in this process; give the same "
        f"--db or ${ENV_VAR} (or the password in $PGPASSWORD with a URL without one)"
    )
