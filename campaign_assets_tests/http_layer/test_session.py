"""The session's own surface: the JSON helper, lifecycle, stats and errors that pickle."""

from __future__ import annotations

import json
import pickle

import pytest

from campaign_assets.services.http import (
    AmbiguousWriteError,
    PermanentVendorError,
    RateLimitedError,
    RetryableVendorError,
    ServiceStats,
)
from campaign_assets_tests.http_layer.vendor import (
    Server,
    reply,
    run,
    session,
)


def test_stats_metadata_is_plain_numbers_and_picklable() -> None:
    stats = ServiceStats(service="docs")
    stats.calls, stats.retries = 3, 1
    stats.record_attempt(10.0, 11.5)
    stats.record_attempt(10.5, 12.0)
    stats.record_failure("ambiguous")
    meta = stats.as_metadata()
    assert meta["seconds"] == 3.0 and meta["wall_seconds"] == 2.0 and meta["failures_ambiguous"] == 1
    assert all(type(v) in (int, float) for v in meta.values())
    assert json.loads(json.dumps(meta)) == meta
    assert pickle.loads(pickle.dumps(stats)) == stats


def test_errors_survive_pickling() -> None:
    error = RateLimitedError("canva", "too many", status_code=429, method="POST", path="/v1/designs",
                             attempts=6, retry_after=1.5)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is RateLimitedError and str(clone) == str(error)
    assert (clone.retry_after, clone.status_code, clone.path, clone.attempts, clone.retryable) == (
        1.5, 429, "/v1/designs", 6, True)
    ambiguous = pickle.loads(pickle.dumps(AmbiguousWriteError("asana", "lost", kind="ReadTimeout")))
    assert isinstance(ambiguous, RetryableVendorError) and ambiguous.kind == "ReadTimeout"


def test_json_helper_handles_empty_bodies_and_rejects_non_json(server: Server) -> None:
    server.vendor.script("DELETE", "/thing", then=reply(204))
    server.vendor.script("GET", "/empty", then=reply(200, raw=b""))
    server.vendor.script("GET", "/null", then=reply(200, raw=b"null"))
    server.vendor.script("GET", "/html", then=reply(200, raw=b"<html></html>", headers={"content-type": "text/html"}))

    async def main() -> None:
        async with session(server) as http:
            assert await http.json("DELETE", "/thing") is None
            assert await http.json("GET", "/empty") is None
            assert await http.json("GET", "/null") is None
            with pytest.raises(PermanentVendorError, match="expected a JSON body"):
                await http.json("GET", "/html")

    run(main())


def test_session_must_be_entered() -> None:
    http = session("http://127.0.0.1:1")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="outside 'async with'"):
            await http.request("GET", "/")

    run(main())
