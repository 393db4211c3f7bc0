"""Retries: which outcomes are retried, how often, after how long (Retry-After, backoff)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from campaign_assets_tests.support.ports import free_port

from campaign_assets.services.http import (
    AmbiguousWriteError,
    HttpSession,
    PermanentVendorError,
    RateLimitedError,
    RetryableVendorError,
    RetryPolicy,
    VendorError,
    backoff_delay,
)
from campaign_assets_tests.http_doubles import ShortReadTimeout
from campaign_assets_tests.http_layer.vendor import (
    FAST,
    TOKEN,
    RecordingSleep,
    Server,
    drop,
    hold,
    reply,
    run,
    session,
)

# --------------------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------------------


def test_429_with_retry_after_twice_then_200(server: Server) -> None:
    limited = reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "0.01"})
    server.vendor.script("GET", "/items", limited, limited, reply(200, {"items": [1, 2]}))
    sleep = RecordingSleep()

    async def main() -> Any:
        async with session(server, sleep=sleep) as http:
            return await http.json("GET", "/items"), http

    payload, http = run(main())
    assert payload == {"items": [1, 2]}
    assert server.vendor.count("GET", "/items") == 3
    assert len(sleep.delays) == 2 and all(0.01 <= d <= 0.0111 for d in sleep.delays)
    meta = http.stats.as_metadata()
    assert (meta["calls"], meta["retries"], meta["rate_limited"], meta["failures"]) == (3, 2, 2, 0)
    assert http.limiter.limit < http.limiter.cap  # adapted down
    assert server.vendor.calls[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_fractional_retry_after_is_honoured_and_no_sandbox_header_is_read(server: Server) -> None:
    """The sandbox sends its scaled waits as a standard, fractional Retry-After: production
    code knows no sandbox-only header (an ``x-sandbox-retry-after`` is ignored)."""
    server.vendor.script(
        "GET", "/items",
        reply(429, {}, headers={"Retry-After": "0.02", "x-sandbox-retry-after": "5"}),
        reply(429, {}, headers={"x-sandbox-retry-after": "5"}),
        reply(200, {"ok": True}),
    )
    sleep = RecordingSleep()

    async def main() -> Any:
        async with session(server, sleep=sleep) as http:
            return await http.json("GET", "/items")

    assert run(main()) == {"ok": True}
    assert len(sleep.delays) == 2 and 0.02 <= sleep.delays[0] < 0.03
    assert sleep.delays[1] <= FAST.backoff_base_s * 2  # no Retry-After: backoff, the sandbox header means nothing


def test_google_style_429_without_retry_after_uses_backoff_then_gives_up(server: Server) -> None:
    google_429 = reply(429, {"error": {"code": 429, "message": "Quota exceeded for quota metric 'Write requests'",
                                       "status": "RESOURCE_EXHAUSTED"}})
    server.vendor.script("POST", "/v1/spreadsheets", then=google_429)
    sleep = RecordingSleep()

    async def main() -> HttpSession:
        async with session(server, sleep=sleep, service="sheets") as http:
            with pytest.raises(RateLimitedError) as caught:
                await http.request("POST", "/v1/spreadsheets", json={"title": "plan"})
            error = caught.value
            assert error.status_code == 429 and error.retry_after is None and error.retryable
            assert error.attempts == FAST.max_attempts
            assert error.message == "RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Write requests'"
            assert not isinstance(error, AmbiguousWriteError)  # a 429 write was never processed
            return http

    http = run(main())
    assert server.vendor.count("POST", "/v1/spreadsheets") == FAST.max_attempts
    # Exponential full-jitter backoff: attempt n waits at most base * 2**(n-1).
    assert len(sleep.delays) == FAST.max_attempts - 1
    for attempt, delay in enumerate(sleep.delays, start=1):
        assert 0 <= delay <= FAST.backoff_base_s * 2 ** (attempt - 1)
    assert http.stats.as_metadata()["failures_rate_limited"] == 1
    assert http.stats.rate_limited == FAST.max_attempts


# --------------------------------------------------------------------------------------
# 5xx, 4xx and idempotency
# --------------------------------------------------------------------------------------


def test_500_then_200_on_get_is_retried(server: Server) -> None:
    server.vendor.script("GET", "/doc", reply(500, {"error": {"message": "backend"}}), reply(200, {"id": "d1"}))

    async def main() -> Any:
        async with session(server) as http:
            return await http.json("GET", "/doc"), http.stats

    payload, stats = run(main())
    assert payload == {"id": "d1"}
    assert server.vendor.count() == 2
    assert (stats.calls, stats.retries, stats.server_errors, stats.failures) == (2, 1, 1, 0)


def test_500_on_post_is_an_ambiguous_write_with_exactly_one_request(server: Server) -> None:
    server.vendor.script("POST", "/projects", then=reply(500, {"errors": [{"message": "Server Error"}]}))

    async def main() -> Any:
        async with session(server, service="asana") as http:
            with pytest.raises(AmbiguousWriteError) as caught:
                await http.request("POST", "/projects", json={"name": "Launch"})
            return caught.value, http.stats

    error, stats = run(main())
    assert server.vendor.count() == 1
    assert isinstance(error, RetryableVendorError) and error.retryable
    assert error.status_code == 500 and error.method == "POST" and error.path == "/projects"
    assert "Server Error" in error.message and "may have committed" in error.message
    assert stats.as_metadata()["failures_ambiguous"] == 1


@pytest.mark.parametrize(("method", "idempotent"), [("PUT", None), ("DELETE", None), ("POST", True)])
def test_idempotent_writes_are_retried_on_5xx(server: Server, method: str, idempotent: bool | None) -> None:
    server.vendor.script(method, "/thing", reply(503, {}), reply(502, {}), reply(200, {"done": True}))

    async def main() -> Any:
        async with session(server) as http:
            return await http.json(method, "/thing", json={"a": 1}, idempotent=idempotent)

    assert run(main()) == {"done": True}
    assert server.vendor.count(method, "/thing") == 3


def test_408_on_post_is_ambiguous(server: Server) -> None:
    server.vendor.script("POST", "/x", then=reply(408, {"message": "timeout"}))

    async def main() -> None:
        async with session(server) as http:
            with pytest.raises(AmbiguousWriteError):
                await http.request("POST", "/x", json={})

    run(main())
    assert server.vendor.count() == 1


def test_5xx_on_get_exhausts_into_retryable_error(server: Server) -> None:
    server.vendor.script("GET", "/flaky", then=reply(503, {"code": "unavailable", "message": "try later"}))

    async def main() -> VendorError:
        async with session(server) as http:
            with pytest.raises(RetryableVendorError) as caught:
                await http.request("GET", "/flaky")
            return caught.value

    error = run(main())
    assert type(error) is RetryableVendorError
    assert error.attempts == FAST.max_attempts and error.status_code == 503
    assert error.message == "unavailable: try later"
    assert server.vendor.count() == FAST.max_attempts


def test_401_is_permanent_with_the_vendor_message_and_one_request(server: Server) -> None:
    server.vendor.script("GET", "/v1/models", then=reply(
        401, {"error": {"message": "Invalid authentication credentials", "type": "invalid_request_error",
                        "code": "invalid_api_key"}}))

    async def main() -> Any:
        async with session(server, service="llm") as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("GET", "/v1/models")
            return caught.value, http.stats

    error, stats = run(main())
    assert server.vendor.count() == 1
    assert error.status_code == 401 and not error.retryable and error.kind == "http_401"
    assert error.message == "invalid_api_key: Invalid authentication credentials"
    assert str(error) == "llm GET /v1/models: HTTP 401: invalid_api_key: Invalid authentication credentials"
    assert (stats.retries, stats.as_metadata()["failures_permanent"]) == (0, 1)


def test_404_asana_shape_is_permanent(server: Server) -> None:
    server.vendor.script("GET", "/projects/42", then=reply(
        404, {"errors": [{"message": "project: Unknown object: 42", "help": "see docs"}]}))

    async def main() -> VendorError:
        async with session(server, service="asana") as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.json("GET", "/projects/42")
            return caught.value

    assert run(main()).message == "project: Unknown object: 42"
    assert server.vendor.count() == 1


# --------------------------------------------------------------------------------------
# Transport errors: timeouts, dropped connections, refused connections
# --------------------------------------------------------------------------------------


def test_timeout_on_get_is_retried_and_on_post_is_ambiguous(server: Server) -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base_s=0.001, backoff_max_s=0.01, timeout_s=10.0)
    server.vendor.script("GET", "/slow", hold(200, {"late": True}), reply(200, {"fast": True}))
    server.vendor.script("POST", "/slow", then=hold(201, {"late": True}))
    # Only the held requests get a short read timeout: the vendor never answers them in time.
    transport = ShortReadTimeout({"GET /slow": 1, "POST /slow": 1})

    async def main() -> Any:
        async with session(server, policy=policy, transport=transport) as http:
            got = await http.json("GET", "/slow")
            with pytest.raises(AmbiguousWriteError) as caught:
                await http.request("POST", "/slow", json={"name": "x"})
            return got, caught.value, http.stats

    got, error, stats = run(main())
    assert got == {"fast": True}
    assert error.kind == "ReadTimeout" and error.status_code is None and error.attempts == 1
    assert server.vendor.count("POST", "/slow") == 1
    assert stats.transport_errors == 2


def test_dropped_connection_get_is_retried_post_is_ambiguous(server: Server) -> None:
    server.vendor.script("GET", "/obj", drop(), reply(200, {"id": "o1"}))
    server.vendor.script("POST", "/obj", then=drop())

    async def main() -> Any:
        async with session(server) as http:
            got = await http.json("GET", "/obj")
            with pytest.raises(AmbiguousWriteError) as caught:
                await http.request("POST", "/obj", json={"name": "x"})
            return got, caught.value

    got, error = run(main())
    assert got == {"id": "o1"}
    # What httpx raises when the peer closes before the declared Content-Length arrived:
    assert error.kind == "RemoteProtocolError"
    assert "peer closed connection" in error.message
    assert server.vendor.count("POST", "/obj") == 1


def test_connect_error_is_retried_even_for_post_because_nothing_was_sent() -> None:
    port = free_port()  # nothing listens there

    async def main() -> Any:
        async with session(f"http://127.0.0.1:{port}") as http:
            with pytest.raises(RetryableVendorError) as caught:
                await http.request("POST", "/objects", json={"a": 1})
            return caught.value, http.stats

    error, stats = run(main())
    assert type(error) is RetryableVendorError  # not ambiguous: the request never left
    assert error.kind == "ConnectError" and error.attempts == FAST.max_attempts
    assert stats.calls == FAST.max_attempts and stats.retries == FAST.max_attempts - 1


def test_unsupported_protocol_is_permanent() -> None:
    async def main() -> Any:
        async with session("ftp://127.0.0.1:1") as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("GET", "/x")
            return caught.value, http.stats

    error, stats = run(main())
    assert error.kind == "UnsupportedProtocol" and stats.calls == 1


def test_backoff_is_seeded_full_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4.0)
    first = [backoff_delay(policy, n, random.Random(7)) for n in range(1, 10)]
    second = [backoff_delay(policy, n, random.Random(7)) for n in range(1, 10)]
    assert first == second
    rng = random.Random(1)
    for attempt in range(1, 200):
        assert 0 <= backoff_delay(policy, attempt, rng) <= min(4.0, 0.5 * 2 ** (attempt - 1))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_sessions_with_the_same_seed_back_off_identically(server: Server) -> None:
    server.vendor.script("GET", "/x", then=reply(500, {}))

    async def delays(seed: int) -> list[float]:
        sleep = RecordingSleep()
        async with session(server, sleep=sleep, rng=random.Random(seed)) as http:
            with pytest.raises(RetryableVendorError):
                await http.request("GET", "/x")
        return sleep.delays

    assert run(delays(3)) == run(delays(3)) != run(delays(4))
