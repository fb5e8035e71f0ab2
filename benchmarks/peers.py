"""The scripts a hospital IT person would write instead of installing gmis-mailscan.

Both search the server for the secretariat's address and download the matches without marking
them seen, over TLS verified against the given CA, in INBOX and the junk folder.
"""

from __future__ import annotations

import ssl

SENDER = "info@g-mis.net"


def imap_tools_script(
    host: str, port: int, user: str, password: str, ca_file: str, folders: list[str]
) -> list[tuple[str, str, str]]:
    """The imap-tools peer: MailBox.login, folder.set, fetch(A(from_=…), mark_seen=False)."""
    from imap_tools import AND, MailBox

    found = []
    context = ssl.create_default_context(cafile=ca_file)
    with MailBox(host, port, ssl_context=context).login(user, password) as mailbox:
        for folder in folders:
            mailbox.folder.set(folder)
            for msg in mailbox.fetch(AND(from_=SENDER), mark_seen=False):
                found.append((folder, msg.uid, msg.subject))
    return found


def imapclient_script(
    host: str, port: int, user: str, password: str, ca_file: str, folders: list[str]
) -> list[tuple[str, int, int]]:
    """The bare imapclient peer: EXAMINE, UID SEARCH FROM, one UID FETCH BODY.PEEK[]."""
    from imapclient import IMAPClient

    found = []
    context = ssl.create_default_context(cafile=ca_file)
    with IMAPClient(host, port, ssl=True, ssl_context=context) as client:
        client.login(user, password)
        for folder in folders:
            client.select_folder(folder, readonly=True)
            uids = client.search(["FROM", SENDER])
            if uids:
                for uid, data in client.fetch(uids, ["BODY.PEEK[]"]).items():
                    found.append((folder, uid, len(data[b"BODY[]"])))
    return found
