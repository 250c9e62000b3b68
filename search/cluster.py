"""Reaching Ray: a local instance of our own, or a cluster joined with ``--address``.

Three ways to reach a cluster (README, cluster/README.md): ``--address HOST:6379`` (or
``auto``) from a node of the cluster; ``ray job submit --working-dir . -- leuksearch run
... --address auto`` through the Jobs API, so the driver runs on the head; Ray Client
(``ray://``) is refused, because under it Tune runs the experiment on the cluster while
the store writes and progress would be split between the two sides. :func:`check_cluster`
fails fast where Ray would wait forever: a trial larger than every node, or an embedded
SQLite store on a cluster of several nodes.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import sys
from typing import Any

from leukmodels.backbones import plugin_env
from leukmodels.errors import UserError
from search.store.url import mask_url, sqlite_path

logger = logging.getLogger(__name__)

RAY_CLIENT_PREFIX = "ray://"
DASHBOARD_PORT = 8265


def _rewrite(argv: list[str]) -> list[str]:
    """``argv`` with ``--address auto`` and any ``--db`` password masked."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        before = argv[i - 1] if i else ""
        if before == "--address":
            out.append("auto")
        elif arg.startswith("--address="):
            out.append("--address=auto")
        elif before == "--db":
            out.append(mask_url(arg))
        elif arg.startswith("--db="):
            out.append("--db=" + mask_url(arg[5:]))
        else:
            out.append(arg)
    return out


def jobs_command(address: str, argv: list[str] | None = None) -> str:
    """The ``ray job submit`` line that runs this same command (``argv``, default
    ``sys.argv[1:]``) on the head of ``address``'s cluster, with ``--address auto``."""
    out = _rewrite(list(sys.argv[1:] if argv is None else argv))
    if not any(a == "--address" or a.startswith("--address=") for a in out):
        out += ["--address", "auto"]
    host = address.removeprefix(RAY_CLIENT_PREFIX).rsplit(":", 1)[0] or "HEAD"
    return (
        f"ray job submit --address http://{host}:{DASHBOARD_PORT} --working-dir . -- "
        + shlex.join(["leuksearch", *out])
    )


def refuse_ray_client(address: str, argv: list[str] | None = None) -> None:
    """Ray Client addresses (``ray://``) are a UserError naming the Jobs API line to use
    (``argv``: the command line to submit instead, default ``sys.argv[1:]``)."""
    if not address.startswith(RAY_CLIENT_PREFIX):
        return
    raise UserError(
        f"--address {address} is Ray Client, which leuksearch does not support (Tune would run "
        "the study on the cluster while the store writes and progress stay split between the "
        "two sides); submit the study to the head through the Ray Jobs API instead:\n  "
        + jobs_command(address, argv)
        + "\n(through a tunnel to the dashboard port, e.g. `kubectl port-forward` or "
        "`ray dashboard`; see cluster/README.md)"
    )


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast (UserError) when a ``HOST:PORT`` address does not answer; Ray itself would
    retry for minutes. ``ray://`` addresses are refused (:func:`refuse_ray_client`)."""
    refuse_ray_client(address)
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--address {address!r} is not 'auto' or HOST:PORT (the head's GCS, usually 6379)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); is it up "
            "(`ray status` on the head node), and is the port open from here?"
        ) from None


def start_ray(address: str | None, dashboard: bool) -> str | None:
    """Start a local Ray (or join ``address``); returns the dashboard URL if there is one.

    Tune's own progress tables are switched off (``RAY_AIR_NEW_OUTPUT=0`` with ``verbose=0``):
    the store callback logs the progress. A local Ray's dashboard listens on 127.0.0.1 only.
    """
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        check_reachable(address)
    if ray.is_initialized():
        return None
    try:
        if address:
            # a local Ray's workers inherit our environment; a cluster's need the plugins named
            if env := plugin_env():
                kwargs["runtime_env"] = {"env_vars": env}
            ctx = ray.init(address=address, **kwargs)
        else:
            # "local": always a new instance of our own; without it Ray joins any cluster
            # it finds running on this machine (another user's, or another study's)
            ctx = ray.init(
                address="local",
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                **kwargs,
            )
    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception (startup timeouts)
        where = address or "a local Ray instance"
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(
            f"cannot start or join Ray at {where}: {detail} (on a busy machine Ray's start "
            "can time out: try again, or raise RAY_raylet_start_wait_time_s)"
        ) from None
    url = getattr(ctx, "dashboard_url", None)
    if url and not str(url).startswith("http"):
        url = f"http://{url}"
    return url


def alive_nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes as ``ray.nodes()`` describes them."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def _fits(node: dict[str, Any], cpu: float, gpu: float) -> bool:
    have = node.get("Resources") or {}
    return have.get("CPU", 0.0) >= cpu and have.get("GPU", 0.0) >= gpu


def _node_list(nodes: list[dict[str, Any]]) -> str:
    parts = []
    for n in nodes:
        have = n.get("Resources") or {}
        parts.append(f"{have.get('CPU', 0):g} CPU / {have.get('GPU', 0):g} GPU")
    return "; ".join(parts) or "none"


def check_cluster(
    cpu: float, gpu: float, db_url: str, *, autoscale: bool = False
) -> list[dict[str, Any]]:
    """After joining Ray: refuse what would hang or lose results; returns the live nodes.

    A trial asking more CPUs or GPUs than any node has is a UserError (Ray would wait for
    such a node forever) unless ``autoscale`` says the cluster adds nodes on demand. An
    embedded SQLite store is refused on a cluster of several nodes (or an autoscaling one):
    the driver may run anywhere there (a head pod, a job) and its local file is neither
    shared nor durable; such a study needs ``--db postgresql://...``.
    """
    nodes = alive_nodes()
    if not autoscale and not any(_fits(n, cpu, gpu) for n in nodes):
        raise UserError(
            f"a trial asks for {cpu:g} CPU and {gpu:g} GPU (search.resources), more than any "
            f"node of this Ray cluster has ({_node_list(nodes)}); Ray would wait for such a node "
            "forever. Lower search.resources, or pass --autoscale if the cluster's autoscaler "
            "adds such nodes."
        )
    if sqlite_path(db_url) is not None and (len(nodes) > 1 or autoscale):
        raise UserError(
            f"this Ray cluster has {len(nodes)} node(s){' and autoscales' if autoscale else ''}; "
            "the embedded SQLite store is for one machine. Give a shared database: "
            "--db postgresql://USER@HOST:5432/DBNAME (or $LEUKSEARCH_DB; the password in "
            "$PGPASSWORD)."
        )
    logger.debug("Ray cluster: %d node(s): %s", len(nodes), _node_list(nodes))
    return nodes
