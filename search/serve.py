"""``leuksearch serve``: the study's report as a web page that updates as trials land.

A FastAPI app served by uvicorn: ``/`` is one page whose script polls ``/api/state``
(progress with ETA, trials, learning curves of running trials; every 2 s) and
``/api/report`` (the ablation tables with their intervals and the paper-style table, from
search.report, rebuilt when a trial has ended). Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from leukmodels.errors import UserError
from search.live_state import LiveState
from search.serve_page import page
from search.store.store import Store

logger = logging.getLogger(__name__)


def create_app(store: Store, study: str, poll_ms: int = 2000) -> FastAPI:
    """The app for ``study`` in ``store`` (the store stays open while the app lives)."""
    state = LiveState(store, study)
    app = FastAPI(title=f"leuksearch: {study}", docs_url=None, redoc_url=None, openapi_url=None)
    html = page(study, poll_ms)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return html

    @app.get("/api/state")
    def api_state() -> dict[str, Any]:
        return state.state()

    @app.get("/api/report")
    def api_report() -> dict[str, str]:
        return state.report_html()

    return app


def serve(db: str | None, study: str, host: str, port: int) -> None:
    """Serve the page until interrupted."""
    import optuna
    import uvicorn

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the report's in-memory studies

    _check_address(host, port)
    with Store.open(db) as store:
        store.require_study(study)  # an unknown study is exit 2 before the server starts
        app = create_app(store, study)
        logger.info("study %s from %s: http://%s:%d/", study, store.masked_url, host, port)
        uvicorn.run(app, host=host, port=port, log_level="warning")


def _check_address(host: str, port: int) -> None:
    """A UserError when ``host:port`` cannot be listened on (taken, or not this machine's)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port"
        ) from None
