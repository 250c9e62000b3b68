"""A real multi-node Ray cluster on this machine: ``leuksearch run --address`` on it.

One ``ray.cluster_utils.Cluster`` for the module (as Ray's own tests do): a head with no
GPU and two worker nodes with their own CPUs and two declared GPUs each (CUDA is absent,
so trials fall back to the CPU; Ray still hands out GPU ids). The studies are tiny (32 px
synthetic smears, one to three epochs) and go to PostgreSQL through a role with a
password, which must never appear in any output, table, report or file of Ray's state.
The test that removes a worker node runs last: the cluster is smaller afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from search.store.store import Store
from search.store.url import optuna_url

pytestmark = pytest.mark.slow

SECRET = "S3cretPw"
SPACE = """
study: cl
data:
  dataset: synthetic
  n: 120
  patients: 12
  image_size: 32
  split: {kind: holdout, train: 0.6, val: 0.2, test: 0.2}
search:
  algorithm: random
  num_samples: 9
  metric: val_f1
  resources: {cpu: 1, gpu: 0.5}
  max_concurrent: 10
  max_failures: 2
space:
  backbone: resnet18
  attention: {choice: [none, se]}
  lr: {loguniform: [1.0e-3, 1.0e-2]}
  optimizer: adam
  epochs: 1
  batch_size: 16
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leuksearch(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600):
    base = {k: v for k, v in os.environ.items() if k != "LEUKSEARCH_DB"}
    env = {**base, "LEUKSEARCH_CACHE": str(cwd / "cache"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=8, num_gpus=2)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def secret_db(pg_admin_url: str) -> Iterator[str]:
    """A database owned by a role with a password; its URL carries the password."""
    name = f"cluster_{secrets.token_hex(5)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(SECRET)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(*[sql.Identifier(name)] * 2))
    url = make_url(pg_admin_url).set(
        drivername="postgresql", username=name, password=SECRET, host="127.0.0.1", database=name
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def worker_ids(cluster: object) -> set[str]:
    return {node.node_id for node in cluster.worker_nodes}  # type: ignore[attr-defined]


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals that are open at one instant (an end before a start at a tie)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def spans_by_node(trials: list) -> dict[str, list[tuple[float, float]]]:
    from datetime import datetime

    out: dict[str, list[tuple[float, float]]] = {}
    for t in trials:
        start = datetime.fromisoformat(t.started_at).timestamp()
        end = datetime.fromisoformat(t.ended_at).timestamp()
        out.setdefault(t.node.split(",")[0], []).append((start, end))
    return out


def grep_tree(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def table_dump(url: str) -> str:
    """Every row of every table (ours and Optuna's) as text."""
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        assert {"ls_studies", "ls_trials", "ls_epochs", "ls_results", "trials"} <= set(names)
        rows = []
        for name in names:
            query = sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(name))
            rows += [r[0] for r in conn.execute(query).fetchall()]
    return "\n".join(rows)


def test_cluster_study_spreads_over_nodes_with_gpu_fractions_and_leaks_no_secret(
    ray_cluster: object, secret_db: str, tmp_path: Path
) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    runs = tmp_path / "shared-runs"
    r = leuksearch(
        "run", "space.yaml", "--address", ray_cluster.address, "--db", secret_db,  # type: ignore[attr-defined]
        "--study", "spread", "--storage-path", runs.as_uri(), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["status"] == "completed" and summary["counts"]["completed"] == 9
    assert summary["storage_path"] == runs.as_uri() + "/spread"  # the URI, not ./file:/...
    assert (runs / "spread").is_dir()
    with Store.open(secret_db) as store:
        trials = store.trials(store.study("spread").id)
    assert len(trials) == 9 and all(t.status == "completed" for t in trials)
    workers = worker_ids(ray_cluster)
    for t in trials:
        node_id, _, where = t.node.partition(", ")
        assert node_id in workers, t.node  # never the GPU-less head
        assert where.endswith(")") and "(" in where  # host (IP)
        assert len(t.gpu_ids) == 1 and t.gpu_ids[0] in (0, 1), t.gpu_ids
    per_node = spans_by_node(trials)
    assert len(per_node) == 2, per_node.keys()  # trials on both worker nodes
    peaks = {node: peak_overlap(spans) for node, spans in per_node.items()}
    assert max(peaks.values()) <= 4, peaks  # 2 GPUs / 0.5 per trial
    assert peak_overlap([s for spans in per_node.values() for s in spans]) > 4, peaks

    # the report, and the password nowhere: outputs, tables, report files, Ray's state
    env = {"LEUKSEARCH_DB": secret_db}
    rep = leuksearch("report", "--study", "spread", "--out", "rep", cwd=tmp_path, env=env)
    assert rep.returncode == 0, rep.stderr[-3000:]
    best = leuksearch("best", "--study", "spread", "--json", cwd=tmp_path, env=env)
    assert best.returncode == 0 and json.loads(best.stdout)
    outputs = r.stdout + r.stderr + rep.stdout + rep.stderr + best.stdout + best.stderr
    assert SECRET not in outputs and ":***@" in r.stderr
    assert SECRET not in table_dump(secret_db)
    assert list((tmp_path / "rep").rglob("*.html"))
    assert grep_tree(tmp_path / "rep", SECRET.encode()) == []
    assert len(list(runs.rglob("*"))) > 20  # the experiment state is there ...
    assert grep_tree(runs, SECRET.encode()) == []  # ... without the password


def test_cluster_refuses_what_would_hang_or_lose_results(
    ray_cluster: object, secret_db: str, tmp_path: Path
) -> None:
    address = ray_cluster.address  # type: ignore[attr-defined]
    (tmp_path / "big.yaml").write_text(SPACE.replace("gpu: 0.5", "gpu: 3"))
    r = leuksearch("run", "big.yaml", "--address", address, "--db", secret_db, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "more than any node" in r.stderr and "--autoscale" in r.stderr
    assert "Traceback" not in r.stderr
    (tmp_path / "space.yaml").write_text(SPACE)
    r = leuksearch("run", "space.yaml", "--address", address, cwd=tmp_path)  # SQLite default
    assert r.returncode == 2, r.stderr[-3000:]
    assert "--db postgresql://" in r.stderr and "3 node(s)" in r.stderr
    with Store.open(secret_db) as store:
        assert store.study("cl") is None  # refused before a study was made
    with Store.open(f"sqlite:///{tmp_path / 'leuksearch.db'}") as store:
        assert store.studies() == []


def test_cluster_jobs_api_runs_a_study_on_a_ray_start_head(secret_db: str, tmp_path: Path) -> None:
    """`ray start --head` on spare ports, then `ray job submit -- leuksearch run ...`."""
    ports = {  # spare ports: other Rays on this machine hold the defaults
        name: free_port()
        for name in ("port", "dashboard-port", "dashboard-agent-listen-port",
                     "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port",
                     "ray-client-server-port", "node-manager-port", "object-manager-port")
    }  # fmt: skip
    dash = ports["dashboard-port"]
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))  # as on a cluster
    # the head's environment holds the database URL (on KubeRay: a Secret), not the job
    env.update(LEUKSEARCH_CACHE=str(tmp_path / "cache"), LEUKSEARCH_DB=secret_db)
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    temp = tempfile.mkdtemp(prefix="lsray", dir="/tmp")  # Ray's socket paths: <= 107 bytes
    head = subprocess.Popen(
        [*ray_cli, "start", "--head", "--block", *(f"--{k}={v}" for k, v in ports.items()),
         "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, cwd=tmp_path, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    work = tmp_path / "job"
    work.mkdir()
    (work / "space.yaml").write_text(
        SPACE.replace("gpu: 0.5", "gpu: 0").replace("num_samples: 9", "num_samples: 1")
    )
    try:
        submit = [
            *ray_cli, "job", "submit", "--address", f"http://127.0.0.1:{dash}",
            "--working-dir", str(work), "--",
            "leuksearch", "run", "space.yaml", "--address", "auto", "--study", "job",
            "--storage-path", str(tmp_path / "runs"),
        ]  # fmt: skip
        job_env = {k: v for k, v in env.items() if k != "LEUKSEARCH_DB"}
        deadline = time.time() + 120
        while True:  # the Jobs API answers once the dashboard is up
            r = subprocess.run(submit, env=job_env, capture_output=True, text=True, timeout=600)
            if r.returncode == 0 or time.time() > deadline or head.poll() is not None:
                break
            time.sleep(3)
        if head.poll() is not None:
            pytest.fail(f"ray start --head exited: {head.communicate()[1][-3000:]}")
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        assert "study job completed" in r.stdout + r.stderr
    finally:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)  # our own session: the head and its children
            head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)
    with Store.open(secret_db) as store:
        study = store.study("job")
        assert study.status == "completed" and study.counts["completed"] == 1


def test_cluster_worker_node_lost_mid_trial(ray_cluster: object, secret_db: str, tmp_path: Path):
    """Runs last: removes a worker node while its trials train."""
    space = SPACE.replace("num_samples: 9", "num_samples: 6").replace("epochs: 1", "epochs: 4")
    (tmp_path / "space.yaml").write_text(space)
    env = {**os.environ, "LEUKSEARCH_CACHE": str(tmp_path / "cache")}
    env.pop("LEUKSEARCH_DB", None)
    address = ray_cluster.address  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", "space.yaml", "--address", address,
         "--db", secret_db, "--study", "lost", "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    victim = sorted(ray_cluster.worker_nodes, key=lambda n: n.node_id)[-1]  # type: ignore[attr-defined]
    deadline = time.time() + 300
    with Store.open(secret_db) as store:
        while time.time() < deadline and proc.poll() is None:
            study = store.study("lost")
            trials = store.trials(study.id) if study else []
            if any(
                t.status == "running" and (t.node or "").startswith(victim.node_id) for t in trials
            ):
                break
            time.sleep(0.3)
        else:
            proc.kill()
            pytest.fail(f"no trial ran on the victim node: {proc.communicate()[1][-3000:]}")
        lost = {
            t.tune_trial_id
            for t in trials
            if t.status == "running" and (t.node or "").startswith(victim.node_id)
        }
        ray_cluster.remove_node(victim)  # type: ignore[attr-defined]
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert json.loads(out)["status"] == "completed"
        assert "failed and will be retried" in err
        study = store.study("lost")
        trials = store.trials(study.id)
    assert len(trials) == 6 and all(t.status == "completed" for t in trials), [
        (t.status, t.node) for t in trials
    ]
    # retried on a surviving node: the other worker or the head (it has a CPU too)
    survivor = worker_ids(ray_cluster) | {ray_cluster.head_node.node_id}  # type: ignore[attr-defined]
    moved = [t for t in trials if t.tune_trial_id in lost]
    assert victim.node_id not in survivor
    assert moved and all(t.node.split(",")[0] in survivor for t in moved), [t.node for t in moved]
    with Store.open(secret_db) as store:
        for t in trials:
            epochs = [e.epoch for e in store.epochs(t.trial_id)]
            assert epochs == [1, 2, 3, 4] and t.epochs_done == 4  # no duplicate epoch row
    ostudy = optuna.load_study(study_name="lost", storage=optuna_url(secret_db))
    complete = [o for o in ostudy.trials if o.state == optuna.trial.TrialState.COMPLETE]
    assert len(ostudy.trials) == len(complete) == 6
    assert sorted(o.number for o in complete) == sorted(t.optuna_number for t in trials)
