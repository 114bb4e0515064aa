"""`newsletter check`: each finding triggered by an issue that has it; the default has none."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from conftest import SAMPLE_ISSUE, configure, ledger_counts, run_cli
from newsletter.check import GMAIL_CLIP_BYTES, Pair, check_message, dark_pairs
from newsletter.config import Theme

GOOD_HEAD = (
    '<html lang="en"><head><meta name="color-scheme" content="light dark">'
    '<meta name="supported-color-schemes" content="light dark">'
    "<style>@media (prefers-color-scheme: dark) { body { color: #fff; } }</style></head>"
)
URL = "https://example.org/a"


def page(body: str, head: str = GOOD_HEAD) -> str:
    return f"{head}<body>{body}</body></html>"


def codes(html: str, text: str = URL, **kwargs: object) -> list[str]:
    return [finding.code for finding in check_message(html, text, **kwargs)]  # type: ignore[arg-type]


def outbox_files(project: Path) -> list[Path]:
    return sorted((project.parent / "outbox").rglob("*.eml"))


# --- the default theme ---------------------------------------------------------------------


def test_the_default_theme_and_samples_pass_with_no_finding(built_project: Path) -> None:
    result = run_cli(["check", "--config", str(built_project)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"issue {SAMPLE_ISSUE}: no findings"
    as_json = run_cli(["check", SAMPLE_ISSUE, "--config", str(built_project), "--json"])
    assert json.loads(as_json.stdout) == {
        "issue": SAMPLE_ISSUE, "blocking": 0, "warnings": 0, "findings": [],
    }  # fmt: skip


def test_the_default_dark_theme_reaches_aa_everywhere() -> None:
    assert list(check_message(page(f'<a href="{URL}">Title</a>'), URL,
                              dark_pairs=dark_pairs(Theme()))) == []  # fmt: skip


# --- each finding, from a message that has it -----------------------------------------------


@pytest.mark.parametrize(
    ("body", "text", "expected"),
    [
        (f'<a href="{URL}">Title</a>', URL, []),
        ('<a href="/relative/post">Title</a>', URL, ["link-relative"]),
        ('<a href="https://exa mple.org/x">Title</a>', URL, ["link-malformed"]),
        ('<a href="">Title</a>', URL, ["link-malformed"]),
        ('<a href="mailto:nobody">Write</a>', URL, ["link-malformed"]),
        (f'<a href="{URL}">click here</a>', URL, ["link-text"]),
        (f'<a href="{URL}">Title</a>', "no links in the text", ["text-missing-link"]),
        ('<a href="%%unsubscribe_url%%">Unsubscribe</a>', "%%unsubscribe_url%%", []),
        ('<img src="https://example.org/i.png" width="600">', URL, ["image-alt"]),
        ('<img src="https://example.org/i.png" alt="A ward">', URL, ["image-size"]),
        ('<img src="https://example.org/i.png" alt="A ward" style="width:600px">', URL, []),
        ('<div style="color:#c8553d">Kicker</div>', URL, ["contrast"]),
        ('<div style="color:#777777;font-size:26px">Big grey headline</div>', URL, []),
        (
            '<div style="background-color:#1d4f76"><p style="color:#1f2933">Dark on dark</p></div>',
            URL,
            ["contrast"],
        ),
        ("<h1>One</h1><h3>Three</h3>", URL, ["heading-order"]),
        ("<h2>One</h2><h3>Two</h3><h2>Back</h2>", URL, []),
        (
            '<div style="background:#ffffff"><span style="color:#fefefe">buy now</span></div>',
            URL,
            ["contrast", "hidden-text"],
        ),
        ('<p style="font-size:1px">tiny words</p>', URL, ["hidden-text"]),
        ('<div style="display:none;font-size:1px">A preheader, hidden properly</div>', URL, []),
    ],
)
def test_each_finding_names_what_has_it(body: str, text: str, expected: list[str]) -> None:
    assert codes(page(body), text) == expected


def test_the_finding_names_the_element_and_how_to_fix_it() -> None:
    (finding,) = check_message(page('<p><a href="/x">Our report</a></p>'), URL)
    assert finding.element == '<a href="/x">Our report'
    assert "'/x' is relative" in finding.message
    assert finding.fix == "use an absolute https:// URL in the post or template"


def test_size_language_and_dark_mode() -> None:
    big = page("<p>" + "x" * GMAIL_CLIP_BYTES + "</p>")
    assert codes(big) == ["gmail-clip"]
    assert codes(page("<p>Hi</p>", head="<html><head></head>")) == ["lang", "dark-mode"]
    assert codes(page("<p>Hi</p>", head='<html lang="und"><head></head>')) == ["lang", "dark-mode"]
    dark = [Pair("#777777", "#666666", "muted on card")]
    assert codes(page("<p>Hi</p>"), dark_pairs=dark) == ["contrast"]


def test_blocking_is_what_the_config_says() -> None:
    html = page('<a href="/x">click here</a>')
    found = check_message(html, URL, blocking=["link-relative"])
    assert [(f.code, f.blocking) for f in found] == [("link-text", False), ("link-relative", True)]


# --- through the commands ------------------------------------------------------------------


def broken_template(project: Path) -> None:
    """The project's own copy of the default template, with a relative link in it."""
    template = project.parent / "templates" / "default" / "email.mjml.j2"
    text = template.read_text(encoding="utf-8")
    template.write_text(
        text.replace('<a href="{{ view_url }}">', '<a href="/web-copy">', 1), encoding="utf-8"
    )


