"""Optuna's RDB storage that pickles without the database password.

Ray Tune saves the searcher (and with it Optuna's storage) into the experiment state;
:class:`MaskedRDBStorage` writes the masked URL there and finds the real one again through
:mod:`search.store.credentials` when it is unpickled.
"""

from __future__ import annotations

from typing import Any

import optuna

from search.store.credentials import lookup, register


class MaskedRDBStorage(optuna.storages.RDBStorage):
    """``optuna.storages.RDBStorage`` whose pickled state holds the masked URL only."""

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = register(state["url"])
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__({**state, "url": lookup(state["url"])})
