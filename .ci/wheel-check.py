"""CI: the built wheel, installed (not editable) into a fresh virtual environment, runs from a
directory outside the checkout: `init`, `db upgrade`, then `scan` and `report --format json` on
a copy of examples/, whose paths must be those of examples/expected.json.

    python3 .ci/wheel-check.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path, code: int = 0) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("GMIS_MAILSCAN_CONFIG", "PYTHONPATH")}
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != code:
        sys.exit(f"{' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gmis-wheel-") as tmp:
        root = Path(tmp)
        had_no_build = not (REPO / "build").exists()
        run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root, REPO, cwd=root)
        if had_no_build:  # setuptools builds in place; a build/ folder would confuse ruff's isort
            shutil.rmtree(REPO / "build", ignore_errors=True)
        (wheel,) = root.glob("gmis_mailscan-*.whl")
        tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
        if tops != {"gmis_mailscan", wheel.name.split("-py")[0] + ".dist-info"}:
            sys.exit(f"the wheel would put more than the package into site-packages: {tops}")
        for needed in ("_data/rules/gmis.toml", "_data/migrations/env.py", "py.typed"):
            if f"gmis_mailscan/{needed}" not in zipfile.ZipFile(wheel).namelist():
                sys.exit(f"the wheel lacks gmis_mailscan/{needed}")
        venv.create(root / "venv", with_pip=True)
        bin_dir = root / "venv" / ("Scripts" if os.name == "nt" else "bin")
        python = bin_dir / "python"
        run(python, "-m", "pip", "install", "-q", wheel, cwd=root)
        where = run(python, "-c", "import gmis_mailscan; print(gmis_mailscan.__file__)", cwd=root)
        if not Path(where.strip()).is_relative_to(root / "venv"):
            sys.exit(f"gmis_mailscan imported from {where.strip()}, not from the wheel")
        tool = bin_dir / "gmis-mailscan"
        work = root / "work"
        shutil.copytree(
            REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("*.sqlite3*")
        )
        run(tool, "init", cwd=work)
        if "[[accounts]]" not in (work / "config.toml").read_text(encoding="utf-8"):
            sys.exit("init wrote no example config")
        run(tool, "-c", "examples/config.toml", "db", "upgrade", cwd=work)
        run(tool, "-q", "-c", "examples/config.toml", "scan", cwd=work)
        doc = json.loads(run(tool, "-c", "examples/config.toml", "report", "-f", "json", cwd=work))
        got = {item["account"]: item["path"] for item in doc["institutions"]}
        expected = json.loads((REPO / "examples" / "expected.json").read_text(encoding="utf-8"))
        if got != expected:
            sys.exit(f"report paths {got} != examples/expected.json {expected}")
        print(f"wheel check passed: {wheel.name}, {len(got)} example accounts as expected")


if __name__ == "__main__":
    main()
