"""Real, openable artifacts as bytes and text: creatives drawn with Pillow, the
landing page with Jinja2. Pure: the callers write them (``services/local.py``)."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageDraw, ImageFont

from campaign_assets.logic.contrast import BODY, MARGIN, palette as brand_palette, relative_luminance


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(c * factor))) for c in rgb)  # type: ignore[return-value]


def background_art(prompt: str, size: tuple[int, int], color: str) -> bytes:
    """The local image-generation backend: a brand-coloured abstract
    background, varied deterministically by the prompt."""
    width, height = size
    base = hex_to_rgb(color)
    image = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(image)
    for y in range(height):  # vertical gradient, brand colour to a darker shade
        t = y / max(1, height - 1)
        draw.line([(0, y), (width, y)], fill=_shade(base, 1.0 - 0.45 * t))
    seed = hashlib.sha256(prompt.encode()).digest()
    for i in range(6):
        cx = seed[i] / 255 * width
        cy = seed[i + 6] / 255 * height
        r = (0.15 + seed[i + 12] / 255 * 0.35) * max(width, height)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=_shade(base, 1.35), width=max(2, width // 200))
    return _png(image)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, size))


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, max_width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= max_width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def _fit_text(draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int]) -> tuple[Any, list[str], int]:
    """The largest font size at which ``text`` wraps inside ``box``."""
    width, height = box
    for size in range(max(8, min(height // 2, 96)), 7, -1):
        font = _font(size)
        lines = _wrap(draw, text, font, width)
        line_h = int(size * 1.2)
        if all(draw.textlength(line, font=font) <= width for line in lines) and line_h * len(lines) <= height:
            return font, lines, line_h
    font = _font(8)
    return font, _wrap(draw, text, font, width), 10


def _fit_line(draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int]) -> tuple[Any, str]:
    """The largest font at which ``text`` fits ``box`` on one line (a button
    label must not wrap, nor spill over the button's edges)."""
    width, height = box
    for size in range(max(8, min(height * 3 // 5, 48)), 7, -1):
        font = _font(size)
        if draw.textlength(text, font=font) <= width:
            return font, text
    return _font(8), text


def legible_scrim(image: Image.Image, surface: tuple[int, int, int], text: tuple[int, int, int]) -> Image.Image:
    """Blend ``image`` toward ``surface`` just enough that every pixel reaches
    BODY (+ MARGIN) contrast with ``text``: the art shows through, the copy stays legible
    wherever it lands. Terminates because ``text`` on ``surface`` itself passes."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    target = np.array(surface, dtype=np.float64)
    text_l = relative_luminance(text)
    for alpha in [0.35 + 0.05 * i for i in range(13)] + [1.0]:
        blended = np.rint(rgb + (target - rgb) * alpha)
        if _min_contrast(blended, text_l) >= BODY + MARGIN:
            break
    return Image.fromarray(blended.astype(np.uint8), "RGB")


def _min_contrast(pixels: np.ndarray, text_l: float) -> float:
    c = pixels / 255
    lin = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    lum = lin @ np.array([0.2126, 0.7152, 0.0722])
    hi, lo = np.maximum(lum, text_l), np.minimum(lum, text_l)
    return float(((hi + 0.05) / (lo + 0.05)).min())


def compose_creative(
    background: bytes | None, size: tuple[int, int], color: str, headline: str, brand: str, cta: str = "Learn more"
) -> bytes:
    """A display ad at exactly ``size`` pixels: background cover-cropped,
    headline fitted to the space, brand line and a call-to-action button."""
    width, height = size
    if background:
        art = Image.open(io.BytesIO(background)).convert("RGB")
        scale = max(width / art.width, height / art.height)
        art = art.resize((max(width, round(art.width * scale)), max(height, round(art.height * scale))))
        left, top = (art.width - width) // 2, (art.height - height) // 2
        image = art.crop((left, top, left + width, top + height))
    else:
        image = Image.new("RGB", size, hex_to_rgb(color))
    colors = brand_palette(color)
    image = legible_scrim(image.convert("RGB"), colors.surface, colors.text).convert("RGBA")
    draw = ImageDraw.Draw(image)
    pad = max(4, min(width, height) // 12)
    landscape = width >= 3 * height  # leaderboards and mobile banners: text left, button right
    button_w = (width // 4) if landscape else (width - 2 * pad)
    button_h = max(12, (height - 2 * pad) if landscape else height // 7)
    text_box = (
        (width - 3 * pad - button_w, height - 2 * pad) if landscape else (width - 2 * pad, height - 3 * pad - 2 * button_h)
    )
    font, lines, line_h = _fit_text(draw, headline, text_box)
    y = pad
    for line in lines:
        draw.text((pad, y), line, font=font, fill=colors.headline)
        y += line_h
    bx0 = width - pad - button_w if landscape else pad
    by0 = pad if landscape else height - pad - button_h
    draw.rounded_rectangle([bx0, by0, bx0 + button_w, by0 + button_h], radius=max(2, button_h // 4), fill=colors.button)
    bfont, label = _fit_line(draw, cta, (button_w - 8, button_h - 4))
    draw.text(
        (bx0 + button_w / 2, by0 + button_h / 2), label, font=bfont, fill=colors.button_text, anchor="mm"
    )
    if not landscape and height >= 200:
        brand_font, _, _ = _fit_text(draw, brand, (width - 2 * pad, button_h))
        draw.text((pad, by0 - pad - button_h // 2), brand, font=brand_font, fill=colors.text)
    return _png(image.convert("RGB"))


def thumbnail_uri(png: bytes, max_side: int = 160) -> str:
    """A small inline PNG (data URI) for a preview in the Dagster UI."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.thumbnail((max_side, max_side))
    return "data:image/png;base64," + base64.b64encode(_png(image)).decode()


def _landing_env() -> Environment:
    return Environment(
        loader=PackageLoader("campaign_assets", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )


def render_landing_page(context: dict[str, Any]) -> str:
    return _landing_env().get_template("landing_page.html.j2").render(**context)
