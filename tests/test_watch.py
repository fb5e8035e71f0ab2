"""`gmis-mailscan watch` against the real Dovecot: new mail is scanned and mailed within
seconds of delivery; connections cut during IDLE (tests/tcpproxy.py) are re-opened with
backoff and the mail delivered meanwhile is picked up; SIGTERM stops it cleanly (exit 0).
Conditions are polled with deadlines; nothing asserts a duration."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import mailfactory
from reliability import imap_account, rows, write_config
from smtpserver import SmtpServer
from tcpproxy import TcpProxy

WATCH = (
    "\n[watch]\nfull_scan_minutes = 60\nbackoff_initial_seconds = 0.2\nbackoff_max_seconds = 1\n"
)


def _notify(smtp: SmtpServer) -> str:
    return (
        '\n[notify]\nsmtp_host = "127.0.0.1"\nsecurity = "plain"\n'
        f'smtp_port = {smtp.port}\nfrom = "gmis@hospital.example"\nto = ["it@hospital.example"]\n'
    )


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:g} s: {what}")


class Watch:
    """`gmis-mailscan -v watch --notify` in the background, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self.handle = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gmis_mailscan", "-c", str(config), "-v", "watch", "--notify"],
            stdin=subprocess.DEVNULL,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def logged(self, text: str) -> int:
        return self.log.read_text(encoding="utf-8", errors="replace").count(text)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.handle.close()


def _paths(url: str) -> list[str]:
    return [p for (p,) in rows(url, "SELECT path FROM institutions")]


def test_delivered_mail_is_in_the_report_and_mailed_within_seconds(dovecot_server, tmp_path):
    server = dovecot_server
    user = server.new_user("watchnew", junk_name="迷惑メール")
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    with SmtpServer() as smtp:
        account = imap_account(server, user, tmp_path, server.imap_port, name="w1",
                               institution="さくら病院", address="鹿児島県鹿屋市札元1丁目1番1号")  # fmt: skip
        config = write_config(tmp_path / "config.toml", url, [account], raw=_notify(smtp) + WATCH)
        watch = Watch(config, tmp_path / "watch.log")
        try:
            _wait_for(lambda: watch.logged("(IDLE)") >= 2, 60, "IDLE on INBOX and 迷惑メール")
            assert watch.logged("waiting for new mail in 迷惑メール (IDLE)") == 1
            _wait_for(lambda: smtp.messages, 30, "the first notification")
            assert "新規ユーザ登録申請" in smtp.messages[0].get_body(("plain",)).get_content()

            server.append(user, "迷惑メール", mailfactory.build("password_registration"))
            _wait_for(lambda: _paths(url) == ["method2"], 10, "the mail in the database")
            _wait_for(lambda: len(smtp.messages) == 2, 10, "the notification of the change")
            text = smtp.messages[1].get_body(("plain",)).get_content()
            assert "対応方法2" in text and "kgs-sakura01" in text and "0994-52-2125" in text
        finally:
            code = watch.stop()
        assert code == 0, watch.log.read_text()
        assert "Traceback" not in watch.log.read_text()
    # Read-only: the delivered message is still unseen and in its folder.
    assert all(not flags for flags in server.flags_snapshot(user)["迷惑メール"].values())


def test_connections_cut_during_idle_are_reopened_and_mail_meanwhile_found(
    dovecot_server, tmp_path
):
    server = dovecot_server
    user = server.new_user("watchcut")
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    with SmtpServer() as smtp, TcpProxy(server.imap_port) as proxy:
        account = imap_account(server, user, tmp_path, proxy.port, name="w2",
                               institution="さくら病院")  # fmt: skip
        config = write_config(tmp_path / "config.toml", url, [account], raw=_notify(smtp) + WATCH)
        watch = Watch(config, tmp_path / "watch.log")
        try:
            _wait_for(lambda: watch.logged("(IDLE)") >= 1, 60, "IDLE on INBOX")
            _wait_for(lambda: smtp.messages, 30, "the first notification")
            proxy.drop(hold=True)  # the server "restarts": connections cut, new ones refused
            _wait_for(lambda: proxy.refused >= 2, 30, "reconnect attempts with backoff")
            server.append(user, "INBOX", mailfactory.build("password_registration"))
            assert _paths(url) == ["register"]  # not seen while the server is away
            proxy.release()
            _wait_for(lambda: _paths(url) == ["method4"], 30, "the mail delivered meanwhile")
            _wait_for(lambda: len(smtp.messages) == 2, 10, "its notification")
            assert watch.logged("reconnecting in") >= 2
            assert watch.logged("waiting for new mail in INBOX (IDLE)") >= 2
        finally:
            code = watch.stop()
        assert code == 0, watch.log.read_text()


def test_over_the_budget_is_polled_logins_renewed_and_sigint_stops(dovecot_server, tmp_path):
    """connections = 1: INBOX is IDLEd on, 迷惑メール polled; the IDLE login is renewed."""
    server = dovecot_server
    user = server.new_user("watchpoll", junk_name="迷惑メール")
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    settings = WATCH + "connections = 1\npoll_seconds = 1\nrelogin_minutes = 0.02\n"
    with SmtpServer() as smtp:
        account = imap_account(server, user, tmp_path, server.imap_port, name="w3")
        config = write_config(
            tmp_path / "config.toml", url, [account], raw=_notify(smtp) + settings
        )
        watch = Watch(config, tmp_path / "watch.log")
        try:
            _wait_for(lambda: watch.logged("(IDLE)") >= 1, 60, "IDLE on INBOX")
            assert watch.logged("polling every 1s (['迷惑メール'])") == 1
            server.append(user, "迷惑メール", mailfactory.build("password_registration"))
            _wait_for(lambda: _paths(url) == ["method2"], 30, "the junk mail found by polling")
            _wait_for(lambda: watch.logged("waiting for new mail in INBOX (IDLE)") >= 3, 30,
                      "the IDLE login renewed")  # fmt: skip
        finally:
            code = watch.stop(signal.SIGINT)
        assert code == 0, watch.log.read_text()
        assert watch.logged("waiting for new mail in 迷惑メール") == 0
        assert "Traceback" not in watch.log.read_text()
