"""LLM: OpenAI-compatible chat completions (OpenAI, OpenRouter or any compatible server)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from campaign_assets.logic.prompts import PromptRequest, render_locally, template_env
from campaign_assets.services.base import LocalClient, ServiceResource


@dataclass(frozen=True)
class Completion:
    text: str
    model: str


class LocalLLM(LocalClient):
    """Writes spec-derived prose from the request's facts through Jinja2 templates."""

    def __init__(self, out_dir: Path):
        super().__init__("llm", out_dir)
        self._env = template_env()

    async def complete(self, request: PromptRequest) -> Completion:
        async with self.call(f"complete {request.kind}"):
            return Completion(render_locally(request, self._env), model="local-templates")


class LLMResource(ServiceResource):
    """Chat completions for briefs, content pieces and report summaries."""

    SERVICE: ClassVar[str] = "llm"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.openai.com/v1"
    DEFAULT_CAP: ClassVar[int] = 8

    model: str = Field(default="gpt-4o-mini", description="Model name sent to the chat completions API.")
    temperature: float = Field(default=0.4)

    def local_client(self, out_dir: Path) -> LocalLLM:
        return LocalLLM(out_dir)
