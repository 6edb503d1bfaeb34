"""Every benchmark, one after another (``make bench``), then their targets together.

Each benchmark runs in its own process, exactly as it runs alone, and prints its own
figures (with ratios against baselines measured in the same run). This script repeats
the lines that judge a target at the end, and fails if a benchmark failed to run or a
correctness check failed; a missed target is reported, not an error.

    python bench/run_all.py [--full-baseline]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the "bench" package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT, run_main  # noqa: E402

BENCHMARKS = (
    "publish_overhead.py",
    "sweep.py",
    "end_to_end.py",
    "backfill.py",
    "gemini_backfill.py",
    "capacity.py",
    "memory.py",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full-baseline",
        action="store_true",
        help="backfill: measure the blocking baseline on all 200 articles (about 8 minutes)",
    )
    args = parser.parse_args()
    targets: list[str] = []
    failed: list[str] = []
    started = time.monotonic()
    for script in BENCHMARKS:
        extra = ["--full-baseline"] if script == "backfill.py" and args.full_baseline else []
        print(f"\n=== bench/{script} (load average {os.getloadavg()[0]:.2f})", flush=True)
        status = run(script, extra, targets)
        if status:
            failed.append(f"{script} (exit status {status})")
    print(f"\n=== Targets ({time.monotonic() - started:.0f} s in all)")
    for line in targets:
        print(line)
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        raise SystemExit(1)


def run(script: str, extra: list[str], targets: list[str]) -> int:
    """Run one benchmark, echoing its output and keeping its TARGET lines."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / script), *extra],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("TARGET"):
                targets.append(line.rstrip())
        return process.wait()
    finally:
        if process.poll() is None:  # we are being stopped: let it clean up its children
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    run_main(main)
