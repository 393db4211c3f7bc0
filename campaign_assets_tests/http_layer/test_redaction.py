"""Redaction: no token in an error, a log line (ours or httpx's) or a pickle; no global logger touched."""

from __future__ import annotations

import logging
import pickle
import traceback
from typing import Any

import httpx
import pytest

from campaign_assets.services.http import (
    AmbiguousWriteError,
    PermanentVendorError,
    Redactor,
    RetryableVendorError,
    VendorError,
)
from campaign_assets_tests.http_layer.vendor import (
    TOKEN,
    Server,
    leaks,
    reply,
    run,
    session,
)

# --------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------


def test_token_echoed_in_error_body_is_redacted_everywhere(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {TOKEN}. Header was 'Bearer {TOKEN}'"}}
    server.vendor.script("GET", "/v1/models", reply(500, echo), reply(500, echo), then=reply(401, echo))
    caplog.set_level(logging.DEBUG)

    async def main() -> VendorError:
        async with session(server, service="llm") as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("GET", "/v1/models")
            return caught.value

    error = run(main())
    assert error.message.startswith("Incorrect API key provided: ***")
    rendered = [str(error), repr(error), error.message, "".join(traceback.format_exception(error))]
    assert not any(leaks(text) for text in rendered)
    assert TOKEN.encode() not in pickle.dumps(error)
    assert not leaks(caplog.text)
    retries = [r for r in caplog.records if r.name == "campaign_assets.http" and "retrying" in r.getMessage()]
    assert len(retries) == 2 and all(r.levelno == logging.WARNING for r in retries)
    first = retries[0]
    assert (first.http_service, first.http_method, first.http_path, first.http_reason, first.http_attempt) == (
        "llm", "GET", "/v1/models", "http_500", 1)
    assert "retrying in" in first.getMessage() and "***" in first.getMessage()


def test_token_in_query_string_never_reaches_logs(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    server.vendor.script("GET", "/v1/files", reply(503, {}), then=reply(200, {"files": []}))
    caplog.set_level(logging.DEBUG)
    httpx_logger = logging.getLogger("httpx")
    before = (list(httpx_logger.filters), list(httpx_logger.handlers), httpx_logger.level, httpx_logger.disabled)

    async def main() -> Any:
        async with session(server, headers={}, secrets=[TOKEN]) as http:
            during = (list(httpx_logger.filters), list(httpx_logger.handlers), httpx_logger.level, httpx_logger.disabled)
            assert during == before  # opening a session leaves the global httpx logger alone
            return await http.json("GET", "/v1/files", params={"key": TOKEN, "page": "2"})

    assert run(main()) == {"files": []}
    wire = httpx.QueryParams(server.vendor.calls[0].query)
    assert (wire["key"], wire["page"]) == (TOKEN, "2")  # the token really was on the wire, twice
    assert wire == httpx.QueryParams(server.vendor.calls[1].query)
    assert not leaks(caplog.text)
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx" and "HTTP Request" in r.getMessage()]
    assert len(lines) == 2 and all("key=%2A%2A%2A&page=2" in line for line in lines)  # masked: '***' URL-encoded


def test_token_in_httpx_exception_text_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError(f"connection reset while reading {request.url}", request=request)

    async def main() -> list[VendorError]:
        errors: list[VendorError] = []
        async with session("https://vendor.example", transport=httpx.MockTransport(handler)) as http:
            for method in ("GET", "POST"):
                with pytest.raises(RetryableVendorError) as caught:
                    await http.request(method, "/v1/items", params={"key": TOKEN}, json={"x": 1})
                errors.append(caught.value)
        return errors

    get_error, post_error = run(main())
    assert type(get_error) is RetryableVendorError and isinstance(post_error, AmbiguousWriteError)
    for error in (get_error, post_error):
        assert error.kind == "ReadError" and "key=***" in error.message
        assert error.__cause__ is None and error.__context__ is None  # no unredacted httpx error chained
        assert not leaks("".join(traceback.format_exception(error)))
    assert not leaks(caplog.text)


def test_redactor_unit() -> None:
    redactor = Redactor([TOKEN, "", None, "other-secret-value"])
    text = f"a {TOKEN} b {httpx.QueryParams({'k': TOKEN})} c other-secret-value d Bearer abc.def e sk-proj-abcdefghijklmnopqrstuvwx"
    out = redactor.redact(text)
    assert not leaks(out) and "other-secret-value" not in out and "abc.def" not in out and "sk-proj" not in out
    assert out.startswith("a *** b k=*** c *** d Bearer *** e ***")
    assert redactor.redact("nothing secret here") == "nothing secret here"
    obj = {"headers": {"Authorization": "Bearer zzz", "X-Trace": "1"}, "items": [f"x{TOKEN}", 3, None, ("t", TOKEN)],
           TOKEN: True, "max_tokens": 10}
    clean = redactor.redact_obj(obj)
    assert clean == {"headers": {"Authorization": "***", "X-Trace": "1"}, "items": ["x***", 3, None, ("t", "***")],
                     "***": True, "max_tokens": 10}
    assert obj["items"][0] == f"x{TOKEN}"  # a copy: the original is untouched


def test_redactor_logging_filter_redacts_args_and_exceptions() -> None:
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(Redactor([TOKEN]).logging_filter())
    log = logging.getLogger("campaign_assets.tests.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("calling with %s and %r", TOKEN, {"auth": f"Bearer {TOKEN}"})
        try:
            raise RuntimeError(f"failed with {TOKEN}")
        except RuntimeError:
            log.exception("boom %s", TOKEN)
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert not leaks(output)
    assert "calling with *** and" in output and "RuntimeError: failed with ***" in output
