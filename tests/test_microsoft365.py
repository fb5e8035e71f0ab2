"""Mail as Exchange Online delivers it, scanned from a real Dovecot: its verdict decides.

Exchange writes Authentication-Results without an authserv-id and with ``compauth``; a spoof it
marked ``dmarc=fail`` must never become evidence, and its login ID never be shown as ours.
"""

from __future__ import annotations

import json

import mailfactory
from test_imap import Run, account_toml, cli, write_config

SPOOF_RESULTS = (
    "spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=g-mis.net; dkim=none (message not "
    "signed) header.d=none;dmarc=fail action=oreject header.from=g-mis.net;compauth=fail "
    "reason=000"
)
GENUINE_RESULTS = (
    "spf=pass (sender IP is 198.51.100.7) smtp.mailfrom=g-mis.net; dkim=pass (signature was "
    "verified) header.d=g-mis.net;dmarc=pass action=none header.from=g-mis.net;compauth=pass "
    "reason=100"
)


def _exchange(results: str, login_id: str, charset: str = "iso-2022-jp") -> bytes:
    return mailfactory.build(
        "password_registration",
        login_id=login_id,
        charset=charset,
        extra_headers=[("Authentication-Results", results)],
    )


def test_spoof_marked_dmarc_fail_by_exchange_is_never_evidence(dovecot_server, tmp_path):
    user = dovecot_server.new_user("m365spoof", quota_kib=10240)
    dovecot_server.append(user, "INBOX", _exchange(SPOOF_RESULTS, "kgs-phish99"))
    config = write_config(tmp_path, account_toml(dovecot_server, user, tmp_path))
    assert Run(config).scan().accounts[0].ok
    proc = cli(config, "report", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)["institutions"]
    assert (item["state"], item["path"]) == ("suspicious_only", "review")
    assert item["login_id"] is None  # the spoof's login ID is not the institution's
    (evidence,) = item["evidence"]
    assert evidence["genuine"] is False
    reasons = {r["code"]: r for r in evidence["reasons"]}
    assert {"dmarc_fail", "compauth_fail"} <= set(reasons)
    assert "なりすまし" in reasons["compauth_fail"]["ja"]


def test_genuine_exchange_mail_in_junk_still_gives_method2(dovecot_server, tmp_path):
    user = dovecot_server.new_user("m365real", quota_kib=10240, junk_name="迷惑メール")
    dovecot_server.append(user, "迷惑メール", _exchange(GENUINE_RESULTS, "kgs-real01", "shift_jis"))
    dovecot_server.append(user, "INBOX", _exchange(SPOOF_RESULTS, "kgs-phish99", "utf-8"))
    run = Run(write_config(tmp_path, account_toml(dovecot_server, user, tmp_path)))
    assert run.scan().accounts[0].ok
    (assessment,) = run.assessments()
    assert assessment.decision.path == "method2"
    assert assessment.login_id == "kgs-real01"
    assert any("compauth" in w or "DMARC" in w for w in assessment.warnings)
