"""Build the benchmark mailboxes once (Maildir files written directly), then let Dovecot index.

Users:
  big       the 100,000-message mailbox (INBOX + Junk)
  rssN      its first N messages (the same files, hard-linked): the memory curve
  acctNN    20 slices of 5,000 messages of it (hard-linked): the multi-account case

Hard links keep the disk footprint at one copy of the mail. A manifest (workload.json) records
what was built; a later run reuses the mailboxes when the manifest matches the spec.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict
from itertools import groupby
from pathlib import Path

from server import PersistentDovecot
from workload import GmisMaker, MailMaker, Spec, folder_messages

FOLDERS = ("INBOX", "Junk")
_SEQ = re.compile(r"Q(\d{9})\.")


def manifest_path(base: Path) -> Path:
    return base / "workload.json"


def load_manifest(base: Path, spec: Spec) -> dict | None:
    try:
        manifest = json.loads(manifest_path(base).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if manifest.get("spec") != json.loads(json.dumps(asdict(spec))) or not manifest.get("complete"):
        return None
    return manifest


def build(srv: PersistentDovecot, spec: Spec, log=print) -> dict:
    """Write every mailbox of `spec` into the (fresh, running) server; return the manifest."""
    t0 = time.monotonic()
    big = srv.add_user("big", "bench-" + os.urandom(6).hex(), junk_name="Junk")
    mails, gmis = MailMaker(spec.seed), GmisMaker(spec.seed)
    counts = {"INBOX": (spec.inbox, spec.gmis_inbox), "Junk": (spec.junk, spec.gmis_junk)}
    folders: dict[str, dict] = {}
    total_bytes = 0
    for i, folder in enumerate(FOLDERS):
        count, n_gmis = counts[folder]
        flags: list[bool] = []
        gmis_sizes: list[int] = []
        planned = folder_messages(count, n_gmis, folder == "Junk", mails, gmis, spec.seed + 7 * i)
        for _day, group in groupby(planned, key=lambda p: p.when.date()):
            items = list(group)
            srv.write_maildir_files(
                big, folder, (p.data for p in items), flags="S", internal_date=items[0].when
            )
            for p in items:
                flags.append(p.gmis)
                total_bytes += len(p.data)
                if p.gmis:
                    gmis_sizes.append(len(p.data))
        folders[folder] = {
            "messages": count,
            "gmis_positions": [k for k, g in enumerate(flags) if g],
            "gmis_bytes": sum(gmis_sizes),
        }
        log(f"  big/{folder}: {count} messages written ({time.monotonic() - t0:.0f} s)")
    files = {f: _files_in_order(srv, big, f) for f in FOLDERS}
    users = {"big": _user_entry(folders, {f: (0, folders[f]["messages"]) for f in FOLDERS})}
    for size in spec.rss_sizes:
        n_inbox = round(size * spec.inbox / spec.total)
        ranges = {"INBOX": (0, n_inbox), "Junk": (0, size - n_inbox)}
        name = f"rss{size}"
        users[name] = _linked_user(srv, name, files, ranges, folders)
    for k in range(spec.accounts):
        ranges = {
            "INBOX": (k * spec.account_inbox, (k + 1) * spec.account_inbox),
            "Junk": (k * spec.account_junk, (k + 1) * spec.account_junk),
        }
        name = f"acct{k + 1:02d}"
        users[name] = _linked_user(srv, name, files, ranges, folders)
    log(f"  {len(users) - 1} more users hard-linked ({time.monotonic() - t0:.0f} s)")
    for name in users:  # let Dovecot index: sync each Maildir, assign UIDs, write the index
        for folder in FOLDERS:
            out = srv.doveadm(
                "mailbox", "status", "messages uidnext uidvalidity", folder, user=name, fmt="tab"
            )
            row = dict(zip(*[line.split("\t") for line in out.strip().splitlines()], strict=True))
            users[name][folder]["uidnext"] = int(row["uidnext"])
            assert int(row["messages"]) == users[name][folder]["messages"], (name, folder, row)
        users[name]["password"] = srv.users[name].password
    log(f"  indexed by Dovecot ({time.monotonic() - t0:.0f} s)")
    manifest = {
        "spec": asdict(spec),
        "complete": True,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "build_seconds": round(time.monotonic() - t0, 1),
        "total_bytes": total_bytes,
        "gmis_bytes": sum(folders[f]["gmis_bytes"] for f in FOLDERS),
        "users": users,
    }
    manifest_path(srv.fixed_base).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def _files_in_order(srv: PersistentDovecot, user: str, folder: str) -> list[Path]:
    """The folder's files in the order they were written (= UID order)."""
    cur = Path(srv.folder_path(user, folder)) / "cur"
    names = sorted(os.listdir(cur), key=lambda n: int(_SEQ.search(n).group(1)))
    return [cur / n for n in names]


def _user_entry(folders: dict, ranges: dict[str, tuple[int, int]]) -> dict:
    entry: dict = {}
    for folder, (lo, hi) in ranges.items():
        positions = [p for p in folders[folder]["gmis_positions"] if lo <= p < hi]
        entry[folder] = {"messages": hi - lo, "gmis": len(positions)}
    entry["gmis"] = sum(entry[f]["gmis"] for f in ranges)
    entry["messages"] = sum(entry[f]["messages"] for f in ranges)
    return entry


def _linked_user(
    srv: PersistentDovecot,
    name: str,
    files: dict[str, list[Path]],
    ranges: dict[str, tuple[int, int]],
    folders: dict,
) -> dict:
    srv.add_user(name, "bench-" + os.urandom(6).hex(), junk_name="Junk")
    for folder, (lo, hi) in ranges.items():
        cur = Path(srv.folder_path(name, folder)) / "cur"
        for d in (cur, cur.parent / "new", cur.parent / "tmp"):
            d.mkdir(mode=0o700, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(d, srv._mail_uid, srv._mail_gid)
        for src in files[folder][lo:hi]:
            os.link(src, cur / src.name)
    return _user_entry(folders, ranges)
