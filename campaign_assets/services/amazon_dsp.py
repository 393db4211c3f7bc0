"""Amazon DSP (Amazon Ads API, DSP campaign management): orders and line items.

Followed: Amazon Ads API DSP reference (``/dsp/orders``, ``/dsp/lineItems``;
list with ``advertiserIdFilter`` / ``orderIdFilter`` and ``startIndex``/``count``,
answer ``{"totalResults", "response": [...]}``); every call carries
``Authorization: Bearer``, ``Amazon-Advertising-API-ClientId`` and
``Amazon-Advertising-API-Scope`` (the profile id); errors are
``{"code", "details"}``; throttling is HTTP 429 with ``Retry-After``. The
search tool found no copy of Amazon's DSP reference, so the exact body of a
line item (``budget.totalBudgetAmount``, ``deliveryActivationStatus``) is the
subset we need, written from the reference as we know it: check it against
the live API before the first real spend.

Line items are created ``INACTIVE`` (paused); live is ``ACTIVE``. Amazon DSP
deletes neither orders nor line items: ``delete_*`` archives
(``deliveryActivationStatus: ARCHIVED``) and answers False when the object
was already archived or is unknown. The marker is ``externalId``, a field
no customer sees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import Field

from campaign_assets.services.base import HttpClient
from campaign_assets.services.dsp import (
    DSPResource,
    LineItem,
    Order,
    amount_to_cents,
    cents_to_amount,
    check_status,
    is_not_found,
)
from campaign_assets.services.http import HttpSession, PermanentVendorError, VendorProfile
from campaign_assets.services.http.profiles import default_error_message, json_or_none, truncate

SERVICE = "amazon_dsp"
TO_VENDOR = {"paused": "INACTIVE", "live": "ACTIVE", "archived": "ARCHIVED"}
FROM_VENDOR = {v: k for k, v in TO_VENDOR.items()}
CONSOLE = "https://advertising.amazon.com/dsp"


def amazon_error_message(response: httpx.Response) -> str:
    """Amazon Ads' ``{"code": ..., "details": ...}``."""
    payload = json_or_none(response)
    if isinstance(payload, Mapping) and payload.get("details"):
        return truncate(f"{payload.get('code') or response.status_code}: {payload['details']}")
    return default_error_message(response)


PROFILE = VendorProfile(service=SERVICE, error_message=amazon_error_message)


def _when(day: dt.date, *, end: bool = False) -> str:
    return f"{day.isoformat()}T{'23:59:59' if end else '00:00:00'}Z"


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(str(value)[:10])


