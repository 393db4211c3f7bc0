"""DSP activation, shared by the three DSPs: the normalized ``Order`` and
``LineItem``, the local backend (one ``LocalDSP`` per DSP: JSON records to
traffic by hand), and what the HTTP backends share.

The vendors' own modules: ``services/amazon_dsp.py`` (orders and line items),
``services/trade_desk.py`` (campaigns and ad groups), ``services/dv360.py``
(insertion orders and line items). Every backend satisfies ``protocols.DSP``:
line items are always created paused (or draft, in the vendor's terms),
``set_status`` is idempotent, and a ``delete_*`` returns True (deleted or
archived now) / False (already gone or archived).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

from campaign_assets.services.base import ServiceResource
from campaign_assets.services.http import PermanentVendorError
from campaign_assets.services.local import LocalClient

Status = Literal["paused", "live", "archived"]
STATUSES: tuple[Status, ...] = ("paused", "live", "archived")

# The spec's DSP names (``channels[].dsp``) -> the resource key / service name.
DSP_SERVICES: Mapping[str, str] = {"amazon": "amazon_dsp", "trade_desk": "trade_desk", "dv360": "dv360"}


@dataclass(frozen=True)
class Order:
    order_id: str
    dsp: str
    name: str
    url: str


@dataclass(frozen=True)
class LineItem:
    line_item_id: str
    order_id: str
    dsp: str
    name: str
    status: str  # paused | live | archived
    budget_cents: int
    start: dt.date
    end: dt.date
    url: str


def check_status(status: str) -> Status:
    if status not in STATUSES:
        raise ValueError(f"unknown line item status {status!r}: one of {', '.join(STATUSES)}")
    return status  # type: ignore[return-value]


# ---- money, to the cent ---------------------------------------------------------
def cents_to_amount(cents: int) -> Decimal:
    """Cents as a currency amount with two decimals (what TTD and Amazon take)."""
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def amount_to_cents(amount: Any) -> int:
    """A vendor's decimal amount (number or string) back to cents."""
    return int((Decimal(str(amount)) * 100).to_integral_value(ROUND_HALF_UP))


def cents_to_micros(cents: int) -> int:
    """DV360 budgets are in micros of the advertiser's currency (1 unit = 1,000,000)."""
    return cents * 10_000


def micros_to_cents(micros: Any) -> int:
    return int((Decimal(str(micros)) / 10_000).to_integral_value(ROUND_HALF_UP))


def is_not_found(error: PermanentVendorError) -> bool:
    return error.status_code == 404


# ---- the local backend ----------------------------------------------------------
def _local_id(prefix: str, marker: str) -> str:
    return f"{prefix}-{hashlib.sha256(marker.encode()).hexdigest()[:10]}"


class LocalDSP(LocalClient):
    """One DSP's orders and line items as JSON records under ``<service>/``,
    ready to traffic by hand. Status changes are kept on the record, so a
    read-back tells what the record says."""

    def __init__(self, service: str, out_dir: Path):
        super().__init__(service, out_dir)

    def _url(self, kind: str, object_id: str) -> str:
        return self._object_path(kind, object_id).resolve().as_uri()

    def _order(self, record: Mapping[str, Any]) -> Order:
        return Order(record["id"], self.service, record["name"], self._url("orders", record["id"]))

    def _line(self, record: Mapping[str, Any]) -> LineItem:
        return LineItem(
            record["id"],
            record["order_id"],
            self.service,
            record["name"],
            record["status"],
            int(record["budget_cents"]),
            dt.date.fromisoformat(record["start"]),
            dt.date.fromisoformat(record["end"]),
            self._url("line-items", record["id"]),
        )

    async def create_order(
        self, name: str, budget_cents: int, currency: str, start: dt.date, end: dt.date, *, marker: str
    ) -> Order:
        order_id = _local_id("order", marker)
        record = dict(
            id=order_id, name=name, budget_cents=budget_cents, currency=currency,
            start=start.isoformat(), end=end.isoformat(), marker=marker, status="paused",
        )
        async with self.call("POST order"):
            self.put("orders", order_id, record)
        return self._order(record)

    async def find_order(self, *, marker: str) -> Order | None:
        async with self.call("GET orders"):
            found = self.find("orders", marker)
        return self._order(found) if found else None

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
        line_item_id = _local_id("line", marker)
        record = dict(
            id=line_item_id, order_id=order_id, name=name, budget_cents=budget_cents, currency=currency,
            start=start.isoformat(), end=end.isoformat(), marker=marker, status="paused",
        )
        async with self.call("POST line item"):
            self.put("line-items", line_item_id, record)
        return self._line(record)

    async def find_line_item(self, order_id: str, *, marker: str) -> LineItem | None:
        async with self.call("GET line items"):
            found = self.find("line-items", marker)
        return self._line(found) if found and found["order_id"] == order_id else None

    async def get_line_item(self, line_item_id: str) -> LineItem | None:
        async with self.call("GET line item"):
            found = self.get("line-items", line_item_id)
        return self._line(found) if found else None

    async def set_status(self, line_item_id: str, status: str) -> LineItem:
        status = check_status(status)
        async with self.call("PATCH line item status"):
            record = self.get("line-items", line_item_id)
            if record is None:
                raise LookupError(f"Unknown line item: {line_item_id}")
            if record["status"] == "archived" and status != "archived":
                raise ValueError(f"line item {line_item_id} is archived")
            if record["status"] != status:
                record["status"] = status
                self.put("line-items", line_item_id, record)
        return self._line(record)

    async def delete_line_item(self, line_item_id: str) -> bool:
        async with self.call("DELETE line item"):
            return self.remove("line-items", line_item_id)

    async def delete_order(self, order_id: str) -> bool:
        async with self.call("DELETE order"):
            return self.remove("orders", order_id)


class DSPResource(ServiceResource):
    """What the three DSP resources share: the local backend (records under
    ``<SERVICE>/``). Subclasses add the vendor's HTTP backend."""

    def local_client(self, out_dir: Path) -> LocalDSP:
        return LocalDSP(self.SERVICE, out_dir)
