"""How good is the ETA `leuksearch run` prints? Run the README's quick start and compare
each status line's ETA with when the study really ended.

    python bench/eta_accuracy.py [--profile smoke] [--out bench/eta_accuracy.json]

Every status line (``-- D/T done | ... | ETA 2m40s``) is timestamped as it arrives on
stderr; its predicted end is that time plus the ETA. The real end is the time of the
last trial's end (the line that says T/T done). The error of a line is
``(predicted end - real end) / (real end - start)``: a fraction of the study's real
duration, as the issue's "within 30 % of the real duration" means it. Reported from the
2nd finished trial on (no ETA exists before the first).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATUS = re.compile(r"^-- (\d+)/(\d+) done .*\| ETA (\S+)$")


def seconds(text: str) -> float | None:
    """``1h02m`` / ``4m05s`` / ``12s`` -> seconds; ``-`` -> None."""
    if text == "-":
        return None
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not m:
        raise ValueError(f"not a duration: {text}")
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


def run(profile: str, work: Path) -> tuple[float, list[tuple[float, int, int, float | None]], int]:
    """Run the quick start; (start time, status lines as (t, done, total, eta_s), exit code)."""
    cmd = [
        sys.executable, "-m", "search.cli", "run", str(ROOT / "spaces" / "quickstart.yaml"),
        "--data", "synthetic", "--profile", profile, "--db", f"sqlite:///{work / 'eta.db'}",
        "--storage-path", str(work / "runs"),
    ]  # fmt: skip
    env = {**os.environ, "LEUKSEARCH_CACHE": str(work / "cache")}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=work, env=env)  # fmt: skip
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        now = time.monotonic()
        if m := STATUS.match(line.strip()):
            lines.append((now, int(m[1]), int(m[2]), seconds(m[3])))
            print(f"{now - t0:7.1f}s  {line.strip()}", file=sys.stderr, flush=True)
    return t0, lines, proc.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="smoke", help="profile of spaces/quickstart.yaml")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="eta-bench-") as tmp:
        t0, lines, code = run(args.profile, Path(tmp))
    if code != 0 or not lines:
        print(f"the study failed (exit {code})", file=sys.stderr)
        return 1
    total = lines[-1][2]
    end = next(t for t, done, n, _ in lines if done == n)
    real = end - t0
    rows = []
    for t, done, _, eta in lines:
        if done >= 2 and done < total and eta is not None:
            error = (t + eta - end) / real
            rows.append({"at_s": round(t - t0, 1), "done": done, "eta_s": eta,
                         "real_left_s": round(end - t, 1), "error": round(error, 3)})  # fmt: skip
    worst = max((abs(r["error"]) for r in rows), default=None)
    result = {"profile": args.profile, "trials": total, "real_duration_s": round(real, 1),
              "lines": rows, "max_abs_error": worst,
              "within_30pct": worst is not None and worst <= 0.30}  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
