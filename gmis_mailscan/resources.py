"""Where the files the program needs at run time live: rules/, migrations/, config.example.toml.

The repository keeps them at top level; a built wheel carries them as package data in
``gmis_mailscan/_data/`` (setup.py copies them there), found through importlib.resources. From
a checkout (editable install, or the source folder on the path) they are read in place.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def data_path(name: str) -> Path:
    """The installed copy of top-level `name` (``rules``, ``migrations``, ...), else the checkout's."""
    packaged = Path(str(files(__package__) / "_data" / name))
    return packaged if packaged.exists() else CHECKOUT / name
