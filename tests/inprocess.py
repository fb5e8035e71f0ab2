"""The command line run in this process (click's CliRunner) with the result a subprocess
would give: for tests that check only output and exit code. Starting Python and importing
the package again costs more than most commands take; where the process boundary matters
(signals, locks, kills, cron) tests keep using a real subprocess.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import traceback
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner

from gmis_mailscan.cli import main


def run(
    args: list[str], cwd: Path | None = None, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`gmis-mailscan ARGS` in `cwd` with `env` changes (None removes a variable)."""
    changes = dict(env or {})
    with contextlib.chdir(cwd or os.getcwd()):
        result = CliRunner(env=changes).invoke(main, args, catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # as Python prints it
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, stderr)
