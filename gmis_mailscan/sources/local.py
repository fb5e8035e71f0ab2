"""Mail on disk → RawMessage batches: a Maildir (Maildir++ folders), mbox files, folders of
.eml files or of Outlook .msg files (read as they are: parse() converts a .msg).

This is how the README's example runs without a mail server, and how staff can check an
export. Disk sources have no UIDs: every scan lists the files and reads only unknown ones.
"""

from __future__ import annotations

import hashlib
import mailbox
import re
from collections.abc import Collection, Iterator
from pathlib import Path

from imapclient.imap_utf7 import decode as decode_utf7

from ..config import LocalSettings
from ..records import RawMessage
from . import Batch, Folder, FolderState, Quota, SourceError, fetch_each, name_matches


class LocalSource:
    def __init__(
        self,
        settings: LocalSettings,
        junk_names: tuple[str, ...],
        skip_names: tuple[str, ...],
        batch_size: int,
    ):
        self.settings = settings
        self.junk_names = junk_names
        self.skip_names = skip_names
        self.batch_size = batch_size
        if not settings.path.exists():
            raise SourceError(f"{settings.kind} not found: {settings.path}")
        self._paths: dict[str, list[Path]] = self._discover()

    def folders(self, known: Collection[str] = ()) -> list[Folder]:
        """Every folder but the skipped ones; on disk a folder costs nothing to look at."""
        return [
            Folder(name, self._role(name))
            for name in self._paths
            if not name_matches(name, self.skip_names)
        ]

    def quota(self) -> Quota | None:
        return None  # a disk export has no mailbox limit

    def fetch(self, folder: Folder, state: FolderState) -> Iterator[Batch]:
        batch: list[RawMessage] = []
        for locator, data in self._messages(folder.name):
            if locator in state.known:
                continue
            batch.append(RawMessage(folder.name, folder.role, locator, data))
            if len(batch) >= self.batch_size:
                yield Batch(tuple(batch), None, 0)
                batch = []
        yield Batch(tuple(batch), None, 0)

    def fetch_many(
        self, work: list[tuple[Folder, FolderState]], quota: bool = False
    ) -> Iterator[tuple[Folder, Batch]]:
        return fetch_each(self, work)

    def present(self, folder: Folder, locators: set[str]) -> set[str]:
        return {loc for loc, _ in self._messages(folder.name, read=False) if loc in locators}

    def capabilities(self) -> list[str]:
        return []

    def close(self) -> None:
        pass

    def _role(self, name: str):
        if name == "INBOX":
            return "inbox"
        junk = self.junk_names + tuple(self._junk_folder_names())
        return "junk" if name_matches(name, junk) else "other"

    def _junk_folder_names(self) -> list[str]:
        return [p.name if p.is_dir() else p.stem for p in self.settings.junk_paths]

    def _discover(self) -> dict[str, list[Path]]:
        """Folder name → the files or folders that hold its messages."""
        root = self.settings.path
        kind = self.settings.kind
        found: dict[str, list[Path]] = {}
        if kind == "maildir":
            found["INBOX"] = [root]
            for sub in sorted(p for p in root.iterdir() if p.name.startswith(".") and p.is_dir()):
                if (sub / "cur").is_dir() or (sub / "new").is_dir():
                    found[_maildir_folder_name(sub.name)] = [sub]
        elif kind == "mbox":
            found["INBOX"] = [root]
        else:
            found["INBOX"] = [root]
            for sub in sorted(p for p in root.iterdir() if p.is_dir()):
                found[sub.name] = [sub]
        for extra in self.settings.junk_paths:
            if not extra.exists():
                raise SourceError(f"junk path not found: {extra}")
            found.setdefault(extra.name if extra.is_dir() else extra.stem, []).append(extra)
        return found

    def _messages(self, folder: str, read: bool = True) -> Iterator[tuple[str, bytes]]:
        for path in self._paths[folder]:
            if self.settings.kind == "maildir" and path.is_dir():
                yield from _maildir_messages(path, read)
            elif path.is_dir():
                pattern = "*.msg" if self.settings.kind == "msg_dir" else "*.eml"
                for file in sorted(path.glob(pattern)):
                    yield str(file), file.read_bytes() if read else b""
            else:
                yield from _mbox_messages(path)


def _maildir_folder_name(dirname: str) -> str:
    """Maildir++ ``.a.b`` → ``a/b``; Dovecot writes non-ASCII names in modified UTF-7
    (``.&j,dg0TDhMPww6w-``), people creating folders by hand write them in UTF-8 (``.迷惑メール``)."""
    name = dirname[1:]
    if name.isascii():
        name = decode_utf7(name.encode())
    return name.replace(".", "/")


_MAILDIR_INFO = re.compile("[:!]2,")


def _maildir_messages(path: Path, read: bool) -> Iterator[tuple[str, bytes]]:
    """Files in new/ and cur/; the locator drops the ':2,FLAGS' suffix, which changes (written
    '!2,FLAGS' where ':' is not allowed in file names, as on Windows)."""
    for sub in ("new", "cur"):
        directory = path / sub
        if not directory.is_dir():
            continue
        for file in sorted(directory.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                locator = f"{path}/{_MAILDIR_INFO.split(file.name)[0]}"
                yield locator, file.read_bytes() if read else b""


def _mbox_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """Each message of an mbox file, located by its content hash (indexes shift on delete)."""
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.keys():
            data = box.get_bytes(key)
            yield f"{path}#{hashlib.sha256(data).hexdigest()[:16]}", data
    finally:
        box.close()
