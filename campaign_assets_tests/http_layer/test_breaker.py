"""The circuit breaker: a vendor that plainly went down costs the rest of the step nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
from typing import Any

import pytest

from campaign_assets_tests.support.ports import free_port

from campaign_assets.services.http import (
    AmbiguousWriteError,
    CircuitBreaker,
    CircuitOpenError,
    HttpSession,
    PermanentVendorError,
    RateLimitedError,
    RetryableVendorError,
    RetryPolicy,
    VendorError,
    VendorProfile,
    body_flag_classifier,
)
from campaign_assets_tests.http_layer.vendor import (
    FAST,
    TOKEN,
    Server,
    leaks,
    reply,
    run,
    session,
)

# --------------------------------------------------------------------------------------
# Circuit breaker: a vendor that plainly went down costs the rest of the step nothing
# --------------------------------------------------------------------------------------


class FakeClock:
    """An injectable monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def no_sleep(delay: float) -> None:
    await asyncio.sleep(0)


DOWN = reply(503, {"error": {"message": f"backend unavailable (key {TOKEN})"}})


async def outcomes(http: HttpSession, n: int, path: str = "/x", method: str = "GET") -> list[BaseException | None]:
    """``n`` requests one after another: the exception each raised, or None."""
    results: list[BaseException | None] = []
    for _ in range(n):
        try:
            await http.request(method, path)
            results.append(None)
        except VendorError as exc:
            results.append(exc)
    return results


def circuit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "circuit" in r.getMessage()]


def test_three_down_requests_open_the_circuit_and_the_rest_fail_fast_without_a_call(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="campaign_assets.http")
    server.vendor.script("GET", "/x", then=DOWN)
    server.vendor.script("GET", "/y", then=reply(200, {}))

    async def main() -> tuple[list[BaseException | None], list[BaseException | None], HttpSession]:
        async with session(server, sleep=no_sleep) as http:
            return await outcomes(http, 8), await outcomes(http, 2, "/y"), http

    first, other_path, http = run(main())
    exhausted, fast = first[:3], first[3:] + other_path
    assert all(type(e) is RetryableVendorError and e.attempts == FAST.max_attempts for e in exhausted)
    assert all(isinstance(e, CircuitOpenError) for e in fast), fast
    assert server.vendor.count() == 3 * FAST.max_attempts  # the vendor saw nothing more, on any path
    assert server.vendor.count("GET", "/y") == 0
    error = fast[0]
    assert isinstance(error, RetryableVendorError) and error.retryable  # items fall back locally
    assert (error.kind, error.status_code, error.attempts) == ("circuit_open", 503, 0)
    assert "not sent: circuit open" in str(error) and "HTTP 503" in str(error) and "backend unavailable" in str(error)
    meta = http.stats.as_metadata()
    assert (meta["circuit_opened"], meta["short_circuited"], meta["failures"]) == (1, 7, 3)
    assert http.breaker.state == "open"
    [line] = circuit_lines(caplog)  # one line when it opens, none per refused request
    assert "circuit open: 3 consecutive requests failed" in line and "30s" in line
    assert not any(leaks(r.getMessage()) for r in caplog.records)
    assert not any(leaks(str(e)) for e in fast)
    assert pickle.loads(pickle.dumps(error)).kind == "circuit_open"


def test_a_success_between_failures_resets_the_count(server: Server) -> None:
    server.vendor.script("GET", "/x", *[DOWN] * (2 * FAST.max_attempts), reply(200, {}),
                         then=DOWN)

    async def main() -> list[BaseException | None]:
        async with session(server, sleep=no_sleep) as http:
            return await outcomes(http, 6)

    result = run(main())
    assert result[2] is None
    assert [type(e).__name__ for e in result] == [
        "RetryableVendorError", "RetryableVendorError", "NoneType",
        "RetryableVendorError", "RetryableVendorError", "RetryableVendorError",
    ]  # two, a success, then three: the sixth opened it, none was refused


