"""The OpenAI-compatible HTTP backends (LLM and image generation) against the vendor sandbox.

Real httpx to a real ``SandboxServer`` on a free 127.0.0.1 port, at a tiny latency
scale, with forced faults from ``/_sandbox/faults``. Clients are driven the way assets
drive them: through the resource's ``session(out_dir)``.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from campaign_assets.logic.prompts import PromptRequest
from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.base import ServiceResource

from .conftest import CLIENT_SANDBOX
from campaign_assets.services.http import PermanentVendorError
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S, time_out_next
from campaign_assets.services.images import HttpImages, ImagesResource
from campaign_assets.services.llm import HttpLLM, LLMResource, openai_classify

TOKEN = "sandbox-openai-token"
REVOKED = "sk-revoked-0123456789abcdefghij"
FAST = {"backoff_base_s": 0.001, "timeout_s": GENEROUS_TIMEOUT_S}
REQUEST = PromptRequest("brief", "You write briefs.", "Write the brief.\n## Objective\n## Audience", max_tokens=99)
PNG = b"\x89PNG\r\n\x1a\n"


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


# Each case: the resource, the sandbox vendor and endpoint it calls, and one call.
Case = tuple[Callable[[str, str], ServiceResource], str, str, Callable[[Any], Awaitable[Any]]]


async def _complete(client: HttpLLM) -> str:
    return (await client.complete(REQUEST)).text


async def _generate(client: HttpImages) -> bytes:
    return await client.generate("An abstract background.", color="#0B5FFF")


CASES: dict[str, Case] = {
    "llm-openai": (
        lambda url, token: LLMResource(api_key=token, base_url=f"{url}/openai/v1", **FAST),
        "openai",
        "POST /chat/completions",
        _complete,
    ),
    "llm-openrouter": (
        lambda url, token: LLMResource(
            api_key=token, base_url=f"{url}/openrouter/api/v1", model="openai/gpt-4o-mini", **FAST
        ),
        "openrouter",
        "POST /chat/completions",
        _complete,
    ),
    "images-openai": (
        lambda url, token: ImagesResource(api_key=token, base_url=f"{url}/openai/v1", **FAST),
        "openai",
        "POST /images/generations",
        _generate,
    ),
    "images-openrouter": (
        lambda url, token: ImagesResource(
            api_key=token,
            base_url=f"{url}/openrouter/api/v1",
            provider="openrouter",
            model="google/gemini-2.5-flash-image",
            **FAST,
        ),
        "openrouter",
        "POST /chat/completions",
        _generate,
    ),
}


def call(sandbox: SandboxServer, case: str, tmp_path: Path, token: str = TOKEN) -> tuple[Any, Any]:
    """Run the case's one call through a fresh session; the result and the client's stats."""
    resource, _, _, action = CASES[case]

    async def go() -> tuple[Any, Any]:
        async with resource(sandbox.url, token).session(tmp_path) as client:
            return await action(client), client.stats

    return run(go())


def vendor_calls(sandbox: SandboxServer, vendor: str) -> list[dict[str, Any]]:
    return [c for c in sandbox.state()["calls"] if c["vendor"] == vendor]


def check_result(case: str, result: Any) -> None:
    if case.startswith("llm"):
        assert "## Objective" in result and "## Audience" in result
    else:
        assert result.startswith(PNG)
        assert Image.open(io.BytesIO(result)).format == "PNG"


# ---- success shapes ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_success(sandbox: SandboxServer, case: str, tmp_path: Path) -> None:
    result, stats = call(sandbox, case, tmp_path)
    check_result(case, result)
    _, vendor, endpoint, _ = CASES[case]
    assert [c["endpoint"] for c in vendor_calls(sandbox, vendor)] == [endpoint]
    assert (stats.calls, stats.successes, stats.failures) == (1, 1, 0)


def test_completion_reports_the_model_that_answered(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def go() -> Any:
        async with LLMResource(api_key=TOKEN, base_url=f"{sandbox.url}/openai/v1", model="gpt-4.1-mini").session(
            tmp_path
        ) as llm:
            return await llm.complete(REQUEST)

    completion = run(go())
    assert completion.model == "gpt-4.1-mini"


def test_brand_colour_goes_into_the_image_prompt(sandbox: SandboxServer, tmp_path: Path) -> None:
    """The sandbox draws an image from the prompt it receives: same prompt, same image."""

    async def go() -> list[bytes]:
        resource = ImagesResource(api_key=TOKEN, base_url=f"{sandbox.url}/openai/v1", **FAST)
        async with resource.session(tmp_path) as images:
            return [
                await images.generate("Calm background.", color="#0B5FFF"),
                await images.generate("Calm background. Dominant colour: #0B5FFF.", color="#0B5FFF"),
                await images.generate("Calm background.", color="#FF0000"),
            ]

    implicit, explicit, other = run(go())
    assert implicit == explicit
    assert implicit != other


# ---- failures and recovery -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_rate_limit_recovers(sandbox: SandboxServer, case: str, tmp_path: Path) -> None:
    _, vendor, endpoint, _ = CASES[case]
    sandbox.queue_fault(vendor, "429", endpoint)
    result, stats = call(sandbox, case, tmp_path)
    check_result(case, result)
    assert [c["status"] for c in vendor_calls(sandbox, vendor)] == [429, 200]
    assert (stats.rate_limited, stats.retries, stats.failures) == (1, 1, 0)


def test_openai_rate_limit_honours_retry_after(sandbox: SandboxServer, tmp_path: Path) -> None:
    """OpenAI's 429 carries Retry-After (the sandbox's fractional form: one scaled second)."""
    sandbox.reset(**{**CLIENT_SANDBOX, "scale": 0.02})  # hint 20 ms, far above the 1 ms backoff
    sandbox.queue_fault("openai", "429", "POST /chat/completions")

    async def go() -> Any:
        resource = LLMResource(api_key=TOKEN, base_url=f"{sandbox.url}/openai/v1", backoff_base_s=0.001)
        async with resource.session(tmp_path) as llm:
            await llm.complete(REQUEST)
            return llm.stats

    stats = run(go())
    first, second = vendor_calls(sandbox, "openai")
    assert (first["status"], second["status"]) == (429, 200)
    assert second["start"] - first["end"] >= 0.018
    assert stats.rate_limited == 1


@pytest.mark.parametrize("case", CASES)
def test_server_error_recovers(sandbox: SandboxServer, case: str, tmp_path: Path) -> None:
    _, vendor, endpoint, _ = CASES[case]
    sandbox.queue_fault(vendor, "500", endpoint)
    result, stats = call(sandbox, case, tmp_path)
    check_result(case, result)
    assert [c["status"] for c in vendor_calls(sandbox, vendor)] == [500, 200]
    assert (stats.server_errors, stats.retries) == (1, 1)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["timeout", "lost_response"])
def test_lost_answer_is_retried(
    sandbox: SandboxServer, case: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completion or a generation creates no vendor object: safe to send again."""
    _, vendor, endpoint, _ = CASES[case]
    sandbox.queue_fault(vendor, kind, endpoint)
    if kind == "timeout":
        time_out_next(monkeypatch, endpoint)  # the one the sandbox holds; other calls keep a generous timeout
    result, stats = call(sandbox, case, tmp_path)
    check_result(case, result)
    assert [c["fault"] for c in vendor_calls(sandbox, vendor)] == [kind, None]
    assert (stats.transport_errors, stats.retries, stats.failures) == (1, 1, 0)


