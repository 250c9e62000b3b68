"""PostgreSQL restarted in the middle of a study: the driver keeps its writes in order and
writes them when the server is back; a server that stays away stops the study as
interrupted with a message naming it, and resume finishes it.

The test starts a private PostgreSQL (initdb + pg_ctl on a spare port in a temporary
folder) so it can stop and start it; it is skipped only where the binaries are missing,
and never in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from search.store.store import Store

pytestmark = pytest.mark.slow

PG_BIN = Path(os.environ.get("LEUKSEARCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
SPACE = """
study: dbr
data:
  dataset: synthetic
  n: 60
  patients: 12
  image_size: 32
  split: {kind: holdout, train: 0.6, val: 0.2, test: 0.2}
search:
  algorithm: tpe
  num_samples: 1
  metric: val_f1
  max_concurrent: 1
  resources: {cpu: 1}
ablation:
  baseline: {attention: none}
  factors: [attention]
space:
  backbone: resnet18
  attention: {choice: [none, se]}
  lr: {loguniform: [1.0e-3, 1.0e-2]}
  optimizer: adam
  epochs: 2
  batch_size: 16
"""
BUDGET = 3


class PrivatePG:
    """A PostgreSQL server of our own in ``folder``, as the postgres user when we are root."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # trust auth ignores the password: it is there to be masked in messages
        self.url = f"postgresql://postgres:s3cret@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb refuses root; the folder belongs to postgres
            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in cmd)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.folder / "log"),
                  "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_pg(tmp_path: Path) -> Iterator[PrivatePG]:
    if not (PG_BIN / "initdb").exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL binaries are required in CI; none in {PG_BIN}")
        pytest.skip(f"no PostgreSQL binaries in {PG_BIN} (set $LEUKSEARCH_PG_BIN)")
    folder = Path("/tmp") / f"leuksearch-pg-{os.getpid()}-{tmp_path.name}"
    pg = PrivatePG(folder)
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        try:
            pg.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(folder, ignore_errors=True)


def count(url: str, sql: str) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception:
        return -1
    finally:
        engine.dispose()


def cli(cwd: Path, *args: str, limit_s: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "LEUKSEARCH_CACHE": str(cwd / "cache"),
        "LEUKSEARCH_DB_RETRY_S": str(limit_s),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "search.cli", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_until(proc: subprocess.Popen, url: str, sql: str, n: int, limit: float = 300) -> None:
    deadline = time.time() + limit
    while count(url, sql) < n:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"never reached {n} for {sql}: {proc.communicate()[1][-3000:]}")
        time.sleep(0.3)


def test_database_restart_mid_study_loses_nothing(tmp_path: Path, private_pg: PrivatePG) -> None:
    url = private_pg.url
    (tmp_path / "space.yaml").write_text(SPACE)
    proc = cli(tmp_path, "run", "space.yaml", "--db", url, "--study", "D", "--json", limit_s=60)
    wait_until(proc, url, "select count(*) from ls_epochs", 1)
    private_pg.stop()
    time.sleep(10)
    private_pg.start()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert json.loads(out)["status"] == "completed"
    assert "unreachable" in err and "is back" in err
    with Store.open(url) as store:
        study = store.study("D")
        trials = store.trials(study.id)
        assert len(trials) == BUDGET
        for t in trials:
            assert t.status in ("completed", "pruned")
            epochs = [e.epoch for e in store.epochs(t.trial_id)]
            assert epochs == list(range(1, t.epochs_done + 1)) and t.epochs_done >= 1

    # a server that stays away past the limit: interrupted, named, and resumable
    (tmp_path / "space.yaml").write_text(SPACE.replace("study: dbr", "study: dbr2"))
    proc = cli(tmp_path, "run", "space.yaml", "--db", url, "--study", "G", limit_s=3)
    wait_until(proc, url, "select count(*) from ls_epochs e join ls_trials t on t.id = "
               "e.trial_id join ls_studies s on s.id = t.study_id where s.name = 'G'", 1)  # fmt: skip
    private_pg.stop()
    _, err = proc.communicate(timeout=300)
    private_pg.start()
    assert proc.returncode == 130, err[-3000:]
    assert f"the database postgresql+psycopg://postgres:***@127.0.0.1:{private_pg.port}" in err
    assert "s3cret" not in err
    assert "leuksearch resume --study G" in err and "Traceback" not in err, err[-3000:]
    r = cli(tmp_path, "resume", "--study", "G", "--db", url, "--json", limit_s=60)
    out, err = r.communicate(timeout=600)
    assert r.returncode == 0, err[-3000:]
    assert json.loads(out)["status"] == "completed"
    with Store.open(url) as store:
        assert len(store.trials(store.study("G").id)) == BUDGET