def test_transport_errors_count_as_down() -> None:
    """Nothing listens: connection refused on every attempt, three requests, then fail fast."""
    port = free_port()  # nothing listens there

    async def main() -> list[BaseException | None]:
        async with session(f"http://127.0.0.1:{port}", sleep=no_sleep) as http:
            result = await outcomes(http, 5)
            assert http.stats.calls == 3 * FAST.max_attempts
            return result

    result = run(main())
    assert [type(e) for e in result] == [RetryableVendorError] * 3 + [CircuitOpenError] * 2
    assert result[0].kind == "ConnectError" and result[3].status_code is None  # type: ignore[union-attr]


def test_401_opens_the_circuit_and_later_requests_get_the_same_refusal_without_a_call(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="campaign_assets.http")
    server.vendor.script("GET", "/v1/models", then=reply(
        401, {"error": {"message": f"Incorrect API key provided: {TOKEN}", "code": "invalid_api_key"}}))

    async def main() -> tuple[list[BaseException | None], HttpSession]:
        async with session(server, service="llm", sleep=no_sleep) as http:
            first = await outcomes(http, 1, "/v1/models")
            later = await outcomes(http, 3, "/v1/chat/completions", "POST")
            return first + later, http

    (first, *later), http = run(main())
    assert server.vendor.count() == 1
    assert isinstance(first, PermanentVendorError) and first.attempts == 1
    for error in later:
        assert type(error) is PermanentVendorError and not isinstance(error, CircuitOpenError)
        assert (error.status_code, error.kind, error.attempts) == (401, "http_401", 0)
        assert error.message.startswith(first.message) and "not sent: circuit open" in error.message
        assert (error.method, error.path) == ("POST", "/v1/chat/completions")
        assert not leaks(str(error))
    assert (http.stats.circuit_opened, http.stats.short_circuited) == (1, 3)
    [line] = circuit_lines(caplog)
    assert "the token was refused" in line and not leaks(line)


def test_slack_invalid_auth_in_a_200_body_opens_the_circuit(server: Server) -> None:
    server.vendor.script("POST", "/chat.postMessage", then=reply(200, {"ok": False, "error": "invalid_auth"}))

    async def main() -> list[BaseException | None]:
        async with session(server, service="slack", profile=VendorProfile("slack", classify=body_flag_classifier())) as http:
            return await outcomes(http, 3, "/chat.postMessage", "POST")

    result = run(main())
    assert server.vendor.count() == 1
    assert all(isinstance(e, PermanentVendorError) and "invalid_auth" in e.message for e in result)


def test_403_on_one_resource_does_not_open_the_circuit_but_a_run_of_them_does(server: Server) -> None:
    denied = reply(403, {"error": {"code": 403, "message": "The caller does not have permission"}})
    server.vendor.script("GET", "/files", denied, denied, reply(200, {}), then=denied)

    async def main() -> list[BaseException | None]:
        async with session(server, sleep=no_sleep) as http:
            return await outcomes(http, 7, "/files")

    result = run(main())
    assert server.vendor.count() == 6  # 403, 403, ok, then three 403s open it; the seventh is not sent
    assert result[2] is None and [e.attempts for e in result if e is not None] == [1, 1, 1, 1, 1, 0]
    assert all(isinstance(e, PermanentVendorError) and e.status_code == 403 for e in result if e is not None)


def test_404s_do_not_open_the_circuit(server: Server) -> None:
    server.vendor.script("GET", "/projects/42", then=reply(404, {"errors": [{"message": "Unknown object"}]}))

    async def main() -> tuple[list[BaseException | None], HttpSession]:
        async with session(server) as http:
            return await outcomes(http, 10, "/projects/42"), http

    result, http = run(main())
    assert server.vendor.count() == 10
    assert all(type(e) is PermanentVendorError and e.attempts == 1 for e in result)
    assert http.breaker.state == "closed" and http.stats.short_circuited == 0


