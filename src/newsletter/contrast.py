"""Colour contrast as WCAG 2.2 measures it, for the theme's text and background pairs.

Small text needs 4.5:1 against its background (AA), large text (24 px, or 18.66 px bold)
3:1. A comms team picks brand colours by eye; the ratio tells whether the kicker, the
button text and the footer can be read by someone with low vision or on a phone in sun.
"""

from __future__ import annotations

import re

AA_SMALL = 4.5
AA_LARGE = 3.0
_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def relative_luminance(colour: str) -> float:
    """The relative luminance of an sRGB colour written ``#rgb`` or ``#rrggbb``."""
    match = _HEX.fullmatch(colour.strip())
    if match is None:
        raise ValueError(f"{colour!r} is not a colour written #rgb or #rrggbb")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(2 * digit for digit in digits)
    channels = [int(digits[index : index + 2], 16) / 255 for index in (0, 2, 4)]
    red, green, blue = (
        value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4
        for value in channels
    )
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(foreground: str, background: str) -> float:
    """From 1 (none) to 21 (black on white); the order of the two does not matter."""
    lighter, darker = sorted(
        (relative_luminance(foreground), relative_luminance(background)), reverse=True
    )
    return (lighter + 0.05) / (darker + 0.05)
