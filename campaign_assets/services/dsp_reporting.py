"""DSP *reporting* (issue #16): a line item's impressions, clicks and spend on one day, from each
DSP's own reporting API. Campaign management (orders, line items) is another API and another module
(``services/dsp.py``); nothing here creates or changes a line item.

Every DSP reports through an **asynchronous report job**: ask for a report, poll until it is done,
download the file. One module, three vendors, each a ``ServiceResource`` with a local backend and an
HTTP backend that satisfy ``protocols.DSPReporting``:

- **Amazon DSP** (``AmazonReportingResource``, service ``amazon_reporting``): Amazon Ads API
  *reporting v3* (advertising.amazon.com/API/docs/en-us/guides/reporting/v3/get-started):
  ``POST /reporting/reports`` (content type ``application/vnd.createasyncreportrequest.v3+json``;
  ``configuration`` {adProduct ``DEMAND_SIDE_PLATFORM``, reportTypeId ``dspLineItem``, groupBy
  ``lineItem``, timeUnit ``DAILY``, columns, filters, format ``GZIP_JSON``}) answers ``{reportId,
  status: PENDING}``; ``GET /reporting/reports/{reportId}`` until ``COMPLETED`` (``url``) or
  ``FAILED`` (``failureReason``); the file is gzipped JSON rows. Headers
  ``Amazon-Advertising-API-ClientId`` and ``-Scope`` (the DSP account). A report asked for twice
  is refused **425** "The Request is a duplicate of : <reportId>": a create whose response was lost
  is resolved from that answer (``create_once``'s find asks again and reads the 425).
- **The Trade Desk** (``TradeDeskReportingResource``, service ``ttd_reporting``): MyReports API
  v3 (partner portal "MyReports API"; auth header ``TTD-Auth``): ``POST
  /v3/myreports/reportschedule`` (a ``ReportFrequency: Once`` schedule of a template, a custom date
  range, advertiser filter), then ``POST /v3/myreports/reportexecution/query/advertisers`` until the
  execution is ``Complete`` with a ``ReportDeliveries[].DownloadURL`` (CSV). Errors ``{"Message",
  "ErrorDetails"}``. A lost schedule create is found by its name (the marker's tag) with ``POST
  /v3/myreports/reportschedule/query``. The partner portal is not public: paths and fields follow
  what open-source TTD clients use; the sandbox emulates exactly those.
- **DV360** (``DV360ReportingResource``, service ``dv360_reporting``): Bid Manager API v2
  (developers.google.com/bid-manager/reference/rest/v2): ``POST /v2/queries`` (metadata.title,
  dataRange ``CUSTOM_DATES``, params type ``STANDARD``, groupBys ``FILTER_DATE`` and
  ``FILTER_LINE_ITEM``, metrics ``METRIC_IMPRESSIONS``, ``METRIC_CLICKS``,
  ``METRIC_REVENUE_ADVERTISER``), ``POST /v2/queries/{queryId}:run`` (a ``Report``), ``GET
  /v2/queries/{queryId}/reports/{reportId}`` until ``metadata.status.state`` is ``DONE``, then the
  CSV at ``metadata.googleCloudStoragePath``. Google's error shape, 429 without Retry-After. A lost
  query create is found by title in ``GET /v2/queries``; a lost run in ``GET
  /v2/queries/{queryId}/reports``.

Exactly once: a report job is read-only at the vendor (it changes no delivery), but asking twice
wastes the vendor's report quota, so each create goes through ``create_once`` with a deterministic
name (``report_name``: campaign, DSP, day). What lands in ``performance_daily`` is upserted per
(source, line item, day): fetching a day again replaces its rows.

The **local backend** computes ``logic/delivery.media_delivery`` from each line item's planned
budget for the day (``LineItemQuery.planned_cents``) and writes the report it would have downloaded
under ``<service>/reports/``. The sandbox uses the same model, so offline, sandbox and tests agree.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import Field

from campaign_assets.logic.delivery import media_delivery
from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import (
    HttpSession,
    PermanentVendorError,
    VendorProfile,
    default_classify,
    default_error_message,
)
from campaign_assets.services.http.profiles import json_or_none, truncate
from campaign_assets.services.local import LocalClient

DSPS = ("amazon", "trade_desk", "dv360")  # the spec's ``dsp`` values


@dataclass(frozen=True)
class LineItemQuery:
    """A line item to report on. ``planned_cents``: its planned budget for the day, which only the
    local backend reads (a vendor knows its own line items' budgets)."""

    line_item_id: str
    channel: str
    planned_cents: int = 0


@dataclass(frozen=True)
class LineItemDay:
    """One line item's delivery on one day, as its DSP reported it."""

    line_item_id: str
    day: dt.date
    impressions: int
    clicks: int
    spend_cents: int


class ReportFailedError(PermanentVendorError):
    """The vendor ended the report job as failed (its reason is the message)."""


class ReportTimeoutError(PermanentVendorError):
    """The report job was still running when the client stopped waiting."""


def report_name(campaign_key: str, dsp: str, day: dt.date) -> str:
    """The deterministic name of one day's report (what a lost create is found by)."""
    tag = hashlib.sha256(f"{campaign_key}|{dsp}|{day.isoformat()}".encode()).hexdigest()[:16]
    return f"campaign-assets {dsp} {day.isoformat()} ca-{tag}"


def cents(amount: Any) -> int:
    """A currency amount as the vendors report it (a number or a numeric string) in whole cents."""
    return round(float(amount or 0) * 100)


def _rows_by_item(rows: Sequence[LineItemDay], wanted: Sequence[LineItemQuery], day: dt.date) -> list[LineItemDay]:
    """One row per wanted line item (summed if a report split one; zeros when it delivered nothing)."""
    totals = {q.line_item_id: [0, 0, 0] for q in wanted}
    for row in rows:
        if row.line_item_id in totals and row.day == day:
            acc = totals[row.line_item_id]
            acc[0] += row.impressions
            acc[1] += row.clicks
            acc[2] += row.spend_cents
    return [LineItemDay(item, day, *acc) for item, acc in totals.items()]


# ---- local ------------------------------------------------------------------------------------------------------
class LocalDSPReporting(LocalClient):
    """The delivery model (``media_delivery``) for each line item's planned budget; the report it would
    have downloaded is written to ``<service>/reports/<day>.json``."""

    def __init__(self, service: str, out_dir: Path):
        super().__init__(service, out_dir)

    async def line_item_delivery(
        self, line_items: Sequence[LineItemQuery], day: dt.date, *, name: str = ""
    ) -> list[LineItemDay]:
        async with self.call("report"):
            rows = []
            for item in line_items:
                d = media_delivery(item.line_item_id, day, item.planned_cents, item.channel)
                rows.append(LineItemDay(item.line_item_id, day, d.impressions, d.clicks, d.spend_cents))
            self.put("reports", day.isoformat(), {"name": name, "day": day.isoformat(),
                                                  "rows": [r.__dict__ for r in rows]})
        return rows


# ---- shared HTTP pieces ---------------------------------------------------------------------------------------------
class _ReportClient(HttpClient):
    def __init__(self, http: HttpSession, poll_interval_s: float, report_timeout_s: float):
        super().__init__(http)
        self.poll_interval_s = poll_interval_s
        self.report_timeout_s = report_timeout_s

    async def _poll(self, read: Any, done: Any, failed: Any, what: str) -> Any:
        """Read the job until ``done(job)`` (returned) or ``failed(job)`` (a reason: raised)."""
        deadline = time.monotonic() + self.report_timeout_s
        while True:
            job = await read()
            if done(job):
                return job
            reason = failed(job)
            if reason:
                raise ReportFailedError(self.service, f"{what} failed: {reason}", kind="report_failed")
            if time.monotonic() >= deadline:
                raise ReportTimeoutError(
                    self.service, f"{what} still running after {self.report_timeout_s:.0f}s", kind="report_timeout"
                )
            await asyncio.sleep(self.poll_interval_s)

    async def _download(self, url: str) -> bytes:
        return (await self.http.request("GET", url)).content


# ---- Amazon Ads reporting v3 ---------------------------------------------------------------------------------------
AMAZON_CREATE_TYPE = "application/vnd.createasyncreportrequest.v3+json"
_DUPLICATE = re.compile(r"duplicate of\s*:?\s*([A-Za-z0-9-]+)", re.IGNORECASE)


def amazon_error_message(response: httpx.Response) -> str:
    """``{"code", "detail"}`` (v3 reporting) or ``{"code", "details"}`` (older APIs)."""
    payload = json_or_none(response)
    if isinstance(payload, Mapping):
        detail = payload.get("detail") or payload.get("details") or payload.get("message")
        if detail:
            return truncate(f"{payload.get('code') or response.status_code}: {detail}")
    return default_error_message(response)


class HttpAmazonReporting(_ReportClient):
    """Amazon Ads reporting v3, DSP line item report (``dspLineItem``)."""

    COLUMNS: ClassVar[list[str]] = ["date", "lineItemId", "impressions", "clickThroughs", "totalCost"]

    async def line_item_delivery(
        self, line_items: Sequence[LineItemQuery], day: dt.date, *, name: str = ""
    ) -> list[LineItemDay]:
        if not line_items:
            return []
        body = {
            "name": name or f"campaign-assets {day.isoformat()}",
            "startDate": day.isoformat(),
            "endDate": day.isoformat(),
            "configuration": {
                "adProduct": "DEMAND_SIDE_PLATFORM",
                "reportTypeId": "dspLineItem",
                "groupBy": ["lineItem"],
                "columns": self.COLUMNS,
                "filters": [{"field": "lineItemId", "values": [q.line_item_id for q in line_items]}],
                "timeUnit": "DAILY",
                "format": "GZIP_JSON",
            },
        }

        async def create() -> str:
            try:
                created = await self.http.json(
                    "POST", "/reporting/reports", json=body, headers={"Content-Type": AMAZON_CREATE_TYPE}
                )
            except PermanentVendorError as error:
                duplicate = _DUPLICATE.search(error.message) if error.status_code == 425 else None
                if duplicate is None:
                    raise
                return duplicate.group(1)  # asked before (a lost response): that report is ours
            return str(created["reportId"])

        async def find() -> str | None:
            try:
                return await create()  # a 425 names the report the lost create made
            except PermanentVendorError:
                return None

        report_id = await self.http.create_once(create, find)
        job = await self._poll(
            lambda: self.http.json("GET", f"/reporting/reports/{report_id}"),
            lambda j: j.get("status") == "COMPLETED",
            lambda j: j.get("failureReason") or "FAILED" if j.get("status") == "FAILED" else None,
            f"Amazon report {report_id}",
        )
        raw = await self._download(str(job["url"]))
        records = json.loads(gzip.decompress(raw))
        rows = [
            LineItemDay(str(r["lineItemId"]), dt.date.fromisoformat(str(r["date"])[:10]), int(r.get("impressions") or 0),
                        int(r.get("clickThroughs") or 0), cents(r.get("totalCost")))
            for r in records
        ]
        return _rows_by_item(rows, line_items, day)


# ---- The Trade Desk MyReports ----------------------------------------------------------------------------------------
def ttd_error_message(response: httpx.Response) -> str:
    """``{"Message": ..., "ErrorDetails": [{"Property", "Reasons": [...]}]}``."""
    payload = json_or_none(response)
    if isinstance(payload, Mapping) and payload.get("Message"):
        details = [
            f"{d.get('Property')}: {'; '.join(d.get('Reasons') or [])}"
            for d in payload.get("ErrorDetails") or [] if isinstance(d, Mapping)
        ]
        return truncate(" ".join([str(payload["Message"]), *details]))
    return default_error_message(response)


class HttpTradeDeskReporting(_ReportClient):
    """The Trade Desk MyReports v3: a one-time report schedule, its execution, the CSV."""

    def __init__(self, http: HttpSession, poll_interval_s: float, report_timeout_s: float,
                 advertiser_id: str | None, template_id: str | None):
        super().__init__(http, poll_interval_s, report_timeout_s)
        self.advertiser_id = advertiser_id or ""
        self.template_id = template_id or ""

    async def line_item_delivery(
        self, line_items: Sequence[LineItemQuery], day: dt.date, *, name: str = ""
    ) -> list[LineItemDay]:
        if not line_items:
            return []
        schedule_name = name or f"campaign-assets {day.isoformat()}"
        body = {
            "ReportScheduleName": schedule_name,
            "ReportTemplateId": self.template_id,
            "ReportFileFormat": "CSV",
            "ReportDateRange": "Custom",
            "ReportStartDateInclusive": f"{day.isoformat()}T00:00:00",
            "ReportEndDateExclusive": f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00",
            "TimeZone": "UTC",
            "ReportDateFormat": "International",
            "ReportNumericFormat": "International",
            "IncludeHeaders": True,
            "ReportFrequency": "Once",
            "AdvertiserFilters": [self.advertiser_id] if self.advertiser_id else [],
            "AdGroupFilters": [q.line_item_id for q in line_items],  # TTD's line item is the ad group
        }

        async def create() -> str:
            return str((await self.http.json("POST", "/v3/myreports/reportschedule", json=body))["ReportScheduleId"])

        async def find() -> str | None:
            found = await self.http.json(
                "POST", "/v3/myreports/reportschedule/query",
                json={"NameContains": schedule_name, "PageStartIndex": 0, "PageSize": 100}, idempotent=True,
            )
            match = [r for r in found.get("Result") or [] if r.get("ReportScheduleName") == schedule_name]
            return str(match[0]["ReportScheduleId"]) if match else None

        schedule_id = await self.http.create_once(create, find)

        async def execution() -> dict[str, Any]:
            page = await self.http.json(
                "POST", "/v3/myreports/reportexecution/query/advertisers",
                json={"AdvertiserIds": [self.advertiser_id], "ReportScheduleIds": [int(schedule_id) if schedule_id.isdigit() else schedule_id],
                      "PageStartIndex": 0, "PageSize": 10},
                idempotent=True,  # a query: reads only
            )
            runs = page.get("Result") or []
            return runs[0] if runs else {"ReportExecutionState": "Pending"}

        job = await self._poll(
            execution,
            lambda j: j.get("ReportExecutionState") == "Complete",
            lambda j: j.get("ReportExecutionState") if j.get("ReportExecutionState") in ("Failed", "Cancelled") else None,
            f"TTD report schedule {schedule_id}",
        )
        text = (await self._download(str(job["ReportDeliveries"][0]["DownloadURL"]))).decode("utf-8-sig")
        rows = [
            LineItemDay(r["Ad Group Id"], dt.date.fromisoformat(r["Date"][:10]), int(float(r["Impressions"] or 0)),
                        int(float(r["Clicks"] or 0)), cents(r["Advertiser Cost (Adv Currency)"]))
            for r in csv.DictReader(io.StringIO(text))
        ]
        return _rows_by_item(rows, line_items, day)


# ---- DV360: Bid Manager API v2 -----------------------------------------------------------------------------------------
def google_error_message(response: httpx.Response) -> str:
    payload = json_or_none(response)
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if isinstance(error, Mapping) and error.get("message"):
        return truncate(f"{error.get('status') or error.get('code')}: {error['message']}")
    return default_error_message(response)


def _gdate(day: dt.date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


class HttpDV360Reporting(_ReportClient):
    """Bid Manager API v2: a one-time query per day, run, polled, its CSV read."""

    async def line_item_delivery(
        self, line_items: Sequence[LineItemQuery], day: dt.date, *, name: str = ""
    ) -> list[LineItemDay]:
        if not line_items:
            return []
        title = name or f"campaign-assets {day.isoformat()}"
        query = {
            "metadata": {
                "title": title,
                "dataRange": {"range": "CUSTOM_DATES", "customStartDate": _gdate(day), "customEndDate": _gdate(day)},
                "format": "CSV",
            },
            "params": {
                "type": "STANDARD",
                "groupBys": ["FILTER_DATE", "FILTER_LINE_ITEM"],
                "filters": [{"type": "FILTER_LINE_ITEM", "value": q.line_item_id} for q in line_items],
                "metrics": ["METRIC_IMPRESSIONS", "METRIC_CLICKS", "METRIC_REVENUE_ADVERTISER"],
            },
            "schedule": {"frequency": "ONE_TIME"},
        }

        async def create_query() -> str:
            return str((await self.http.json("POST", "/v2/queries", json=query))["queryId"])

        async def find_query() -> str | None:
            token = None
            while True:
                page = await self.http.json("GET", "/v2/queries", params={"pageSize": "100", **({"pageToken": token} if token else {})})
                for q in page.get("queries") or []:
                    if (q.get("metadata") or {}).get("title") == title:
                        return str(q["queryId"])
                token = page.get("nextPageToken")
                if not token:
                    return None

        query_id = await find_query() or await self.http.create_once(create_query, find_query)

        async def run() -> str:
            report = await self.http.json("POST", f"/v2/queries/{query_id}:run", params={"synchronous": "false"}, json={})
            return str(report["key"]["reportId"])

        async def find_report() -> str | None:
            page = await self.http.json("GET", f"/v2/queries/{query_id}/reports")
            reports = page.get("reports") or []
            return str(reports[-1]["key"]["reportId"]) if reports else None

        report_id = await find_report() or await self.http.create_once(run, find_report)
        job = await self._poll(
            lambda: self.http.json("GET", f"/v2/queries/{query_id}/reports/{report_id}"),
            lambda j: j["metadata"]["status"]["state"] == "DONE",
            lambda j: j["metadata"]["status"]["state"] if j["metadata"]["status"]["state"] == "FAILED" else None,
            f"Bid Manager report {query_id}/{report_id}",
        )
        text = (await self._download(str(job["metadata"]["googleCloudStoragePath"]))).decode("utf-8-sig")
        rows = []
        for r in csv.DictReader(io.StringIO(text)):
            if not r.get("Line Item ID"):  # the summary row at the end has none
                continue
            rows.append(LineItemDay(r["Line Item ID"], dt.date.fromisoformat(r["Date"].replace("/", "-")[:10]),
                                    int(float(r["Impressions"] or 0)), int(float(r["Clicks"] or 0)),
                                    cents(r["Revenue (Adv Currency)"])))
        return _rows_by_item(rows, line_items, day)


# ---- resources --------------------------------------------------------------------------------------------------------
def _classify_425_permanent(response: httpx.Response) -> Any:
    return "permanent" if response.status_code == 425 else default_classify(response)


class _ReportingResource(ServiceResource):
    DSP: ClassVar[str] = ""

    poll_interval_s: float = Field(default=5.0, gt=0, description="Seconds between polls of a report job.")
    report_timeout_s: float = Field(default=900.0, gt=0, description="Give up on a report job after this long.")

    def local_client(self, out_dir: Path) -> LocalDSPReporting:
        return LocalDSPReporting(self.SERVICE, out_dir)


class AmazonReportingResource(_ReportingResource):
    """Amazon DSP line item delivery through the Amazon Ads reporting API v3."""

    SERVICE: ClassVar[str] = "amazon_reporting"
    DSP: ClassVar[str] = "amazon"
    DEFAULT_BASE_URL: ClassVar[str] = "https://advertising-api.amazon.com"

    client_id: str | None = Field(default=None, description="Login with Amazon client id (AMAZON_DSP_CLIENT_ID).")
    profile_id: str | None = Field(default=None, description="The DSP advertiser's profile (AMAZON_DSP_PROFILE_ID).")

    def auth_headers(self) -> Mapping[str, str]:
        extra = {"Amazon-Advertising-API-ClientId": self.client_id or "", "Amazon-Advertising-API-Scope": self.profile_id or ""}
        return {**super().auth_headers(), **{k: v for k, v in extra.items() if v}}

    def http_client(self, http: HttpSession) -> HttpAmazonReporting:
        return HttpAmazonReporting(http, self.poll_interval_s, self.report_timeout_s)

    def vendor_profile(self) -> VendorProfile:
        return VendorProfile(service=self.SERVICE, error_message=amazon_error_message, classify=_classify_425_permanent)


class TradeDeskReportingResource(_ReportingResource):
    """The Trade Desk ad group delivery through MyReports."""

    SERVICE: ClassVar[str] = "ttd_reporting"
    DSP: ClassVar[str] = "trade_desk"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.thetradedesk.com"

    advertiser_id: str | None = Field(default=None, description="TTD advertiser id (TTD_ADVERTISER_ID).")
    template_id: str | None = Field(default=None, description="MyReports template of the line item report (TTD_REPORT_TEMPLATE_ID).")

    def auth_headers(self) -> Mapping[str, str]:
        return {"TTD-Auth": self.api_key or ""}

    def http_client(self, http: HttpSession) -> HttpTradeDeskReporting:
        return HttpTradeDeskReporting(http, self.poll_interval_s, self.report_timeout_s, self.advertiser_id, self.template_id)

    def vendor_profile(self) -> VendorProfile:
        return VendorProfile(service=self.SERVICE, error_message=ttd_error_message)


class DV360ReportingResource(_ReportingResource):
    """DV360 line item delivery through the Bid Manager API v2."""

    SERVICE: ClassVar[str] = "dv360_reporting"
    DSP: ClassVar[str] = "dv360"
    DEFAULT_BASE_URL: ClassVar[str] = "https://doubleclickbidmanager.googleapis.com"

    def http_client(self, http: HttpSession) -> HttpDV360Reporting:
        return HttpDV360Reporting(http, self.poll_interval_s, self.report_timeout_s)

    def vendor_profile(self) -> VendorProfile:
        return VendorProfile(service=self.SERVICE, error_message=google_error_message)


# The spec's ``dsp`` -> the resource key that reports on it.
REPORTING_KEYS: Mapping[str, str] = {"amazon": "amazon_reporting", "trade_desk": "ttd_reporting", "dv360": "dv360_reporting"}
