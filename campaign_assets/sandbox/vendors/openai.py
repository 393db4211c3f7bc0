"""OpenAI (chat completions, image generation) and OpenRouter (chat, with image output)."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from starlette.responses import Response

from campaign_assets.sandbox.content import compose_json_reply, compose_reply, estimate_tokens, render_png
from campaign_assets.sandbox.state import AuthOutcome
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    ErrorStyle,
    Vendor,
    json_response,
)

CHAT_LATENCY_S = 30.0
IMAGE_LATENCY_S = 90.0
# Every size some OpenAI image model accepts (gpt-image-1, dall-e-3, dall-e-2).
IMAGE_SIZES = frozenset(
    {"auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792"}
)


class OpenAIErrors(ErrorStyle):
    default_messages: Mapping[int, str] = {
        401: "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        404: "Invalid URL.",
        429: "Rate limit reached for requests. Please try again later.",
        500: "The server had an error while processing your request. Sorry about that!",
        503: "The engine is currently overloaded, please try again later.",
        504: "Request timed out.",
    }
    _types: ClassVar[dict[int, str]] = {429: "requests"}
    _codes: ClassVar[dict[int, str]] = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
    sends_retry_after = True

    def body(self, error: ApiError) -> dict[str, Any]:
        kind = self._types.get(error.status) or (
            "server_error" if error.status >= 500 else "invalid_request_error"
        )
        return {
            "error": {
                "message": self.message(error),
                "type": kind,
                "param": None,
                "code": error.code or self._codes.get(error.status),
            }
        }

    def headers(self, error: ApiError) -> dict[str, str]:
        headers = super().headers(error)
        if error.retry_after_s is not None:
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-reset-requests"] = _duration(error.retry_after_s)
        return headers

    def auth_failure(self, outcome: AuthOutcome) -> ApiError:
        if outcome == "missing":
            return ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        return ApiError(401)


class OpenRouterErrors(ErrorStyle):
    default_messages: Mapping[int, str] = {
        401: "User not found.",
        404: "Not Found",
        429: "Rate limit exceeded",
        500: "Internal Server Error",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }

    def body(self, error: ApiError) -> dict[str, Any]:
        return {"error": {"code": error.status, "message": self.message(error)}}

    def auth_failure(self, outcome: AuthOutcome) -> ApiError:
        return ApiError(401, "No auth credentials found" if outcome == "missing" else None)


def _duration(seconds: float) -> str:
    """OpenAI's reset-header format: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def _last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message; a 400 when `model` or `messages` is missing."""
    if not isinstance(body.get("model"), str):
        raise ApiError(400, "you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty array.")
    user_messages = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    content = user_messages[-1].get("content") if user_messages else ""
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return content if isinstance(content, str) else ""


def _completion(call: Call, response_id: str, message_extra: dict[str, Any]) -> dict[str, Any]:
    body = call.json()
    prompt = _last_user_text(body)
    reply = compose_reply(prompt)
    if (body.get("response_format") or {}).get("type") == "json_object":
        # OpenAI's JSON mode refuses a conversation that never says "JSON".
        said = " ".join(str(m.get("content", "")) for m in body["messages"] if isinstance(m, dict))
        if "json" not in said.lower():
            raise ApiError(400, "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.")
        reply = compose_json_reply(prompt)
    prompt_tokens = sum(
        estimate_tokens(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict)
    )
    completion_tokens = estimate_tokens(reply)
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply, **message_extra},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chat_completion(call: Call) -> Response:
    return json_response(_completion(call, f"chatcmpl-{call.ids.token(29)}", {"refusal": None}))


def _png_base64(seed: str, width: int, height: int) -> str:
    return base64.b64encode(render_png(seed, width, height)).decode()


def image_generation(call: Call) -> Response:
    body = call.json()
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, "'prompt' is a required property")
    size = body.get("size", "1024x1024")
    if size not in IMAGE_SIZES:
        raise ApiError(400, f"Invalid value: '{size}'. Supported values are: {sorted(IMAGE_SIZES)}.")
    width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
    count = body.get("n", 1)
    if not isinstance(count, int) or not 1 <= count <= 10:
        raise ApiError(400, f"Invalid value for 'n': {count}. Must be between 1 and 10.")
    images = [
        {"b64_json": _png_base64(f"{prompt}#{i}", width, height), "revised_prompt": prompt}
        for i in range(count)
    ]
    return json_response({"created": int(time.time()), "data": images})


def _wants_image(call: Call) -> bool:
    modalities = (call.payload or {}).get("modalities")
    return isinstance(modalities, list) and "image" in modalities


def openrouter_chat(call: Call) -> Response:
    extra: dict[str, Any] = {"refusal": None, "reasoning": None}
    if _wants_image(call):
        prompt = _last_user_text(call.json())
        url = f"data:image/png;base64,{_png_base64(prompt, 1024, 1024)}"
        extra["images"] = [{"type": "image_url", "image_url": {"url": url}}]
    completion = _completion(call, f"gen-{int(time.time())}-{call.ids.token(20)}", extra)
    return json_response({**completion, "provider": "Sandbox"})


def _openrouter_latency(call: Call) -> float:
    return IMAGE_LATENCY_S if _wants_image(call) else CHAT_LATENCY_S


OPENAI = Vendor(
    name="openai",
    mount="/openai/v1",
    errors=OpenAIErrors(),
    endpoints=(
        Endpoint("POST", "/chat/completions", chat_completion, CHAT_LATENCY_S),
        Endpoint("POST", "/images/generations", image_generation, IMAGE_LATENCY_S),
    ),
)

OPENROUTER = Vendor(
    name="openrouter",
    mount="/openrouter/api/v1",
    errors=OpenRouterErrors(),
    endpoints=(Endpoint("POST", "/chat/completions", openrouter_chat, _openrouter_latency),),
)
