"""Build hook: put the top-level rules/, migrations/ and config.example.toml into the wheel as
package data (gmis_mailscan/_data/), where gmis_mailscan.resources finds them. The repository
layout stays as it is; everything else is declared in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("rules", "migrations", "config.example.toml")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them in place
            return
        target = Path(self.build_lib) / "gmis_mailscan" / "_data"
        shutil.rmtree(target, ignore_errors=True)  # no stale file from an earlier build
        for name in DATA:
            source = Path(name)
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=SKIP, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithData})
