import re

import pytest

from newsletter.charclass import CharClass

JSON_UNSAFE = r'["\\\x00-\x1f\x7f\u2028\u2029]'
HTML_SPECIAL = r"[&<>\"']"
OTHER_SPACE = r"[^\S ]"


@pytest.mark.parametrize("pattern", [JSON_UNSAFE, HTML_SPECIAL, OTHER_SPACE])
@pytest.mark.parametrize(
    "text",
    [
        "",
        "reader1@example.org" * 500,
        "Ada Lovelace" * 500 + '"',
        "\\" + "plain" * 500,
        "tab\there",
        "line\nbreak",
        "del\x7f",
        "Tom & Jerry <b>",
        "it's",
        "Émile Zola" * 300,
        "Émile Zola" * 300 + "\u2028",
        "no\u00a0break",
        "C1 control \x85",
    ],
)
def test_found_in_answers_as_the_expression_does(pattern: str, text: str) -> None:
    assert CharClass(pattern).found_in(text) == (re.search(pattern, text) is not None)
