import email
import email.policy
import re
from email.message import EmailMessage

import pytest

from newsletter import merge
from newsletter.errors import HeaderInjectionError, InvalidAddress, InvalidRecipient
from newsletter.message import (
    MergeValueError,
    PreparedIssue,
    build_mime,
    check_header,
    check_sender,
    check_subject,
    personalise,
)
from newsletter.send_models import Recipient
from newsletter.tokens import verify_token
from servers.samples import LIST_ID, SECRET, recipient, sample_issue

DOMAIN = "leading-together.example.org"


def _reparsed(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_headers_are_present_and_exact() -> None:
    ann = recipient(7, "ann@example.com", "Ann Smith")
    message = _reparsed(build_mime(sample_issue(), ann, message_id_domain=DOMAIN))

    assert message["From"] == "Leading Together <news@leading-together.example.org>"
    assert message["To"] == "Ann Smith <ann@example.com>"
    assert message["Reply-To"] == "editor@leading-together.example.org"
    assert message["Subject"] == "Issue #1 for Ann: leading together"
    assert message["List-Id"] == "Leading Together <members.leading-together.example.org>"
    assert message["List-Unsubscribe"] == (
        f"<{ann.unsubscribe_url}>, "
        "<mailto:unsubscribe@leading-together.example.org?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Newsletter-Issue"] == "001-2026-11-24"
    assert message["Message-ID"].endswith(f"@{DOMAIN}>")
    assert message["Date"].datetime is not None
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", str(message["Date"]))


def test_long_unsubscribe_url_stays_a_plain_url_on_the_wire() -> None:
    ann = recipient(7, "ann@example.com", "Ann Smith")
    raw = build_mime(sample_issue(), ann, message_id_domain=DOMAIN).as_bytes()
    assert f"List-Unsubscribe: <{ann.unsubscribe_url}>,\r\n".encode() in raw
    assert b"=?utf-8?" not in raw.split(b"\r\n\r\n")[0].split(b"List-Unsubscribe:")[1][:300]


def test_unsubscribe_token_in_the_header_verifies() -> None:
    ann = recipient(7, "ann@example.com", "Ann Smith")
    message = build_mime(sample_issue(), ann, message_id_domain=DOMAIN)
    url = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
    token = url.rsplit("/", 1)[1]
    payload = verify_token(SECRET, token, {7: "ann@example.com"}.get)
    assert (payload.subscriber_id, payload.email, payload.list_id) == (
        7,
        "ann@example.com",
        LIST_ID,
    )


def test_multipart_alternative_text_first_then_html_utf8() -> None:
    message = _reparsed(
        build_mime(sample_issue(), recipient(1, "b@example.com", "Bo"), message_id_domain=DOMAIN)
    )
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert parts[0].get_content().replace("\r\n", "\n").startswith("Dear Bo,\n\nThis week")
    assert "<p>Dear Bo,</p>" in parts[1].get_content()


def test_merge_values_are_escaped_in_html_and_raw_in_text() -> None:
    nasty = recipient(3, "x@example.com", '<b>Tom</b> & "Jerry"')
    subject, html, text = personalise(sample_issue(), nasty)
    assert "Dear &lt;b&gt;Tom&lt;/b&gt;," in html
    assert "Dear <b>Tom</b>," in text
    assert subject == "Issue #1 for <b>Tom</b>: leading together"


def test_fallbacks_used_when_a_value_is_missing() -> None:
    subject, html, text = personalise(sample_issue(), recipient(4, "n@example.com", ""))
    assert subject == "Issue #1 for friends: leading together"
    assert "Dear reader," in html and "Dear reader," in text


def test_personalise_matches_merge_substitute() -> None:
    issue = sample_issue()
    ann = recipient(9, "ann@example.com", "Ann & Co", colour="blue")
    values = {
        "first_name": "Ann",
        "email": ann.email,
        "name": ann.name,
        "unsubscribe_url": ann.unsubscribe_url,
        "colour": "blue",
    }
    prepared = PreparedIssue(issue)
    assert prepared.personalise(values) == (
        merge.substitute(issue.subject, values, escape_html=False),
        merge.substitute(issue.html, values, escape_html=True),
        merge.substitute(issue.text, values, escape_html=False),
    )


def test_non_ascii_names_and_subjects_round_trip() -> None:
    issue = sample_issue(subject="Ünïcode news for %%first_name%% — " + "long " * 20)
    zoe = recipient(5, "zoe@example.com", "Zoë Ångström")
    raw = build_mime(issue, zoe, message_id_domain=DOMAIN).as_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    assert message["Subject"] == "Ünïcode news for Zoë — " + "long " * 20
    assert raw.isascii()
    encoded = [line for line in raw.split(b"\r\n") if b"=?utf-8?b?" in line]
    assert len(encoded) >= 3
    assert all(len(line) <= 78 for line in encoded)


@pytest.mark.parametrize("value", ["Hello\r\nBcc: victim@example.com", "Hi\nthere", "x\ry"])
def test_check_header_refuses_line_breaks(value: str) -> None:
    with pytest.raises(HeaderInjectionError, match="header Subject"):
        check_header("Subject", value)


def test_line_break_in_subject_is_refused() -> None:
    issue = sample_issue(subject="Hello\r\nBcc: everyone@example.com")
    with pytest.raises(HeaderInjectionError, match="Subject"):
        build_mime(issue, recipient(1, "a@example.com"), message_id_domain=DOMAIN)


def test_line_break_in_recipient_name_names_the_subscriber() -> None:
    bad = recipient(42, "eve@example.com", "Eve\r\nBcc: all@example.com")
    with pytest.raises(HeaderInjectionError, match=r"subscriber 42 .*name"):
        build_mime(sample_issue(), bad, message_id_domain=DOMAIN)


def test_line_break_in_a_subject_merge_value_names_subscriber_and_field() -> None:
    issue = sample_issue(subject="News for %%town|you%%")
    bad = recipient(43, "eve@example.com", "Eve", town="Hull\nBcc: x@example.com")
    with pytest.raises(HeaderInjectionError, match=r"subscriber 43 .*'town'.*Subject"):
        personalise(issue, bad)


def test_value_that_is_not_text_names_subscriber_and_field() -> None:
    issue = sample_issue(subject="News for %%town|you%%")
    bad = Recipient(44, "num@example.com", "Num", merge_values={"town": 12})  # type: ignore[dict-item]
    with pytest.raises(MergeValueError, match=r"subscriber 44 .*'town' is a int"):
        personalise(issue, bad)


def test_an_attribute_never_replaces_a_built_in_field() -> None:
    honest = recipient(45, "ann@example.com", "Ann Smith")
    sneaky = Recipient(
        45,
        "ann@example.com",
        "Ann Smith",
        {
            "unsubscribe_url": "https://evil.example/",
            "first_name": "Mallory",
            "email": "other@example.com",
        },
        honest.unsubscribe_url,
    )
    subject, html, text = personalise(sample_issue(), sneaky)
    assert "evil.example" not in html + text
    assert sneaky.unsubscribe_url in text
    assert subject == "Issue #1 for Ann: leading together" and "Dear Ann," in text


def test_line_break_in_from_name_is_refused() -> None:
    with pytest.raises(HeaderInjectionError, match="From"):
        build_mime(
            sample_issue(from_name="News\r\nX-Evil: 1"),
            recipient(1, "a@example.com"),
            message_id_domain=DOMAIN,
        )


def test_a_sender_the_writer_accepts_is_written_as_checked() -> None:
    name, address = check_sender("Okafor, Ben", "news@Bücher.de")
    assert (name, address) == ("Okafor, Ben", "news@xn--bcher-kva.de")
    issue = sample_issue(from_name=name, from_address=address)
    message = _reparsed(build_mime(issue, recipient(1, "a@example.com"), message_id_domain=DOMAIN))
    assert message["From"].addresses[0].display_name == "Okafor, Ben"
    assert message["From"].addresses[0].addr_spec == "news@xn--bcher-kva.de"


def test_a_sender_the_writer_cannot_carry_is_refused_with_the_recipient_reasons() -> None:
    with pytest.raises(InvalidRecipient, match=r"^the sender name 'News\\r\\nX: 1' contains a"):
        check_sender("News\r\nX: 1", "news@example.org")
    with pytest.raises(InvalidAddress, match="the part before @ has non-ASCII characters"):
        check_sender("News", "nöws@example.org")


@pytest.mark.parametrize(
    ("subject", "what"),
    [("Hello\r\nBcc: x@example.com", "a line break (CR or LF)"), ("Tab\there", "a tab"),
     ("Dash \x96 here", "a control character (U+0096)")],
)  # fmt: skip
def test_check_subject_refuses_what_a_header_cannot_carry(subject: str, what: str) -> None:
    assert check_subject('Ünïcode, quotes "and" commas') == 'Ünïcode, quotes "and" commas'
    with pytest.raises(HeaderInjectionError) as caught:
        check_subject(subject)
    assert caught.value.message == (
        f"the subject {subject!r} contains {what}; a subject must be one line of printable text"
    )


def test_no_one_click_header_without_an_https_url() -> None:
    plain = Recipient(1, "a@example.com", "A", unsubscribe_url="")
    message = build_mime(sample_issue(), plain, message_id_domain=DOMAIN)
    assert message["List-Unsubscribe"] == (
        "<mailto:unsubscribe@leading-together.example.org?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] is None


def test_an_attribute_never_fills_the_issues_own_view_url() -> None:
    issue = sample_issue(subject="Read it at %%view_url|our site%%")
    sneaky = recipient(46, "ann@example.com", "Ann Smith", view_url="https://evil.example/")
    subject, html, text = personalise(issue, sneaky)
    assert subject == "Read it at our site"
    assert "evil.example" not in html + text
