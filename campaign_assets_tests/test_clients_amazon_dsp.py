"""The Amazon DSP HTTP backend against the vendor sandbox: created paused, live,
read back, exactly once on a lost response at every write, 429 waited on, a
revoked token permanent, teardown. Scenarios in ``dsp_clients``."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.amazon_dsp import AmazonDSPResource
from campaign_assets_tests import dsp_clients as dc
import httpx

VENDOR = dc.Vendor(
    name="amazon-dsp",
    resource=AmazonDSPResource,
    fields={"client_id": "amzn1.application-oa2-client.test", "profile_id": "3000000000000001", "advertiser_id": "4000000000000001"},
    mount="/amazon-dsp",
    order_create="POST /dsp/orders",
    line_create="POST /dsp/lineItems",
    line_update="PUT /dsp/lineItems/{lineItemId}",
    line_kind="lineItem",
    revoked_message="UNAUTHORIZED",
)
WRITES = [VENDOR.order_create, VENDOR.line_create, VENDOR.line_update]


def test_created_paused_then_live_and_read_back(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.created_paused_then_live_and_read_back(VENDOR, sandbox, tmp_path)


def test_every_call_carries_client_id_and_scope(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Without a profile (the scope) nothing is sent; the sandbox refuses a call without the header."""
    with pytest.raises(ValueError, match="profile_id"):
        dc.run(VENDOR, sandbox, tmp_path, lambda client: dc.order_and_line(client), profile_id="")
    assert dc.calls(sandbox, VENDOR) == []
    import httpx

    answer = httpx.get(f"{sandbox.url}/amazon-dsp/dsp/orders", headers={"Authorization": "Bearer t"})
    assert answer.status_code == 401 and answer.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("endpoint", WRITES)
def test_lost_response_leaves_exactly_one(sandbox: SandboxServer, tmp_path: Path, endpoint: str) -> None:
    dc.lost_response_is_exactly_once(VENDOR, sandbox, tmp_path, endpoint)


def test_rate_limit_is_waited_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.rate_limit_is_waited_on(VENDOR, sandbox, tmp_path)


def test_revoked_token_is_permanent(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.revoked_token_is_permanent(VENDOR, sandbox, tmp_path)


def test_teardown_pauses_then_archives(sandbox: SandboxServer, tmp_path: Path) -> None:
    assert dc.teardown_pauses_then_removes(VENDOR, sandbox, tmp_path) == [True, False, True, False]

