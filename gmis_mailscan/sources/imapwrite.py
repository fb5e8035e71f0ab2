"""The only IMAP commands in gmis-mailscan that change a mailbox, used by `rescue` alone.

Every command names exactly one UID. A plain EXPUNGE (or CLOSE, which expunges too) would
also remove every other message the user had marked \\Deleted, so neither is ever sent: the
original of a copied message goes with UID EXPUNGE (UIDPLUS), and a folder opened for writing
is left with UNSELECT or by opening another one (RFC 3501: that expunges nothing).
"""

from __future__ import annotations

from imapclient import IMAPClient

DELETED = b"\\Deleted"
NOT_JUNK = b"$NotJunk"
JUNK_KEYWORD = b"$Junk"


def open_for_writing(client: IMAPClient, folder: str) -> dict:
    """SELECT (read-write); the scan only ever EXAMINEs."""
    return client.select_folder(folder, readonly=False)


def leave_folder(client: IMAPClient) -> None:
    """Leave the selected folder without expunging anything (never CLOSE)."""
    if client.has_capability("UNSELECT"):
        client.unselect_folder()


def keywords_allowed(select_info: dict) -> bool:
    """The folder keeps new keywords (PERMANENTFLAGS holds \\*)."""
    return b"\\*" in tuple(select_info.get(b"PERMANENTFLAGS", ()))


def mark_not_junk(client: IMAPClient, uid: int, flags: tuple[bytes, ...]) -> None:
    """Tell the server's filter this is not junk: $NotJunk on, $Junk off (flags travel along
    with MOVE and COPY, so they are set before)."""
    if JUNK_KEYWORD in flags:
        client.remove_flags([uid], [JUNK_KEYWORD], silent=True)
    if NOT_JUNK not in flags:
        client.add_flags([uid], [NOT_JUNK], silent=True)


def move(client: IMAPClient, uid: int, folder: str) -> None:
    """UID MOVE (RFC 6851): atomic, the message is in exactly one folder at every moment."""
    client.move([uid], folder)


def copy(client: IMAPClient, uid: int, folder: str) -> None:
    client.copy([uid], folder)


def expunge_exactly(client: IMAPClient, uid: int) -> None:
    """Remove the original of a copied message, and only it: \\Deleted, then UID EXPUNGE."""
    client.add_flags([uid], [DELETED], silent=True)
    client.uid_expunge([uid])
