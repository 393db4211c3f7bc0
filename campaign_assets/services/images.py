"""Image generation: OpenAI /images/generations or OpenRouter's image models."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any, ClassVar, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import Field

from campaign_assets.logic.render import background_art
from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import HttpSession, VendorProfile
from campaign_assets.services.llm import chat_completion, openai_profile, unexpected_response
from campaign_assets.services.local import LocalClient

GENERATION_SIZE = "1024x1024"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Provider = Literal["openai", "openrouter"]


class LocalImages(LocalClient):
    """Draws a brand-coloured abstract background with Pillow."""

    def __init__(self, out_dir: Path):
        super().__init__("images", out_dir)

    async def generate(self, prompt: str, *, color: str, size: str = GENERATION_SIZE) -> bytes:
        width, height = (int(x) for x in size.split("x"))
        async with self.call("generate"):
            return background_art(prompt, (width, height), color)


def _png(http: HttpSession, path: str, encoded: Any) -> bytes:
    """Decode a base64 image and hand back PNG bytes (converting other formats with Pillow)."""
    try:
        if not isinstance(encoded, str) or not encoded:
            raise ValueError("no image")
        raw = base64.b64decode(encoded, validate=True)
        if raw.startswith(PNG_SIGNATURE):
            return raw
        out = io.BytesIO()
        Image.open(io.BytesIO(raw)).save(out, format="PNG")
        return out.getvalue()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        raise unexpected_response(http, path, "the response holds no decodable image") from None


class HttpImages(HttpClient):
    """Backgrounds from OpenAI's image API or an OpenRouter image model.

    Generation creates no vendor object, so both calls are sent as idempotent: retrying
    one whose response was lost costs a generation, never a duplicate.
    """

    def __init__(self, http: HttpSession, *, provider: Provider, model: str):
        super().__init__(http)
        self.provider = provider
        self.model = model

    async def generate(self, prompt: str, *, color: str, size: str = GENERATION_SIZE) -> bytes:
        if color.lower() not in prompt.lower():
            prompt = f"{prompt} Dominant colour: {color}."
        if self.provider == "openrouter":
            return await self._openrouter(prompt)
        return await self._openai(prompt, size)

    async def _openai(self, prompt: str, size: str) -> bytes:
        path = "/images/generations"
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "size": size, "n": 1}
        if self.model.startswith("dall-e"):
            # GPT image models always answer base64 and reject response_format with a 400.
            body["response_format"] = "b64_json"
        payload = await self.http.json("POST", path, json=body, idempotent=True)
        data = payload.get("data") if isinstance(payload, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        return _png(self.http, path, first.get("b64_json"))

    async def _openrouter(self, prompt: str) -> bytes:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "modalities": ["image", "text"],
        }
        _, message = await chat_completion(self.http, body)
        images = message.get("images")
        image = images[0] if isinstance(images, list) and images and isinstance(images[0], dict) else {}
        url = str((image.get("image_url") or {}).get("url") or "")
        header, _, encoded = url.partition(",")
        if not (header.startswith("data:image/") and header.endswith(";base64")):
            raise unexpected_response(self.http, "/chat/completions", "the completion holds no image data URL")
        return _png(self.http, "/chat/completions", encoded)


class ImagesResource(ServiceResource):
    """Backgrounds for creatives; composed to each exact ad size by the creatives asset.

    With ``provider="openrouter"`` set ``base_url`` to OpenRouter's (``https://openrouter.ai/api/v1``).
    """

    SERVICE: ClassVar[str] = "images"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.openai.com/v1"

    provider: Provider = Field(default="openai")
    model: str = Field(default="gpt-image-1")

    def local_client(self, out_dir: Path) -> LocalImages:
        return LocalImages(out_dir)

    def http_client(self, http: HttpSession) -> HttpImages:
        return HttpImages(http, provider=self.provider, model=self.model)

    def vendor_profile(self) -> VendorProfile:
        return openai_profile(self.SERVICE)
