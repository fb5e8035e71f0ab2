"""The README's crontab line, run as cron runs it, and the contrib/ scheduler files.

The line is taken from the README as text and run through `sh -c` under `env -i` (only PATH
and HOME, as cron gives), from a working directory that is not the config's: the report file
must be the real report, the exit code 6 when action is needed and 0 with nothing printed
when not (so cron mails exactly when someone must act).
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from reliability import REPO_ROOT

MAIL = REPO_ROOT / "examples" / "mail"
CONFIG_IN_README = "/etc/gmis-mailscan/config.toml"
REPORT_IN_README = "/var/lib/gmis-mailscan/report.csv"


def readme_cron_line() -> str:
    block = re.search(r"```cron\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    assert block, "README has a ```cron block"
    (line,) = [x for x in block[1].splitlines() if x[:1].isdigit()]
    return line


def _command(line: str) -> str:
    """The command of an /etc/cron.d line: after the five time fields and the user."""
    return line.split(None, 6)[6]


def _cron_run(tmp: Path, mailbox: str) -> tuple[subprocess.CompletedProcess, Path]:
    etc, var, cwd, home = (tmp / d for d in ("etc", "var", "cwd", "home"))
    for d in (etc, var, cwd, home):
        d.mkdir()
    shutil.copytree(MAIL / mailbox, etc / mailbox)
    config = etc / "config.toml"  # no [database]: the default is beside the config
    config.write_text(
        f'[[accounts]]\nname = "{mailbox}"\nmaildir = "{etc / mailbox}"\n'
        'address = "鹿児島県鹿屋市札元1丁目1番1号"\n',
        encoding="utf-8",
    )
    report = var / "report.csv"
    command = _command(readme_cron_line())
    command = command.replace(CONFIG_IN_README, str(config)).replace(REPORT_IN_README, str(report))
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"  # where gmis-mailscan is installed
    result = subprocess.run(
        ["env", "-i", f"PATH={path}", f"HOME={home}", "sh", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert list(cwd.iterdir()) == []  # nothing written to cron's working directory
    return result, report


def test_readme_cron_line_exits_6_and_writes_the_real_report(tmp_path):
    result, report = _cron_run(tmp_path, "junk-password")
    assert result.returncode == 6, result.stderr
    assert result.stderr == ""
    assert "対応方法2" in result.stdout and "0994-52-2125" in result.stdout  # the cron mail
    # the CSV for the office: UTF-8 with BOM and Japanese headers (Excel opens it right)
    (row,) = list(csv.DictReader(report.open(encoding="utf-8-sig")))
    assert (row["アカウント"], row["対応コード"], row["ログインID"]) == (
        "junk-password",
        "method2",
        "kgs-takagi-03",
    )
    assert row["電話番号"] == "0994-52-2125"


def test_readme_cron_line_is_silent_when_nothing_is_to_be_done(tmp_path):
    result, report = _cron_run(tmp_path, "existing")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    (row,) = list(csv.DictReader(report.open(encoding="utf-8-sig")))
    assert (row["アカウント"], row["対応コード"]) == ("existing", "none")


def test_contrib_files_agree_with_the_readme():
    cron = (REPO_ROOT / "contrib" / "cron" / "gmis-mailscan").read_text()
    assert readme_cron_line() in cron.splitlines()
    systemd = REPO_ROOT / "contrib" / "systemd"
    timer_service = (systemd / "gmis-mailscan.service").read_text()
    assert "SuccessExitStatus=6" in timer_service and "scan --exit-code" in timer_service
    watch = (systemd / "gmis-mailscan-watch.service").read_text()
    assert "Restart=on-failure" in watch and " watch" in watch
    assert "OnCalendar=" in (systemd / "gmis-mailscan.timer").read_text()
    for unit in (timer_service, watch):
        execs = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
        assert execs and all("--config /etc/gmis-mailscan/config.toml" in x for x in execs)
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    task = ET.parse(REPO_ROOT / "contrib" / "windows" / "gmis-mailscan-task.xml")
    args = [a.text or "" for a in task.getroot().iterfind(".//t:Exec/t:Arguments", ns)]
    assert args and all(a.startswith('--config "') for a in args)
