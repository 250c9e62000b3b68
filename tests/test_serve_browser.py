"""`leuksearch serve` in a real browser (headless Chromium): the page loads, shows the
study, its progress and its report, and updates after a new trial is written."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from factories import trial_result

from leukmodels.metrics import classification_metrics
from leukmodels.results import EpochRow
from search.space import load_space
from search.store.records import StudyRecord, TrialUpdate
from search.store.store import Store

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
STUDY = "cli-serve"


def _browser_or_skip() -> None:
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        message = f"needs {CHROMIUM} and {DRIVER} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _add_trial(store: Store, study_id: int, key: str, attention: str, done: bool) -> int:
    space = load_space(ROOT / "spaces" / "quickstart.yaml", "smoke")
    point = space.fill({**space.baseline(), "attention": attention})
    config = space.trial_config(point, seed=0).model_dump(mode="json")
    tid = store.upsert_trial(
        study_id, key, TrialUpdate(params=point, config=config, kind="ablation", seed=0)
    )
    if not done:
        store.record_epoch(tid, EpochRow(epoch=1, lr=0.01, train_loss=0.9, val_f1=0.61))
        return tid
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
    result = trial_result(classification_metrics(np.array([0, 1, 1, 0, 1]), proba, ["a", "b"]))
    for row in result.epochs:
        store.record_epoch(tid, row)
    store.record_result(tid, result)
    return tid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail("serve did not listen within 90 s")


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def test_page_shows_the_study_and_updates(sqlite_url: str) -> None:
    _browser_or_skip()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    space = load_space(ROOT / "spaces" / "quickstart.yaml", "smoke")
    with Store.open(sqlite_url) as store:
        sid = store.ensure_study(
            StudyRecord(name=STUDY, space_yaml=space.text, space_hash=space.hash, metric="val_f1",
                        mode="max", profile="smoke", config={"budget": 10})
        )  # fmt: skip
        _add_trial(store, sid, "t1", "none", done=True)
        running = _add_trial(store, sid, "t2", "scab", done=False)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "serve", "--study", STUDY, "--db", sqlite_url,
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    driver = None
    try:
        _wait_for_port(port, server)
        driver = _chromium()
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.3)
        text = lambda css: driver.find_element(By.CSS_SELECTOR, css).text  # noqa: E731
        assert text("#study") == STUDY
        wait.until(lambda d: text("#progress").startswith("1/10 done | running 1"))
        assert "ETA " in text("#progress") and "best val_f1 0.5300" in text("#progress")
        wait.until(lambda d: "ablation report" in text("#report"))
        assert "Factor: attention" in text("#report")
        assert f"trial {running}" in text("#curves")  # the running trial's learning curve
        assert driver.find_elements(By.CSS_SELECTOR, "#curves svg polyline")

        with Store.open(sqlite_url) as store:  # a new trial lands
            new = _add_trial(store, sid, "t3", "cbam", done=True)
        wait.until(lambda d: text("#progress").startswith("2/10 done"))
        row = driver.find_element(By.CSS_SELECTOR, f"#trial-{new}")
        assert "completed" in row.text and "cbam" in row.text
        wait.until(lambda d: "attention=cbam" in text("#report") or "cbam" in text("#report"))
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err[-2000:]
    assert "Traceback" not in err


def test_serve_errors_are_one_line(sqlite_url: str) -> None:
    from search.cli import main

    assert main(["serve", "--study", "nope", "--db", sqlite_url, "--port", str(_free_port())]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--study", "nope", "--db", sqlite_url, "--port", str(port)]) == 2
