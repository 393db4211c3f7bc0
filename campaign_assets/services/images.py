"""Image generation: OpenAI /images/generations or OpenRouter's image models."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from campaign_assets.logic.render import background_art
from campaign_assets.services.base import LocalClient, ServiceResource

GENERATION_SIZE = "1024x1024"


class LocalImages(LocalClient):
    """Draws a brand-coloured abstract background with Pillow."""

    def __init__(self, out_dir: Path):
        super().__init__("images", out_dir)

    async def generate(self, prompt: str, *, color: str, size: str = GENERATION_SIZE) -> bytes:
        width, height = (int(x) for x in size.split("x"))
        async with self.call("generate"):
            return background_art(prompt, (width, height), color)


class ImagesResource(ServiceResource):
    """Backgrounds for creatives; composed to each exact ad size by the creatives asset."""

    SERVICE: ClassVar[str] = "images"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.openai.com/v1"
    DEFAULT_CAP: ClassVar[int] = 2

    provider: Literal["openai", "openrouter"] = Field(default="openai")
    model: str = Field(default="gpt-image-1")

    def local_client(self, out_dir: Path) -> LocalImages:
        return LocalImages(out_dir)