class HttpAmazonDSP(HttpClient):
    def __init__(self, http: HttpSession, advertiser_id: str, page_size: int = 100):
        super().__init__(http)
        self.advertiser_id = advertiser_id
        self.page_size = page_size

    def _order(self, record: Mapping[str, Any]) -> Order:
        order_id = str(record["orderId"])
        return Order(order_id, SERVICE, str(record.get("name") or ""), f"{CONSOLE}/orders/{order_id}")

    def _line(self, record: Mapping[str, Any]) -> LineItem:
        line_id = str(record["lineItemId"])
        return LineItem(
            line_id,
            str(record.get("orderId") or ""),
            SERVICE,
            str(record.get("name") or ""),
            FROM_VENDOR.get(str(record.get("deliveryActivationStatus")), "paused"),
            amount_to_cents((record.get("budget") or {}).get("totalBudgetAmount", 0)),
            _day(record["startDateTime"]),
            _day(record["endDateTime"]),
            f"{CONSOLE}/lineitems/{line_id}",
        )

    async def create_order(
        self, name: str, budget_cents: int, currency: str, start: dt.date, end: dt.date, *, marker: str
    ) -> Order:
        body = {
            "name": name,
            "advertiserId": self.advertiser_id,
            "externalId": marker,
            "currencyCode": currency,
            "startDateTime": _when(start),
            "endDateTime": _when(end, end=True),
            "budget": {"totalBudgetAmount": str(cents_to_amount(budget_cents))},
        }

        async def create() -> Order:
            created = await self.http.json("POST", "/dsp/orders", json=body)
            return self._order({**body, **created})

        return await self.http.create_once(create, lambda: self.find_order(marker=marker))

    async def find_order(self, *, marker: str) -> Order | None:
        async for record in self._pages("/dsp/orders", {"advertiserIdFilter": self.advertiser_id}):
            if record.get("externalId") == marker:
                return self._order(record)
        return None

    async def create_line_item(
        self,
        order_id: str,
        name: str,
        budget_cents: int,
        currency: str,
        start: dt.date,
        end: dt.date,
        *,
        marker: str,
    ) -> LineItem:
        body = {
            "orderId": order_id,
            "name": name,
            "externalId": marker,
            "lineItemType": "STANDARD_DISPLAY",
            "currencyCode": currency,
            "startDateTime": _when(start),
            "endDateTime": _when(end, end=True),
            "budget": {"totalBudgetAmount": str(cents_to_amount(budget_cents))},
            "deliveryActivationStatus": TO_VENDOR["paused"],
        }

        async def create() -> LineItem:
            created = await self.http.json("POST", "/dsp/lineItems", json=body)
            return self._line({**body, **created})

        return await self.http.create_once(create, lambda: self.find_line_item(order_id, marker=marker))

    async def find_line_item(self, order_id: str, *, marker: str) -> LineItem | None:
        async for record in self._pages("/dsp/lineItems", {"orderIdFilter": order_id}):
            if record.get("externalId") == marker:
                return self._line(record)
        return None

    async def get_line_item(self, line_item_id: str) -> LineItem | None:
        try:
            return self._line(await self.http.json("GET", f"/dsp/lineItems/{line_item_id}"))
        except PermanentVendorError as error:
            if is_not_found(error):
                return None
            raise

    async def set_status(self, line_item_id: str, status: str) -> LineItem:
        wanted = TO_VENDOR[check_status(status)]
        # Setting a status is idempotent: safe to resend after a lost response.
        record = await self.http.json(
            "PUT", f"/dsp/lineItems/{line_item_id}", json={"deliveryActivationStatus": wanted}, idempotent=True
        )
        return self._line(record)

    async def delete_line_item(self, line_item_id: str) -> bool:
        return await self._archive(f"/dsp/lineItems/{line_item_id}")

    async def delete_order(self, order_id: str) -> bool:
        return await self._archive(f"/dsp/orders/{order_id}")

    async def _archive(self, path: str) -> bool:
        """Amazon DSP cannot delete: archive. False when archived already or unknown."""
        try:
            current = await self.http.json("GET", path)
            if current.get("deliveryActivationStatus") == "ARCHIVED":
                return False
            await self.http.json("PUT", path, json={"deliveryActivationStatus": "ARCHIVED"}, idempotent=True)
        except PermanentVendorError as error:
            if is_not_found(error):
                return False
            raise
        return True

    async def _pages(self, path: str, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        start = 0
        while True:
            page = await self.http.json("GET", path, params={**params, "startIndex": start, "count": self.page_size})
            records = page.get("response") or []
            for record in records:
                yield record
            start += len(records)
            if not records or start >= int(page.get("totalResults") or 0):
                return


class AmazonDSPResource(DSPResource):
    """Amazon DSP orders and line items (local backend: records to traffic)."""

    SERVICE: ClassVar[str] = SERVICE
    DEFAULT_BASE_URL: ClassVar[str] = "https://advertising-api.amazon.com"

    client_id: str | None = Field(default=None, description="Amazon-Advertising-API-ClientId (the LwA app's id).")
    profile_id: str | None = Field(default=None, description="Amazon-Advertising-API-Scope: the DSP profile id.")
    advertiser_id: str | None = Field(default=None, description="DSP advertiser the orders belong to.")
    page_size: int = Field(default=100, ge=1, le=100, description="Records per page when listing.")

    def auth_headers(self) -> Mapping[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Amazon-Advertising-API-ClientId": self.client_id or "",
            "Amazon-Advertising-API-Scope": self.profile_id or "",
        }

    def vendor_profile(self) -> VendorProfile:
        return PROFILE

    def http_client(self, http: HttpSession) -> HttpAmazonDSP:
        if not (self.client_id and self.profile_id and self.advertiser_id):
            raise ValueError("AmazonDSPResource needs client_id, profile_id and advertiser_id with an access token")
        return HttpAmazonDSP(http, self.advertiser_id, self.page_size)
