"""One measurement in a fresh process: `python worker.py '<json>'` prints one JSON line.

Modules are imported before the clock starts, so `seconds` is the work itself (connect →
logout; for gmis-mailscan the whole `scan` command: config, rules, database, scan, assessment)
and not the interpreter's start-up, which run.py measures separately as `process_seconds`.
`maxrss_kib` is the process's peak resident set (VmHWM), imports included.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_peer(job: dict) -> dict:
    import imap_tools  # noqa: F401  (the scripts import them when they run)
    import imapclient  # noqa: F401
    import peers

    script = {"imap_tools": peers.imap_tools_script, "imapclient": peers.imapclient_script}
    fn = script[job["mode"]]
    args = (job["host"], job["port"], job["user"], job["password"], job["ca_file"])
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    found = fn(*args, job["folders"])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu0, "fetched": len(found)}


#: What `gmis-mailscan scan` imports inside the command (cli.py keeps --help light): imported
#: before the clock, as every other contestant's modules are.
SCAN_IMPORTS = (
    "gmis_mailscan.scan",
    "gmis_mailscan.status",
    "gmis_mailscan.notify",
    "gmis_mailscan.store.repo",
    "gmis_mailscan.sources.local",
    "rich.progress",
)


def run_ours(job: dict) -> dict:
    from gmis_mailscan import cli
    from gmis_mailscan.config import load_config
    from gmis_mailscan.sources import imap  # imported lazily by the scan
    from gmis_mailscan.store.db import connect

    __import__("sqlalchemy.dialects.sqlite")  # the driver SQLAlchemy loads at the first connect
    for module in SCAN_IMPORTS:  # the scan command imports these when it runs, not at start
        __import__(module)

    if job.get("inline"):  # is the read-ahead thread still worth it? (issue #11)
        imap._ahead = lambda batches, stop, started, depth=2: batches
    if job.get("prepare_db"):  # `gmis-mailscan db upgrade`, done once at installation
        connect(load_config(Path(job["config"])).database_url).dispose()
    args = ["-c", job["config"], "scan"]
    out = io.StringIO()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            cli.main(args, standalone_mode=False)
        except SystemExit as exc:
            code = exc.code or 0
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    text = out.getvalue()
    fetched = sum(int(n) for n in re.findall(r": (\d+) fetched, ", text))
    stored = sum(int(n) for n in re.findall(r" fetched, (\d+) new", text))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "fetched": fetched,
        "stored": stored,
        "exit": code,
        "out": text,
    }


def run_corpus(job: dict) -> dict:
    """parse + classify + verify vs bare mailparser.parse_from_bytes, alternating."""
    import gc
    import statistics

    import mailparser
    import workload

    from gmis_mailscan.config import no_config
    from gmis_mailscan.records import RawMessage
    from gmis_mailscan.rules import load_rules
    from gmis_mailscan.scan import examine, verify_policy

    spec = workload.FULL if job["spec"] == "full" else workload.QUICK
    gmis, others = workload.local_corpus(spec)
    rules = load_rules()
    policy = verify_policy(no_config(), rules)

    def raws(messages):
        return [RawMessage("INBOX", "inbox", f"uid:{i}", m, i) for i, m in enumerate(messages)]

    sets = {"all": raws(gmis + others), "gmis": raws(gmis)}

    def bare(batch):
        for raw in batch:
            mailparser.parse_from_bytes(raw.data)

    def ours(batch):
        for raw in batch:
            examine(raw, rules, policy)

    results: dict = {}
    for name, batch in sets.items():
        ours(batch[:50])  # warm-up: imports, regex compilation, codec look-ups
        bare(batch[:50])
        times = {"bare": [], "ours": []}
        for rep in range(job["reps"]):
            order = (
                (("bare", bare), ("ours", ours))
                if rep % 2 == 0
                else (("ours", ours), ("bare", bare))
            )
            for label, fn in order:
                gc.collect()
                t0 = time.perf_counter()
                fn(batch)
                times[label].append(time.perf_counter() - t0)
        results[name] = {
            "messages": len(batch),
            "bytes": sum(len(r.data) for r in batch),
            "bare": times["bare"],
            "ours": times["ours"],
            "bare_median": statistics.median(times["bare"]),
            "ours_median": statistics.median(times["ours"]),
        }
    return results


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that over exec from the parent, so a small worker would report its big parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    job = json.loads(sys.argv[1])
    mode = job["mode"]
    if mode in ("imap_tools", "imapclient"):
        __import__(mode)  # only the peer's own library, before the clock starts
        result = run_peer(job)
    elif mode == "ours":
        result = run_ours(job)
    elif mode == "corpus":
        result = run_corpus(job)
    else:
        raise SystemExit(f"unknown mode {mode}")
    result["maxrss_kib"] = peak_rss_kib()
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
