"""The HTML report of examples/ in real headless Chromium: no network, no console error,
printed on A4 with everything an office manager acts on, nothing cut off at the right."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from chromium import CHROMIUM, Browser, load
from test_examples import cli, copy_examples

PATHS = {  # the flowchart boxes each example account's path passes (rules/diagram.toml)
    "existing": {"q1", "q2", "q3", "existing"},
    "inbox-password": {"q1", "q2", "q3", "q4", "method4"},
    "junk-password": {"q1", "q2", "q5", "q6", "method2"},
    "notice-only": {"q1", "q2", "q5", "q6", "contact"},
    "no-mail": {"q1", "q2", "q5", "q6", "register"},
    "spoof-only": {"q1", "q2", "review"},
    "genuine-and-spoof": {"q1", "q2", "q3", "q4", "method4"},
    "mbox-export": {"q1", "q2", "q5", "q6", "method2"},
}


@pytest.fixture(scope="module")
def example_report(tmp_path_factory):
    """examples/ scanned, and its report as HTML and JSON (Tokyo time, as the office reads it)."""
    folder = copy_examples(tmp_path_factory.mktemp("browser") / "examples")
    (folder / "config.toml").write_text(
        (folder / "config.toml").read_text(encoding="utf-8")
        + '\n[report]\ntimezone = "Asia/Tokyo"\n',
        encoding="utf-8",
    )
    cli("-c", "config.toml", "scan", cwd=folder)
    cli("-c", "config.toml", "report", "--format", "html", "-o", "report.html", cwd=folder)
    doc = json.loads(cli("-c", "config.toml", "report", "--format", "json", cwd=folder).stdout)
    return folder, folder / "report.html", doc


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert Path(CHROMIUM).exists(), "needs Debian's chromium (.ci/run installs it)"
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_each_account_s_flowchart_highlights_exactly_its_path(example_report):
    _, html, doc = example_report
    soup = BeautifulSoup(html.read_text(encoding="utf-8"), "html.parser")
    by_name = {i["institution"]: i["account"] for i in doc["institutions"]}
    cards = soup.select("section.card")
    assert len(cards) == len(PATHS)
    for card in cards:
        name = card.find("h2").get_text().split(". ", 1)[1]
        account = by_name[name]
        on = {g["data-node"] for g in card.select("svg g.box.on")}
        assert on == PATHS[account], account
        every = {g["data-node"] for g in card.select("svg g.box")}
        assert len(every) == 15 and on < every
        steps = {
            int(g.select_one("g.step text").get_text()): g["data-node"]
            for g in card.select("g.box.on")
        }
        assert sorted(steps) == list(range(1, len(on) + 1))
        arrows = {(g["data-from"], g["data-to"]) for g in card.select("svg g.arrow.on")}
        order = [steps[n] for n in sorted(steps)]
        assert arrows == set(zip(order, order[1:], strict=False)), account
        svg = card.find("svg")
        assert svg["role"] == "img" and svg.find("title") and svg.find("desc").get_text().strip()


def test_the_report_in_chromium_on_paper(example_report, browser, tmp_path):
    folder, html, doc = example_report
    page = load(browser, html.as_uri())
    assert page.requests() == []
    assert page.console_errors() == []
    (tmp_path / "report.png").write_bytes(page.screenshot())
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(page.pdf())
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    sizes = re.findall(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info.stdout)
    assert sizes and all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in sizes)
    assert "(A4)" in info.stdout
    paper = squeeze(
        subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
    )
    warnings = 0
    for item in doc["institutions"]:
        for value in (
            item["institution"],
            item["label"],
            item["login_id"],
            item["contact"]["phone"],
        ):
            if value:
                assert squeeze(value) in paper, (item["account"], value)
        for alert in item["alerts"]:
            if alert["code"] == "suspicious_mail":
                warnings += 1
                assert squeeze(alert["ja"]) in paper, alert["ja"]
    assert warnings == 2  # spoof-only and genuine-and-spoof
    pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))
    assert pages >= 1 + len(doc["institutions"])  # the summary, then a page per institution


def test_nothing_is_cut_off_at_the_right_when_printed(example_report, browser):
    _, html, _ = example_report
    page = load(browser, html.as_uri(), width=700)  # A4 less the margins: 186 mm ≈ 703 px
    browser.call("Emulation.setEmulatedMedia", {"media": "print"}, page.session)
    overflow = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
        " > document.documentElement.clientWidth + 0.5).map(e => e.tagName + ' ' + e.className)"
    )
    assert overflow == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 700


def test_the_network_check_would_see_a_request(browser, tmp_path):
    """The detector itself: a page that loads an image is caught (and so is its error)."""
    bad = tmp_path / "bad.html"
    bad.write_text('<img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script>')
    page = load(browser, bad.as_uri())
    assert page.requests() == ["http://127.0.0.1:9/x.png"]
    assert any("boom" in e for e in page.console_errors())