def test_429s_with_retry_after_do_not_open_the_circuit(server: Server) -> None:
    limited = reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"})
    server.vendor.script("GET", "/x", then=limited)
    delays: list[float] = []

    async def instant(delay: float) -> None:
        delays.append(delay)

    async def main() -> tuple[list[BaseException | None], HttpSession]:
        async with session(server, sleep=instant) as http:
            return await outcomes(http, 5), http

    result, http = run(main())
    assert all(type(e) is RateLimitedError for e in result)
    assert server.vendor.count() == 5 * FAST.max_attempts  # every request spent its budget: the vendor is up
    assert len(delays) == 5 * (FAST.max_attempts - 1) and all(d >= 1.0 for d in delays)  # Retry-After was honoured
    assert http.breaker.state == "closed" and http.stats.circuit_opened == 0


def test_ambiguous_writes_do_not_open_the_circuit(server: Server) -> None:
    server.vendor.script("POST", "/things", then=DOWN)

    async def main() -> list[BaseException | None]:
        async with session(server, sleep=no_sleep) as http:
            return await outcomes(http, 4, "/things", "POST")

    result = run(main())
    assert all(type(e) is AmbiguousWriteError for e in result)  # each reconciled by its caller, not refused
    assert server.vendor.count() == 4


def test_half_open_after_the_cooldown_one_probe_that_succeeds_closes_it(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="campaign_assets.http")
    clock = FakeClock()
    server.vendor.script("GET", "/x", *[DOWN] * (3 * FAST.max_attempts), then=reply(200, {"ok": 1}))

    async def main() -> HttpSession:
        breaker = CircuitBreaker(cooldown_s=30.0, clock=clock)
        async with session(server, sleep=no_sleep, breaker=breaker) as http:
            await outcomes(http, 3)
            assert breaker.state == "open" and breaker.retry_in() == 30.0
            clock.advance(29.9)
            assert [type(e) for e in await outcomes(http, 1)] == [CircuitOpenError]
            sent = server.vendor.count()
            clock.advance(0.1)
            assert await http.json("GET", "/x") == {"ok": 1}  # the probe
            assert server.vendor.count() == sent + 1 and breaker.state == "closed"
            assert await outcomes(http, 3) == [None, None, None]
            return http

    http = run(main())
    assert (http.stats.circuit_opened, http.stats.short_circuited) == (1, 1)
    lines = circuit_lines(caplog)
    assert len(lines) == 3
    assert "circuit open" in lines[0] and "half-open" in lines[1] and "circuit closed" in lines[2]


def test_a_failed_probe_reopens_it_for_another_cooldown(server: Server) -> None:
    clock = FakeClock()
    server.vendor.script("GET", "/x", then=DOWN)

    async def main() -> HttpSession:
        breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10.0, clock=clock)
        async with session(server, sleep=no_sleep, breaker=breaker) as http:
            await outcomes(http, 1)
            clock.advance(10)
            [probe] = await outcomes(http, 1)
            assert type(probe) is RetryableVendorError and probe.attempts == FAST.max_attempts
            assert breaker.state == "open" and breaker.opened == 2
            clock.advance(9)
            assert [type(e) for e in await outcomes(http, 2)] == [CircuitOpenError] * 2
            return http

    http = run(main())
    assert server.vendor.count() == 2 * FAST.max_attempts
    assert (http.stats.circuit_opened, http.stats.short_circuited) == (2, 2)


