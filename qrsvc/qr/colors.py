"""Colours as the API accepts them, and the contrast rule that keeps codes scannable."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")

#: WCAG 2 contrast ratio below which we refuse a colour pair (unless asked not to).
#: 3:1 is WCAG's floor for graphical objects; phone scanners start failing around it.
MIN_CONTRAST = 3.0


class ColorError(ValueError):
    """A colour string that is not `#rgb`, `#rrggbb`, `#rrggbbaa` or `transparent`."""


@dataclass(frozen=True, slots=True)
class Color:
    r: int
    g: int
    b: int
    a: int = 255

    @property
    def rgb(self) -> tuple[int, int, int]:
        return (self.r, self.g, self.b)

    @property
    def rgba(self) -> tuple[int, int, int, int]:
        return (self.r, self.g, self.b, self.a)

    @property
    def opaque(self) -> bool:
        return self.a == 255

    @property
    def hex(self) -> str:
        text = f"#{self.r:02x}{self.g:02x}{self.b:02x}"
        return text if self.opaque else f"{text}{self.a:02x}"

    def over(self, base: Color) -> Color:
        """This colour alpha-composited over an opaque `base`."""
        alpha = self.a / 255
        mix = [round(c * alpha + d * (1 - alpha)) for c, d in zip(self.rgb, base.rgb, strict=True)]
        return Color(mix[0], mix[1], mix[2])

    def luminance(self) -> float:
        """WCAG 2 relative luminance of the opaque colour."""

        def channel(value: int) -> float:
            c = value / 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        return 0.2126 * channel(self.r) + 0.7152 * channel(self.g) + 0.0722 * channel(self.b)


WHITE = Color(255, 255, 255)
BLACK = Color(0, 0, 0)
TRANSPARENT = Color(255, 255, 255, 0)


def parse_color(text: str, *, allow_transparent: bool = False) -> Color:
    """Parse `#rgb`/`#rrggbb`/`#rrggbbaa` (the `#` may be left out, as in query strings)."""
    if allow_transparent and text.strip().lower() == "transparent":
        return TRANSPARENT
    match = _HEX.fullmatch(text.strip())
    if not match:
        raise ColorError(f"{text!r} is not a colour: use #rgb, #rrggbb or #rrggbbaa")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    values = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
    return Color(*values)


@lru_cache(maxsize=1024)  # a batch checks the same pair of colours for every item
def contrast_ratio(foreground: Color, background: Color) -> float:
    """WCAG contrast of the colours as printed or shown (translucency over white paper)."""
    back = background.over(WHITE)
    front = foreground.over(back)
    lighter, darker = sorted((front.luminance(), back.luminance()), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@lru_cache(maxsize=1024)
def is_inverted(foreground: Color, background: Color) -> bool:
    """Light modules on a dark ground: many phone scanners do not read those."""
    back = background.over(WHITE)
    return foreground.over(back).luminance() > back.luminance()
