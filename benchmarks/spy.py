"""Where the time goes: run a worker under py-spy (all threads, idle time included) and sum up.

    python benchmarks/spy.py RAW_FILE        # summarize a py-spy --format raw file

Bench.profiles() in run.py records the scans with `py-spy record --idle --format raw`; the
summary keeps the samples of the scan command (the main thread while it is not just waiting
for the account threads, and the account threads), and lists functions by inclusive and by
self time.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
KEEP = ("_scan_account", "scan_command", "run_corpus")
DROP = ("result_iterator", "_worker (concurrent")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "gmis_mailscan/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "gmis_mailscan/":
                path = "gmis_mailscan/" + path
            break
    return f"{m['func']} ({path})"


def summarize(raw: Path, top: int = 45) -> str:
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if not any(k in f for f in frames for k in KEEP):
            continue
        if any(d in f for f in frames for d in DROP) and not any(
            "_scan_account" in f for f in frames
        ):
            continue
        stacks.append(([_name(f) for f in frames], int(count)))
    total = sum(c for _, c in stacks) or 1
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    lines = [f"{raw.name}: {total} samples of the scan (all threads, waiting included)", ""]
    lines.append("inclusive  function")
    for name, count in inclusive.most_common(top):
        lines.append(f"{100 * count / total:8.1f}%  {name}")
    lines += ["", "self       function"]
    for name, count in own.most_common(25):
        lines.append(f"{100 * count / total:8.1f}%  {name}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
