"""Runs where Windows and macOS would: no POSIX-only module on any command's path, example
file names a Windows checkout can create, Maildir flags after ':' or '!'."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mailfactory

from gmis_mailscan.config import LocalSettings
from gmis_mailscan.sources import FolderState
from gmis_mailscan.sources.local import LocalSource

REPO = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((REPO / "examples" / "expected.json").read_text(encoding="utf-8"))
WINDOWS_FORBIDDEN = set('<>:"\\|?*')

# Run the CLI as Windows would see the standard library: fcntl, pwd and grp do not exist,
# os.fork is missing. Anything importing them on a command's path fails the test.
NO_POSIX = """
import os, runpy, sys
BLOCKED = ("fcntl", "pwd", "grp", "termios", "resource")
class NoPosix:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (as on Windows)", name=name)
for name in BLOCKED:
    sys.modules.pop(name, None)
sys.meta_path.insert(0, NoPosix())
del os.fork
sys.argv[0] = "gmis-mailscan"
runpy.run_module("gmis_mailscan", run_name="__main__", alter_sys=True)
"""


def no_posix_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GMIS_MAILSCAN_CONFIG"}
    return subprocess.run(
        [sys.executable, "-c", NO_POSIX, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_runs_the_examples_without_posix_modules(tmp_path):
    folder = tmp_path / "examples"
    shutil.copytree(REPO / "examples", folder, ignore=shutil.ignore_patterns("*.sqlite3*"))
    for args in (("--help",), ("-c", "config.toml", "scan"), ("-c", "config.toml", "doctor")):
        proc = no_posix_cli(*args, cwd=folder)
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    proc = no_posix_cli("-c", "config.toml", "report", "--format", "json", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {i["account"]: i["path"] for i in doc["institutions"]} == EXPECTED
    assert (folder / "example.sqlite3").exists()


def test_the_blocker_really_blocks(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", NO_POSIX.replace("runpy.run_module", "import fcntl; print")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "No module named 'fcntl' (as on Windows)" in proc.stderr


def test_no_tracked_file_name_is_invalid_on_windows():
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    bad = [n for n in names.split("\0") if n and WINDOWS_FORBIDDEN & set(n.replace("/", ""))]
    assert bad == []


def test_maildir_reads_flags_after_colon_and_after_bang(tmp_path):
    """Dovecot and POSIX mailers write ':2,S'; a Windows-safe copy has '!2,S'. Same locator."""
    data = mailfactory.build("unrelated", subject="x", message_id="<p1@example>")
    for sep, box in ((":", tmp_path / "posix"), ("!", tmp_path / "windows")):
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True)
        (box / "cur" / f"1699232400.M1P1.host{sep}2,S").write_bytes(data)
        source = LocalSource(LocalSettings("maildir", box), (), (), 50)
        [folder] = source.folders()
        [batch] = list(source.fetch(folder, FolderState()))
        [message] = batch.messages
        assert message.locator == f"{box}/1699232400.M1P1.host"
        assert message.data == data