def test_a_blocking_finding_stops_send_and_run_before_anything_is_sent(
    members_project: Path,
) -> None:
    broken_template(members_project)
    built = run_cli(["build", "--config", str(members_project), "--date", "2026-11-24"])
    assert built.exit_code == 0, built.output

    checked = run_cli(["check", "--config", str(members_project)])
    assert checked.exit_code == 12
    assert "BLOCKS link-relative: '/web-copy' is relative" in checked.stdout
    assert 'at <a href="/web-copy">View in your browser' in checked.stdout

    sent = run_cli(["send", SAMPLE_ISSUE, "--config", str(members_project), "--list", "members"])
    assert sent.exit_code == 12, sent.output
    assert f"issue {SAMPLE_ISSUE} is not sent: the check found 1 blocking finding(s)" in sent.stderr
    assert "--skip-check" in sent.stderr
    assert outbox_files(members_project) == []
    assert not any(ledger_counts(members_project).values())

    ran = run_cli(["run", "--config", str(members_project), "--now", "2026-11-24T08:05"])
    assert ran.exit_code == 12, ran.output
    assert outbox_files(members_project) == []

    forced = run_cli(["send", SAMPLE_ISSUE, "--config", str(members_project),
                      "--list", "members", "--skip-check"])  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert "check: link-relative" in forced.stdout
    assert len(outbox_files(members_project)) == 25


def test_warnings_go_to_the_report_and_the_config_chooses_what_blocks(
    members_project: Path,
) -> None:
    data = yaml.safe_load(members_project.read_text(encoding="utf-8"))
    data["template"]["theme"]["accent_color"] = "#c8553d"  # 4.35:1 on white
    members_project.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert (
        run_cli(["build", "--config", str(members_project), "--date", "2026-11-24"]).exit_code == 0
    )

    warned = run_cli(["check", "--config", str(members_project), "--json"])
    assert warned.exit_code == 0
    found = json.loads(warned.stdout)
    assert found["blocking"] == 0 and found["warnings"] >= 1
    assert {f["code"] for f in found["findings"]} == {"contrast"}
    messages = {f["message"] for f in found["findings"]}
    assert messages == {
        "#c8553d on #ffffff is 4.35:1; WCAG AA needs 4.5:1 for body text",  # kickers, links
        "#ffffff on #c8553d is 4.35:1; WCAG AA needs 4.5:1 for body text",  # the button
    }

    configure(members_project, check={"blocking": ["contrast"]})
    assert run_cli(["check", "--config", str(members_project)]).exit_code == 12
    configure(members_project, check={"blocking": ["contrast"], "ignore": ["contrast"]})
    assert run_cli(["check", "--config", str(members_project)]).exit_code == 0


