"""Whole-process start-up time of gmis-mailscan: `--help` and `classify` of one example mail.

    python benchmarks/startup.py [--runs 15] [--python PATH] [--source DIR]

Each command runs `--runs` times as a fresh process (`python -m gmis_mailscan ...`, from a
temporary directory), after one warm-up run that writes the bytecode caches an installed
package has (PYTHONDONTWRITEBYTECODE is dropped: compiling every module each time would measure
the compiler); prints min and median, and a bare `python -c pass` for reference.
`--source DIR` puts another checkout first on PYTHONPATH (e.g. an export of main, to compare).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAIL = next((REPO / "examples" / "mail" / "inbox-password" / "cur").glob("*M4P1*"))


def timed(command: list[str], runs: int, cwd: str, env: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--source", type=Path)
    args = parser.parse_args()
    dropped = ("GMIS_MAILSCAN_CONFIG", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    if args.source:
        env["PYTHONPATH"] = str(args.source.resolve())
    cases = {
        "python -c pass": [args.python, "-c", "pass"],
        "gmis-mailscan --help": [args.python, "-m", "gmis_mailscan", "--help"],
        "gmis-mailscan classify (1 file)": [
            args.python,
            "-m",
            "gmis_mailscan",
            "classify",
            str(MAIL),
        ],
    }
    with tempfile.TemporaryDirectory() as cwd:
        for name, command in cases.items():
            timed(command, 1, cwd, env)  # warm-up: bytecode caches, disk cache
            samples = timed(command, args.runs, cwd, env)
            print(
                f"{name:34} min {min(samples):.3f} s  median {statistics.median(samples):.3f} s"
                f"  ({args.runs} runs)"
            )
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