@pytest.mark.parametrize("case", CASES)
def test_revoked_token_fails_fast_with_the_vendors_message(
    sandbox: SandboxServer, case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, vendor, _, _ = CASES[case]
    with pytest.raises(PermanentVendorError) as caught:
        call(sandbox, case, tmp_path, token=REVOKED)
    error = caught.value
    assert error.status_code == 401 and error.attempts == 1
    expected = "Incorrect API key provided" if vendor == "openai" else "User not found"
    assert expected in error.message
    assert REVOKED not in str(error) and REVOKED not in repr(error.__dict__) and REVOKED not in caplog.text
    assert len(vendor_calls(sandbox, vendor)) == 1


def test_insufficient_quota_is_permanent() -> None:
    """OpenAI's 429 for an exhausted quota is not a rate limit: retrying cannot help."""
    body = {"error": {"message": "You exceeded your current quota.", "code": "insufficient_quota"}}
    assert openai_classify(httpx.Response(429, json=body)) == "permanent"
    assert openai_classify(httpx.Response(429, json={"error": {"code": "rate_limit_exceeded"}})) == "rate_limited"
    assert openai_classify(httpx.Response(503)) == "retryable"


def test_json_mode_answers_the_fields_the_prompt_asks_for(sandbox: SandboxServer, tmp_path: Path) -> None:
    """The brand-voice review asks for JSON (response_format json_object): the
    sandbox answers an object with the prompt's fields, and refuses, as OpenAI
    does, a conversation that never says JSON."""
    from campaign_assets.logic.review import parse_voice

    asking = PromptRequest("review", "You review.", 'Answer with JSON only: {"score": <integer 1-10>, "notes": ["..."]}', json_reply=True)
    silent = PromptRequest("review", "You review.", "Score it.", json_reply=True)

    async def scenario() -> tuple[str, BaseException | None]:
        async with LLMResource(api_key=TOKEN, base_url=f"{sandbox.url}/openai/v1", **FAST).session(tmp_path) as client:
            answer = (await client.complete(asking)).text
            try:
                await client.complete(silent)
            except PermanentVendorError as error:
                return answer, error
            return answer, None

    answer, error = run(scenario())
    review = parse_voice(answer)
    assert review.score is not None and 1 <= review.score <= 10 and review.notes
    assert error is not None and "json" in str(error).lower()