def test_an_unknown_finding_in_the_config_is_named(members_project: Path) -> None:
    configure(members_project, check={"blocking": ["contrast", "colour"]})
    result = run_cli(["validate", "--config", str(members_project)])
    assert result.exit_code == 2
    assert "check.blocking: unknown finding 'colour'; known: gmail-clip" in result.stderr


# --- --links, against a real server on loopback ---------------------------------------------


class LinkServer(ThreadingHTTPServer):
    asked: list[tuple[str, str]]


class LinkHandler(BaseHTTPRequestHandler):
    server: LinkServer

    def _answer(self, method: str) -> None:
        self.server.asked.append((method, self.path))
        status = {"/gone": 404, "/no-head": 405 if method == "HEAD" else 200}.get(self.path, 200)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._answer("HEAD")

    def do_GET(self) -> None:
        self._answer("GET")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def link_server() -> Iterator[LinkServer]:
    server = LinkServer(("127.0.0.1", 0), LinkHandler)
    server.asked = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_links_are_fetched_head_then_get_and_good_answers_are_cached(
    built_project: Path, link_server: LinkServer
) -> None:
    base = f"http://127.0.0.1:{link_server.server_address[1]}"
    data = yaml.safe_load(built_project.read_text(encoding="utf-8"))
    data["newsletter"].update(site_url=base, archive_url=f"{base}/newsletter")
    blog = data["sources"][0]
    data["sources"] = [{**blog, "base_url": f"{base}/blog"}]  # every link on loopback
    built_project.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    template = built_project.parent / "templates" / "default" / "email.mjml.j2"
    paths = ("/ok", "/gone", "/no-head")
    extra = "".join(f'<a href="{base}{path}">Link {path}</a> ' for path in paths)
    text = template.read_text(encoding="utf-8").replace(
        '<mj-text>{{ _("Hello', f'<mj-text>{extra}</mj-text>\n          <mj-text>{{{{ _("Hello', 1
    )
    template.write_text(text, encoding="utf-8")
    txt = built_project.parent / "templates" / "default" / "email.txt.j2"
    txt.write_text(txt.read_text(encoding="utf-8") + "".join(
        f"\n{base}{path}" for path in paths), encoding="utf-8")  # fmt: skip
    assert run_cli(["build", "--config", str(built_project), "--date", "2026-11-25"]).exit_code == 0

    offline = run_cli(["check", "--config", str(built_project), "--json"])
    assert json.loads(offline.stdout)["findings"] == [] and link_server.asked == []

    configure(built_project, check={"blocking": ["link-broken"]})
    first = run_cli(["check", "--config", str(built_project), "--links", "--json"])
    assert first.exit_code == 12, first.output
    (broken,) = json.loads(first.stdout)["findings"]
    assert broken["code"] == "link-broken" and broken["message"].endswith(
        "/gone answered 404 Not Found"
    )
    ours = sorted(asked for asked in link_server.asked if asked[1] in paths)
    assert ours == sorted([("HEAD", "/ok"), ("HEAD", "/gone"), ("GET", "/gone"),
                           ("HEAD", "/no-head"), ("GET", "/no-head")])  # fmt: skip
    assert len(link_server.asked) > len(ours)  # the issue's other links, all on loopback

    link_server.asked.clear()
    again = run_cli(["check", "--config", str(built_project), "--links", "--json"])
    assert again.exit_code == 12
    assert sorted(link_server.asked) == [("GET", "/gone"), ("HEAD", "/gone")]  # only the failure