class Gate:
    """A shared_slot that holds the next request(s) until the test opens it: no timing involved."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    @contextlib.asynccontextmanager
    async def __call__(self) -> Any:
        self.entered.set()
        await self.opened.wait()
        yield


def test_one_breaker_shared_by_two_sessions_stops_a_request_waiting_for_its_slot(server: Server) -> None:
    """Chat and images both call OpenAI: the opener may hand both sessions one breaker."""
    server.vendor.script("POST", "/chat/completions", then=DOWN)
    server.vendor.script("POST", "/images/generations", then=reply(200, {}))

    async def main() -> None:
        breaker = CircuitBreaker()
        gate = Gate()
        async with session(server, service="llm", sleep=no_sleep, breaker=breaker) as chat, session(
            server, service="images", breaker=breaker, shared_slot=gate
        ) as images:
            waiting = asyncio.ensure_future(images.request("POST", "/images/generations", idempotent=True))
            await gate.entered.wait()  # admitted while closed, now waiting for a slot
            for _ in range(3):
                with pytest.raises(RetryableVendorError):
                    await chat.request("POST", "/chat/completions", idempotent=True)
            assert breaker.state == "open"
            gate.opened.set()
            with pytest.raises(CircuitOpenError) as caught:
                await waiting
            assert caught.value.attempts == 0 and caught.value.service == "images"
            assert (chat.stats.circuit_opened, images.stats.short_circuited) == (1, 1)

    run(main())
    assert server.vendor.count("POST", "/images/generations") == 0


def test_a_request_backing_off_is_not_retried_once_the_circuit_opens(server: Server) -> None:
    server.vendor.script("GET", "/x", then=DOWN)

    async def main() -> None:
        resume = asyncio.Event()
        backing_off = asyncio.Event()
        breaker = CircuitBreaker(failure_threshold=1)

        async def held_sleep(delay: float) -> None:
            backing_off.set()
            await resume.wait()

        async with session(server, sleep=held_sleep, breaker=breaker) as slow, session(
            server, sleep=no_sleep, breaker=breaker, policy=RetryPolicy(max_attempts=1)
        ) as fast:
            pending = asyncio.ensure_future(slow.request("GET", "/x"))
            await backing_off.wait()  # one attempt failed, now in backoff
            with pytest.raises(RetryableVendorError):
                await fast.request("GET", "/x")  # opens it
            resume.set()
            with pytest.raises(CircuitOpenError) as caught:
                await pending
            assert caught.value.attempts == 1 and "not retried" in str(caught.value)

    run(main())
    assert server.vendor.count() == 2  # the backing-off request never sent its retry


def test_circuit_breaker_unit() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5.0, clock=clock)
    down = RetryableVendorError("v", "boom", status_code=500)

    early, _ = breaker.admit()
    assert early is not None
    for _ in range(2):
        ticket, _ = breaker.admit()
        assert ticket is not None
        assert breaker.record(ticket, "neutral") is None  # ambiguous: no effect
        breaker.record(ticket, "down", down)
    assert breaker.state == "open" and breaker.reason is down and not breaker.permanent
    assert breaker.record(early, "success") is None and breaker.state == "open"  # stale outcome ignored
    assert breaker.admit() == (None, False) and not breaker.allows_retry(early)

    clock.advance(5)
    probe, became_half_open = breaker.admit()
    assert probe is not None and probe.probe and became_half_open
    assert breaker.admit() == (None, False)  # one probe at a time
    breaker.release(probe)  # cancelled: the next request probes
    probe, became_half_open = breaker.admit()
    assert probe is not None and probe.probe and not became_half_open
    assert breaker.record(probe, "neutral") is None and breaker.state == "half_open"
    probe, _ = breaker.admit()
    assert probe is not None and breaker.record(probe, "answered") == "closed"
    assert breaker.state == "closed" and breaker.opened == 1

    auth = PermanentVendorError("v", "revoked", status_code=401)
    ticket, _ = breaker.admit()
    assert ticket is not None and breaker.record(ticket, "unauthorized", auth) == "opened"
    assert breaker.permanent and breaker.opened == 2
    clock.advance(5)
    probe, _ = breaker.admit()
    assert probe is not None and breaker.record(probe, "refused", auth) == "reopened"

    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
