"""Deterministic stand-ins for generated content: prose for chat, small PNGs for images."""

from __future__ import annotations

import hashlib
import io
import json
import re

from PIL import Image

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_MAX_IMAGE_SIDE = 64


def compose_reply(prompt: str) -> str:
    """A few sentences that quote the prompt, then every ``## `` heading the prompt lists.

    Each heading gets a short paragraph, so a prompt asking for markdown sections gets them.
    """
    first_line = next((line.strip() for line in prompt.splitlines() if line.strip()), "")
    keywords = list(dict.fromkeys(word.lower() for word in _WORD.findall(prompt)))[:5]
    topic = ", ".join(keywords) if keywords else "the request"
    intro = (
        f'This response addresses "{_shorten(first_line, 120)}". '
        f"It focuses on {topic}, with a clear message, concrete proof points and a single call to action. "
        "Every claim stays specific to the audience and consistent with the brand."
    )
    headings = [line.strip() for line in prompt.splitlines() if line.strip().startswith("## ")]
    sections = [
        f"{heading}\n\n{heading[3:].strip()} for {topic}: what matters, why it matters now, "
        "and what the reader should do next."
        for heading in headings
    ]
    return "\n\n".join([intro, *sections])


_JSON_FIELD = re.compile(r'"(\w+)"\s*:\s*(<integer (\d+)-(\d+)|\[|")')


def compose_json_reply(prompt: str) -> str:
    """JSON mode (``response_format: json_object``): an object with the fields
    the prompt's example answer names, filled deterministically from the
    prompt: ``<integer a-b>`` placeholders get an integer in that range, lists
    get one sentence, strings a sentence."""
    digest = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    sentence = compose_reply(prompt).split(". ")[1].strip().rstrip(".") + "."
    reply: dict[str, object] = {}
    for name, kind, low, high in _JSON_FIELD.findall(prompt):
        if low and high:
            reply[name] = int(low) + digest % (int(high) - int(low) + 1)
        else:
            reply[name] = [sentence] if kind == "[" else sentence
    return json.dumps(reply or {"answer": sentence})


def estimate_tokens(text: str) -> int:
    """Roughly four characters a token, as the vendors' own rule of thumb has it."""
    return max(1, round(len(text) / 4))


def render_png(seed: str, width: int, height: int) -> bytes:
    """A solid-colour PNG with the aspect ratio of `width` x `height`, at most 64 px a side.

    The colour derives from `seed`, so the same prompt always gives the same image.
    """
    ratio = _MAX_IMAGE_SIDE / max(width, height)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    red, green, blue = hashlib.sha256(seed.encode()).digest()[:3]
    buffer = io.BytesIO()
    Image.new("RGB", size, (red, green, blue)).save(buffer, format="PNG")
    return buffer.getvalue()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
