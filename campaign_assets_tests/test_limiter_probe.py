"""AIMD probing: a vendor tier below our cap converges instead of storming.

The limiter starts at the cap (the vendor's published limit); the sandbox here
is configured at a *lower* concurrency limit, as an account on a lower tier
would be. Assertions are counts of the vendor's answers (429s among calls) and
the limiter's own state, never durations.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_assets.logic.prompts import PromptRequest
from campaign_assets.sandbox.config import LimitRule
from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.http import AdaptiveLimiter, HttpSession, RetryPolicy
from campaign_assets.services.llm import LLMResource

from .conftest import CLIENT_SANDBOX

REQUEST = PromptRequest("brief", "You write briefs.", "Write the brief.", max_tokens=20)


def test_limiter_converges_below_the_cap_at_a_lower_vendor_tier(sandbox: SandboxServer, tmp_path: Path) -> None:
    vendor_limit, cap, calls = 6, 16, 400
    # 20 ms per completion (scale 0.002 of 10 s is not the point: only the ordering matters).
    sandbox.reset(**(CLIENT_SANDBOX | {"scale": 0.002}),
                  limits={"openai": [LimitRule(name="tier", max_concurrency=vendor_limit).model_dump(mode="json")]})
    resource = LLMResource(api_key="sandbox-openai-token", base_url=f"{sandbox.url}/openai/v1")
    limiter = AdaptiveLimiter(cap)

    async def main() -> None:
        async with HttpSession(
            service="llm",
            base_url=resource.base_url or "",
            headers=resource.auth_headers(),
            secrets=[resource.api_key],
            cap=cap,
            policy=RetryPolicy(max_attempts=20, backoff_base_s=0.001, backoff_max_s=0.01, timeout_s=60.0),
            profile=resource.vendor_profile(),
            limiter=limiter,
        ) as http:
            client = resource.http_client(http)
            await asyncio.gather(*(client.complete(REQUEST) for _ in range(calls)))

    asyncio.run(main())
    log = [c for c in sandbox.state()["calls"] if c["vendor"] == "openai"]
    successes = [c for c in log if not c.get("rate_limited")]
    assert len(successes) == calls  # every completion made exactly once, the 429s retried
    # Starting at 16 against a limit of 6 costs a burst of 429s; after it, few.
    settled = log[len(log) // 4:]
    settled_429 = sum(bool(c.get("rate_limited")) for c in settled)
    assert settled_429 <= 0.05 * len(settled), (settled_429, len(settled))
    # It learned the tier (halved at least twice) and stayed below the cap: a fixed cap
    # of 16 would have been answered 429 on most requests. No count of our own requests
    # in flight is asserted: ours includes responses the event loop has not read yet, so
    # on a loaded machine it overstates what the vendor sees (and the vendor, rightly,
    # does not refuse); only the vendor's answers are counted.
    assert limiter.decreases >= 2 and limiter.limit < cap, limiter
    assert len(log) - calls <= 0.15 * calls, (len(log) - calls, calls)


def test_ceiling_slows_the_probe_only_where_the_vendor_refused() -> None:
    limiter = AdaptiveLimiter(16)

    def burst(n: int) -> None:
        slots = [limiter._take() for _ in range(n)]  # n requests in flight at once
        limiter.on_rate_limited(limiter.epoch)
        for _ in slots:
            limiter.release()

    burst(9)  # refused with 9 in flight: halve, nothing confirmed yet
    assert (limiter.limit, limiter.ceiling) == (8, None)
    burst(9)  # refused again at 9: the vendor's limit is 8
    assert (limiter.limit, limiter.ceiling) == (4, 9)
    successes = 0
    while limiter.limit < 8:
        limiter.on_success()
        successes += 1
    assert successes == 4 + 5 + 6 + 7  # up to the last good number: the usual pace
    while limiter.limit < 9:
        limiter.on_success()
        successes += 1
    assert successes == 22 + 4 * 8  # up to the refused number: four times slower
    assert limiter.ceiling == 9
    for _ in range(9):
        limiter.on_success()
    assert (limiter.limit, limiter.ceiling) == (10, None)  # past it without a refusal: forgotten
    burst(12)  # a refusal above a forgotten ceiling is a new first refusal
    assert limiter.ceiling is None


def test_signal_with_nothing_in_flight_teaches_no_ceiling() -> None:
    limiter = AdaptiveLimiter(8)
    for _ in range(4):
        limiter.on_rate_limited()
    assert (limiter.limit, limiter.ceiling) == (1, None)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 32), st.lists(st.sampled_from(["take", "release", "ok", "429", "stale429"]), max_size=300))
def test_limit_stays_between_one_and_the_cap(cap: int, events: list[str]) -> None:
    limiter = AdaptiveLimiter(cap)
    for event in events:
        if event == "take":
            limiter._take()
        elif event == "release":
            limiter.release()
        elif event == "ok":
            limiter.on_success()
        elif event == "429":
            limiter.on_rate_limited(limiter.epoch)
        else:
            limiter.on_rate_limited(limiter.epoch - 1)
        assert 1 <= limiter.limit <= cap
        assert limiter.ceiling is None or limiter.ceiling >= 1
        assert limiter.in_flight >= 0
