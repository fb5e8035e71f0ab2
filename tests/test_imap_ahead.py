"""The IMAP side of a folder runs one step ahead in a thread and searches a big folder in UID
windows (sources/imap.py: fetch, _ahead). Real Dovecot, small windows to make many of them."""

from __future__ import annotations

import threading

import mailfactory
import pytest
from test_imap import Run, account_toml, write_config

from gmis_mailscan.sources import Batch, FolderState
from gmis_mailscan.sources import imap as imap_source


@pytest.fixture
def windowed(monkeypatch):
    monkeypatch.setattr(imap_source, "SEARCH_WINDOW", 4)


def _mailbox(server, name):
    """17 messages in INBOX, every third from the secretariat; 2 in Junk."""
    user = server.new_user(name)
    gmis = []
    for i in range(17):
        kind = "password_registration" if i % 3 == 0 else "unrelated"
        uid = server.append(user, "INBOX", mailfactory.build(kind, login_id=f"kgs-{i:04d}"))
        if i % 3 == 0:
            gmis.append(uid)
    server.append(user, "Junk", mailfactory.build("account_notice"))
    server.append(user, "Junk", mailfactory.build("unrelated"))
    return user, gmis


def test_windowed_first_scan_then_rescan_fetch_exactly_the_matches(
    dovecot_server, tmp_path, windowed
):
    user, gmis = _mailbox(dovecot_server, "windows")
    config = write_config(tmp_path, account_toml(dovecot_server, user, tmp_path), extra="")
    run = Run(config)
    first = run.scan().accounts[0]
    assert first.error is None
    assert dict((f, n) for f, _, n in first.folders) == {"INBOX": len(gmis), "Junk": 1}
    again = run.scan().accounts[0]
    assert (again.fetched, again.stored) == (0, 0)
    dovecot_server.append(user, "INBOX", mailfactory.build("other"))
    last = run.scan().accounts[0]
    assert (last.fetched, last.stored) == (1, 1)


def test_batches_carry_the_folder_state_and_end_at_uidnext(dovecot_server, tmp_path, windowed):
    user, gmis = _mailbox(dovecot_server, "states")
    run = Run(write_config(tmp_path, account_toml(dovecot_server, user, tmp_path)))
    source = imap_source.ImapSource(run.config.accounts[0], run.config, run.rules)
    try:
        inbox = next(f for f in source.folders() if f.name == "INBOX")
        batches: list[Batch] = list(source.fetch(inbox, FolderState()))
        uids = [m.uid for b in batches for m in b.messages]
        assert uids == gmis
        states = [b.last_uid for b in batches]
        assert states == sorted(states)
        assert states[-1] == 17  # UIDNEXT - 1: the whole folder was searched
        for batch in batches:  # a batch never claims UIDs it has not searched
            assert all(m.uid <= batch.last_uid for m in batch.messages)
    finally:
        source.close()
    assert not [t for t in threading.enumerate() if t.name == "imap-fetch"]


def test_stopping_early_ends_the_thread_and_keeps_the_connection_usable(
    dovecot_server, tmp_path, windowed
):
    user, gmis = _mailbox(dovecot_server, "early")
    run = Run(
        write_config(
            tmp_path, account_toml(dovecot_server, user, tmp_path), extra="[scan]\nbatch_size = 1"
        )
    )
    source = imap_source.ImapSource(run.config.accounts[0], run.config, run.rules)
    try:
        inbox = next(f for f in source.folders() if f.name == "INBOX")
        batches = source.fetch(inbox, FolderState())
        assert next(batches).messages[0].uid == gmis[0]
        batches.close()  # the caller stops (an error while storing, say)
        assert not [t for t in threading.enumerate() if t.name == "imap-fetch"]
        assert source.present(inbox, {f"uid:{gmis[0]}", "uid:999"}) == {f"uid:{gmis[0]}"}
    finally:
        source.close()


def test_an_error_of_the_thread_comes_after_the_batches_made_before_it():
    def batches():
        yield Batch((), 1, 5)
        yield Batch((), 1, 9)
        raise ConnectionResetError("dropped")

    stop = threading.Event()
    got = []
    with pytest.raises(ConnectionResetError, match="dropped"):
        for batch in imap_source._ahead(batches(), stop, lambda thread: None):
            got.append(batch.last_uid)
    assert got == [5, 9]


def _logouts(server, user) -> int:
    return len(server.wait_for_log(rf"imap\({user.name}\)<.*: Disconnected: Logged out", count=0))


@pytest.mark.parametrize("connections", [1, 2, 3])
def test_extra_search_connections_find_the_same_messages(
    dovecot_server, tmp_path, windowed, connections
):
    """[scan] search_connections: windows searched on other connections, fetched on the first."""
    user, gmis = _mailbox(dovecot_server, f"helpers{connections}")
    dovecot_server.wait_for_logout(user, count=19)  # the APPENDs' sessions, logged a bit late
    before = _logouts(dovecot_server, user)
    config = write_config(
        tmp_path,
        account_toml(dovecot_server, user, tmp_path),
        extra=f"[scan]\nsearch_connections = {connections}",
    )
    run = Run(config)
    first = run.scan().accounts[0]
    assert first.error is None
    assert dict((f, n) for f, _, n in first.folders) == {"INBOX": len(gmis), "Junk": 1}
    inbox = sorted(m.uid for m in run.repo.messages(user.name) if m.folder == "INBOX")
    assert inbox == gmis
    # the scan's own session and every extra one logged out (Junk is one window: no extras)
    dovecot_server.wait_for_logout(user, count=before + 1 + connections)
    assert _logouts(dovecot_server, user) == before + 1 + connections
    again = run.scan().accounts[0]
    assert (again.fetched, again.stored) == (0, 0)
    assert not [t for t in threading.enumerate() if t.name.startswith("imap-search")]


def test_a_refused_search_connection_leaves_the_search_on_the_first(
    dovecot_server, tmp_path, windowed
):
    """A server that refuses more logins (a connection limit, say) costs speed, not mail."""
    user, gmis = _mailbox(dovecot_server, "refused")
    used = tmp_path / "used"  # the password is right the first time only
    command = f"if [ -e {used} ]; then echo wrong; else touch {used}; echo {user.password}; fi"
    account = account_toml(
        dovecot_server, user, tmp_path, password_file=None, password_command=command
    )
    run = Run(write_config(tmp_path, account, extra="[scan]\nsearch_connections = 2"))
    first = run.scan().accounts[0]
    assert first.error is None
    assert used.exists()
    inbox = sorted(m.uid for m in run.repo.messages(user.name) if m.folder == "INBOX")
    assert inbox == gmis
    refused = dovecot_server.wait_for_log(
        rf"imap-login: .*auth failed.*user=<{user.name}>", count=2
    )
    assert len(refused) == 2
