"""Where messages come from: an IMAP account (imap.py) or mail on disk (local.py).

A source lists folders with their roles, reports mailbox usage, and yields new messages of a
folder in batches with the folder state to remember after each batch. The scan stores a batch
and its state in one transaction, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from ..records import FolderRole, RawMessage


@dataclass(frozen=True)
class FolderStatus:
    """What the server says of a folder without opening it (STATUS, or LIST-STATUS)."""

    uidvalidity: int
    uidnext: int
    messages: int


@dataclass(frozen=True)
class Folder:
    name: str
    role: FolderRole
    status: FolderStatus | None = None  # None: not asked, the folder must be opened


@dataclass(frozen=True)
class FolderState:
    """What the database remembers of a folder."""

    uidvalidity: int | None = None
    last_uid: int = 0
    known: frozenset[str] = field(default_factory=frozenset)  # locators already stored
    messages: int | None = None  # the folder's message count when last_uid was stored

    def unchanged(self, status: FolderStatus | None) -> bool:
        """Same UIDVALIDITY, no UID handed out since, as many messages: nothing to ask."""
        return (
            status is not None
            and self.messages is not None
            and status.uidvalidity == self.uidvalidity
            and status.uidnext - 1 == self.last_uid
            and status.messages == self.messages
        )

    def first_new_uid(self, uidvalidity: int | None) -> int:
        """The first UID to search in a folder of this UIDVALIDITY: all of it if renumbered."""
        return self.last_uid + 1 if uidvalidity == self.uidvalidity else 1

    def may_have_lost(self, uidvalidity: int | None, last_uid: int, messages: int | None) -> bool:
        """Can a message stored before be gone from the folder, seen its new state?

        Every message it held then is still there exactly when it now holds as many plus
        one per UID handed out since; fewer means something left (or came and went). A
        renumbered folder's old locations are marked removed when it is stored anyway.
        """
        if self.messages is None or messages is None:
            return True  # not counted (a local source, or state from before migration 0004)
        if uidvalidity != self.uidvalidity:
            return False
        return messages < self.messages + (last_uid - self.last_uid)


@dataclass(frozen=True)
class FolderUpdate:
    """A folder's new state, stored with (or after) the batch that reached it."""

    name: str
    role: FolderRole
    uidvalidity: int | None
    last_uid: int
    exists: int | None = None  # the folder's message count at last_uid, when known


@dataclass(frozen=True)
class Batch:
    """Some new messages of a folder and the folder state to save with them."""

    messages: tuple[RawMessage, ...]
    uidvalidity: int | None
    last_uid: int
    total: int | None = None  # messages this fetch of the folder will deliver, when known
    exists: int | None = None  # the folder's message count at last_uid: on its last batch only


@dataclass(frozen=True)
class Quota:
    """Mailbox usage by size (STORAGE, KiB) and/or by count (MESSAGE), as the server limits it.

    A mailbox full by either measure refuses new mail, so the ratio is the higher of the two.
    """

    used_kib: int | None
    limit_kib: int | None
    messages: int | None = None
    message_limit: int | None = None

    @property
    def ratio(self) -> float | None:
        ratios = [
            used / limit
            for used, limit in (
                (self.used_kib, self.limit_kib),
                (self.messages, self.message_limit),
            )
            if used is not None and limit
        ]
        return max(ratios) if ratios else None


class SourceError(RuntimeError):
    """The account cannot be read (login refused, host unreachable, path missing)."""


class Source(Protocol):
    def folders(self, known: Collection[str] = ()) -> Iterable[Folder]:
        """The folders to scan; `known` names those scanned before (see ImapSource)."""
        ...

    def quota(self) -> Quota | None: ...

    def fetch(self, folder: Folder, state: FolderState) -> Iterator[Batch]: ...

    def fetch_many(
        self, work: list[tuple[Folder, FolderState]], quota: bool = False
    ) -> Iterator[tuple[Folder, Batch]]:
        """The batches of several folders, each folder's in order (IMAP asks in flights).

        `quota`: quota() will be asked after, so the source may ask for it on the way.
        """
        ...

    def present(self, folder: Folder, locators: set[str]) -> set[str]: ...

    def capabilities(self) -> list[str]: ...

    def close(self) -> None: ...


def name_matches(name: str, names: tuple[str, ...], delimiter: str = "/") -> bool:
    """Is `name` (a full folder path) one of `names`, as a whole or by its last level?

    ``[Gmail]/迷惑メール`` matches itself; ``INBOX/Spam`` matches ``Spam``; case is ignored.
    """
    wanted = {n.casefold() for n in names}
    full = name.casefold()
    leaf = full.rsplit(delimiter, 1)[-1] if delimiter else full
    return full in wanted or leaf in wanted or full.replace(delimiter, "/") in wanted


def fetch_each(
    source: Source, work: list[tuple[Folder, FolderState]]
) -> Iterator[tuple[Folder, Batch]]:
    """fetch_many of a source where a folder costs the same alone: one after another."""
    for folder, state in work:
        for batch in source.fetch(folder, state):
            yield folder, batch
