"""LLM: OpenAI-compatible chat completions (OpenAI, OpenRouter or any compatible server).

The local backend writes prose from the request's facts through the Jinja2
templates under ``campaign_assets/templates/llm`` (``render_locally``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import Field

from campaign_assets.logic.prompts import PromptRequest, message_for
from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import (
    Classification,
    HttpSession,
    PermanentVendorError,
    VendorProfile,
    default_classify,
)
from campaign_assets.services.local import LocalClient


@dataclass(frozen=True)
class Completion:
    text: str
    model: str


def template_env() -> Environment:
    env = Environment(
        loader=PackageLoader("campaign_assets", "templates/llm"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # markdown, not HTML
    )
    env.globals["message_for"] = message_for
    return env


def render_locally(request: PromptRequest, env: Environment | None = None) -> str:
    """The local backend's answer: the request's facts through its template."""
    env = env or template_env()
    return env.get_template(f"{request.kind}.md.j2").render(**request.context).strip() + "\n"


class LocalLLM(LocalClient):
    """Writes spec-derived prose from the request's facts through Jinja2 templates."""

    def __init__(self, out_dir: Path):
        super().__init__("llm", out_dir)
        self._env = template_env()

    async def complete(self, request: PromptRequest) -> Completion:
        async with self.call(f"complete {request.kind}"):
            return Completion(render_locally(request, self._env), model="local-templates")


# ---- the OpenAI-compatible wire protocol (shared with images.py) ------------
def openai_classify(response: httpx.Response) -> Classification:
    """OpenAI answers 429 both for rate limits and for an exhausted quota; no retry fixes the latter."""
    if response.status_code == 429:
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        if isinstance(error, Mapping) and error.get("code") == "insufficient_quota":
            return "permanent"
    return default_classify(response)


def openai_profile(service: str) -> VendorProfile:
    """OpenAI and OpenRouter: ``{"error": {"message"}}`` and Retry-After are the defaults' already."""
    return VendorProfile(service=service, classify=openai_classify)


def unexpected_response(http: HttpSession, path: str, detail: str) -> PermanentVendorError:
    """A 2xx whose body lacks what the API promises: permanent, since a retry gets the same answer."""
    return PermanentVendorError(
        http.service, detail, method="POST", path=path, kind="unexpected_response", redactor=http.redactor
    )


async def chat_completion(http: HttpSession, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``POST /chat/completions``: the model that answered and ``choices[0].message``.

    Sent as idempotent: a completion creates no vendor object, so retrying one whose
    response was lost costs tokens, never a duplicate.
    """
    path = "/chat/completions"
    payload = await http.json("POST", path, json=dict(body), idempotent=True)
    choices = payload.get("choices") if isinstance(payload, Mapping) else None
    message = choices[0].get("message") if isinstance(choices, list) and choices else None
    if not isinstance(message, dict):
        # OpenRouter reports some upstream failures as a 200 with an "error" object.
        error = payload.get("error") if isinstance(payload, Mapping) else None
        raise unexpected_response(http, path, f"chat completion without choices (error: {error})")
    return str(payload.get("model") or body.get("model") or ""), message


class HttpLLM(HttpClient):
    """Chat completions over the OpenAI wire protocol; the base URL picks OpenAI, OpenRouter or another."""

    def __init__(self, http: HttpSession, *, model: str, temperature: float):
        super().__init__(http)
        self.model = model
        self.temperature = temperature

    async def complete(self, request: PromptRequest) -> Completion:
        body = {
            "model": self.model,
            "messages": request.messages(),
            "max_tokens": request.max_tokens,
            "temperature": self.temperature,
        }
        if request.json_reply:
            body["response_format"] = {"type": "json_object"}
        model, message = await chat_completion(self.http, body)
        text = message.get("content")
        if not isinstance(text, str) or not text.strip():
            raise unexpected_response(self.http, "/chat/completions", f"empty completion for {request.kind}")
        return Completion(text, model=model)


class LLMResource(ServiceResource):
    """Chat completions for briefs, content pieces and report summaries."""

    SERVICE: ClassVar[str] = "llm"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.openai.com/v1"

    model: str = Field(default="gpt-4o-mini", description="Model name sent to the chat completions API.")
    temperature: float = Field(default=0.4)

    def local_client(self, out_dir: Path) -> LocalLLM:
        return LocalLLM(out_dir)

    def http_client(self, http: HttpSession) -> HttpLLM:
        return HttpLLM(http, model=self.model, temperature=self.temperature)

    def vendor_profile(self) -> VendorProfile:
        return openai_profile(self.SERVICE)
