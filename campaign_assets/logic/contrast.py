"""Colour by contrast, not by hope: WCAG 2.x relative luminance, contrast
ratios, and the palette every customer-facing surface takes from the brand.

The rule (issue #12):
- text and buttons need 4.5:1 (WCAG AA, body text); large headlines 3:1;
- the text is white or near-black, whichever contrasts more with the brand
  colour;
- when neither reaches the threshold on the brand colour itself, the surface
  becomes the *closest* tint (mixed toward white) or shade (mixed toward
  black) of the brand colour that does, so hue and saturation are kept and the
  brand stays recognizable.

The same :class:`Palette` feeds the landing page (CSS) and the creatives
(Pillow), so the choice is the same in the HTML and in the PNGs. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

BODY = 4.5  # WCAG 2.x AA, normal text and the button label
LARGE = 3.0  # WCAG 2.x AA, large text (>= 24 px, or >= 18.66 px bold)

# Aim a little above the threshold: a ratio of exactly 4.50 on paper reads
# 4.49 off a screenshot's anti-aliased or re-encoded pixels. The thresholds
# themselves are what the tests and WCAG check.
MARGIN = 0.1

WHITE: RGB = (255, 255, 255)
NEAR_BLACK: RGB = (17, 17, 17)  # #111111: softer than pure black, still 18.9:1 on white


def parse_hex(color: str) -> RGB:
    """``#RRGGBB`` or ``#RGB`` (with or without ``#``) to an RGB triple."""
    value = color.strip().lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    if len(value) != 6:
        raise ValueError(f"not a hex colour: {color!r}")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def to_hex(rgb: RGB) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def _channel(c8: int) -> float:
    c = c8 / 255
    # WCAG 2.x's own constant (0.03928); sRGB's 0.04045 differs for no 8-bit value that matters.
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(color: RGB | str) -> float:
    """WCAG 2.x relative luminance, 0 (black) to 1 (white)."""
    r, g, b = parse_hex(color) if isinstance(color, str) else color
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(a: RGB | str, b: RGB | str) -> float:
    """WCAG 2.x contrast ratio, 1 to 21, symmetric."""
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """``a`` moved a fraction ``t`` (0..1) of the way to ``b``, rounded to 8 bits."""
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def best_text(background: RGB) -> RGB:
    """White or near-black, whichever contrasts more with ``background``."""
    return max((WHITE, NEAR_BLACK), key=lambda c: contrast_ratio(c, background))


def _closest_passing(brand: RGB, toward: RGB, text: RGB, minimum: float) -> tuple[int, RGB] | None:
    """The smallest step (of 1/255) from ``brand`` toward ``toward`` at which
    ``text`` reaches ``minimum``; None if even ``toward`` itself fails."""
    for step in range(256):
        candidate = mix(brand, toward, step / 255)
        if contrast_ratio(candidate, text) >= minimum:
            return step, candidate
    return None


@dataclass(frozen=True)
class Palette:
    """Colours for a brand-coloured surface and what sits on it."""

    brand: RGB  # the spec's primary colour, unchanged
    surface: RGB  # the hero / creative background: the brand colour, or its closest passing tint or shade
    text: RGB  # body text on the surface (>= BODY)
    headline: RGB  # large headline on the surface (>= LARGE; in practice >= BODY too)
    button: RGB  # button background: the text colour, so the button stands out from the surface
    button_text: RGB  # button label: the surface colour (>= BODY against the button)
    adjusted: str  # "none", "tint" or "shade": what happened to the brand colour

    @property
    def text_ratio(self) -> float:
        return contrast_ratio(self.text, self.surface)

    @property
    def headline_ratio(self) -> float:
        return contrast_ratio(self.headline, self.surface)

    @property
    def button_ratio(self) -> float:
        return contrast_ratio(self.button_text, self.button)

    def css(self) -> dict[str, str]:
        """The palette as CSS hex values, for the landing page."""
        return {
            "brand": to_hex(self.brand),
            "surface": to_hex(self.surface),
            "text": to_hex(self.text),
            "headline": to_hex(self.headline),
            "button": to_hex(self.button),
            "button_text": to_hex(self.button_text),
        }


def surface_for(brand: RGB, minimum: float = BODY) -> tuple[RGB, RGB, str]:
    """(surface, text, adjustment) with ``contrast(text, surface) >= minimum``.

    The brand colour itself if white or near-black reaches ``minimum`` on it;
    otherwise the closest tint (with near-black text) or shade (with white
    text) that does, by the fewest 1/255 steps; ties go to the shade.
    """
    text = best_text(brand)
    if contrast_ratio(text, brand) >= minimum:
        return brand, text, "none"
    options = []
    shade = _closest_passing(brand, (0, 0, 0), WHITE, minimum)
    if shade:
        options.append((shade[0], 0, shade[1], WHITE, "shade"))
    tint = _closest_passing(brand, WHITE, NEAR_BLACK, minimum)
    if tint:
        options.append((tint[0], 1, tint[1], NEAR_BLACK, "tint"))
    if not options:  # unreachable for minimum <= 18.9 (black gives white 21:1)
        raise ValueError(f"no tint or shade of {to_hex(brand)} reaches {minimum}:1")
    _, _, surface, text, how = min(options)
    return surface, text, how


def palette(brand_color: RGB | str, minimum: float = BODY, margin: float = MARGIN) -> Palette:
    """The palette for a brand colour: every pair meets ``minimum + margin``
    (body text and the button), the headline meets LARGE at least."""
    brand = parse_hex(brand_color) if isinstance(brand_color, str) else tuple(brand_color)
    surface, text, how = surface_for(brand, minimum + margin)  # type: ignore[arg-type]
    headline = best_text(surface)
    if contrast_ratio(headline, surface) < LARGE:  # cannot happen once text passes BODY, kept as the rule
        headline = text
    return Palette(
        brand=brand,  # type: ignore[arg-type]
        surface=surface,
        text=text,
        headline=headline,
        button=text,
        button_text=surface,
        adjusted=how,
    )
