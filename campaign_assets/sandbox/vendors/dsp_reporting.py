"""The three DSP reporting APIs (issue #16), each an asynchronous report job: ask, poll, download.

- ``amazon-ads`` (mount ``/amazon-ads``): Amazon Ads reporting v3 (advertising.amazon.com/API/docs/
  en-us/guides/reporting/v3/get-started, "Requesting reports"): ``POST /reporting/reports`` ->
  ``{reportId, status: PENDING}``; an identical request again is a **425** "The Request is a
  duplicate of : <reportId>"; ``GET /reporting/reports/{reportId}`` -> ``PENDING``/``PROCESSING``
  then ``COMPLETED`` with ``url`` (gzipped JSON rows; here ``GET /reporting/downloads/{reportId}``
  stands in for the S3 link). Errors ``{"code", "detail"}``; 429 with ``Retry-After``.
- ``ttd`` (mount ``/ttd``): The Trade Desk MyReports v3: ``POST /v3/myreports/reportschedule``
  (a one-time schedule; its execution starts at once), ``POST /v3/myreports/reportschedule/query``
  (``NameContains``), ``POST /v3/myreports/reportexecution/query/advertisers`` (``Pending``,
  ``InProgress``, ``Complete`` with ``ReportDeliveries[].DownloadURL``), the CSV at ``GET
  /v3/myreports/download/{executionId}``. Auth ``TTD-Auth``. Errors ``{"Message", "ErrorDetails"}``.
- ``bid-manager`` (mount ``/bid-manager``): Bid Manager API v2 (developers.google.com/bid-manager/
  reference/rest/v2): ``POST``/``GET /v2/queries``, ``POST /v2/queries/{queryId}:run``, ``GET
  /v2/queries/{queryId}/reports[/{reportId}]`` (``QUEUED``, ``RUNNING``, ``DONE`` with
  ``googleCloudStoragePath``; here ``GET /v2/downloads/{reportId}.csv``). Google's error shape.

A report job is done ``READY_S`` seconds (times the sandbox's scale) after it was asked for.

What they report: the delivery model (``logic/delivery.media_delivery``) of each line item the
sandbox knows, for its planned budget that day. A reporting API never learns a budget from a
report request, so line items are registered beforehand, as the DSP's campaign management would
hold them: an object of kind ``lineitem`` in the vendor's store, ``{"channel", "daily_cents":
{ISO day: cents}}`` (``register_line_items``; ``SandboxServer.add_object`` over the control API).
A line item made through the sandbox's own DSP campaign management (``amazon-dsp``, ``trade-desk``,
``dv360``: what ``dsp_activation`` makes when the sandbox serves it) needs no registration: its
budget is paced evenly over its flight. A line item the sandbox knows neither way delivers nothing
(no row), as at a real DSP.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from campaign_assets.logic.delivery import media_delivery
from campaign_assets.sandbox.state import StoredObject
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    ErrorStyle,
    Vendor,
    json_response,
)
from campaign_assets.sandbox.vendors.google import GoogleErrors

READY_S = 20.0  # a report job's run time at scale 1
WRITE_LATENCY_S = 0.5
READ_LATENCY_S = 0.2
LINE_ITEM = "lineitem"


# Each reporting vendor -> its DSP's campaign management vendor in the sandbox, and the kind of a
# line item there (Amazon DSP line items, TTD ad groups, DV360 line items).
MANAGEMENT: Mapping[str, tuple[str, str]] = {
    "amazon-ads": ("amazon-dsp", "lineItem"), "ttd": ("trade-desk", "adgroup"), "bid-manager": ("dv360", "lineItem"),
}


def _cents(amount: Any) -> int:
    return round(float(amount or 0) * 100)


def _gday(value: Mapping[str, Any]) -> dt.date:
    return dt.date(int(value["year"]), int(value["month"]), int(value["day"]))


def _budget_and_flight(management: str, data: Mapping[str, Any]) -> tuple[int, dt.date, dt.date]:
    """A managed line item's total budget (cents) and flight, in its DSP's own fields."""
    if management == "amazon-dsp":
        return (_cents((data.get("budget") or {}).get("totalBudgetAmount")),
                dt.date.fromisoformat(str(data["startDateTime"])[:10]), dt.date.fromisoformat(str(data["endDateTime"])[:10]))
    if management == "trade-desk":
        budget = ((data.get("RTBAttributes") or {}).get("BudgetSettings") or {}).get("Budget") or {}
        return (_cents(budget.get("Amount")), dt.date.fromisoformat(str(data["StartDate"])[:10]),
                dt.date.fromisoformat(str(data["EndDate"])[:10]))
    dates = (data.get("flight") or {}).get("dateRange") or {}
    return (round(int((data.get("budget") or {}).get("maxAmount") or 0) / 10_000), _gday(dates["startDate"]),
            _gday(dates["endDate"]))


def _line_item(call: Call, vendor: str, item_id: str) -> tuple[str, Mapping[str, int]] | None:
    """A line item's channel and planned cents per day: registered with this reporting vendor, or
    else made through its DSP's campaign management in this sandbox (its budget paced evenly over
    its flight, as ``PACING_TYPE_EVEN`` does; its channel from its name, ``<campaign> — <channel>``)."""
    item = call.store.find(LINE_ITEM, item_id)
    if item is not None:
        return str(item.data.get("channel") or "display"), item.data.get("daily_cents", {})
    management, kind = MANAGEMENT[vendor]
    managed = call.state.stores[management].find(kind, item_id)
    if managed is None:
        return None
    try:
        total, start, end = _budget_and_flight(management, managed.data)
    except (KeyError, TypeError, ValueError):
        return None
    days = max(1, (end - start).days + 1)
    base, odd = divmod(total, days)
    daily = {(start + dt.timedelta(days=i)).isoformat(): base + (1 if i < odd else 0) for i in range(days)}
    name = str(managed.data.get("name") or managed.data.get("AdGroupName") or managed.data.get("displayName") or "")
    return (name.rpartition(" — ")[2] or "display"), daily


def delivery(call: Call, line_item_ids: list[str], start: dt.date, end: dt.date, vendor: str) -> list[dict[str, Any]]:
    """Rows (day, line item, impressions, clicks, spend cents) of every known line item asked for."""
    rows = []
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    for item_id in line_item_ids:
        known = _line_item(call, vendor, item_id)
        if known is None:
            continue
        channel, daily = known
        for day in days:
            planned = int(daily.get(day.isoformat(), 0))
            d = media_delivery(item_id, day, planned, channel)
            if d.impressions or d.spend_cents:
                rows.append({"day": day, "line_item_id": item_id, "impressions": d.impressions,
                             "clicks": d.clicks, "spend_cents": d.spend_cents})
    return rows


def _ready(job: StoredObject, call: Call) -> bool:
    return time.time() - job.created_at >= READY_S * call.scale


def _base(call: Call, mount: str) -> str:
    return str(call.request.base_url).rstrip("/") + mount


def _date(value: Any, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ApiError(400, f"{field} must be a date (YYYY-MM-DD)", code=field) from None


# ---- Amazon Ads reporting v3 -----------------------------------------------------------------------------------
class AmazonErrors(ErrorStyle):
    """``{"code": "<status>", "detail": ...}``; 429 carries ``Retry-After``."""

    sends_retry_after = True
    default_messages: Mapping[int, str] = {401: "Not authorized to access this advertiser", 429: "Too Many Requests"}

    def body(self, error: ApiError) -> dict[str, Any]:
        return {"code": error.code or str(error.status), "detail": self.message(error)}


def amazon_create(call: Call) -> Response:
    body = call.json()
    config = body.get("configuration") or {}
    start, end = _date(body.get("startDate"), "startDate"), _date(body.get("endDate"), "endDate")
    if end < start:
        raise ApiError(400, "endDate must not be before startDate")
    if config.get("adProduct") != "DEMAND_SIDE_PLATFORM" or config.get("reportTypeId") != "dspLineItem":
        raise ApiError(400, "configuration.adProduct/reportTypeId: DEMAND_SIDE_PLATFORM/dspLineItem expected")
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    for report in call.store.live("report"):
        if report.data["fingerprint"] == fingerprint:
            raise ApiError(425, f"The Request is a duplicate of : {report.id}")
    report_id = f"{call.ids.alphanumeric(8)}-{call.ids.alphanumeric(4)}-{call.ids.alphanumeric(4)}-{call.ids.alphanumeric(12)}"
    items = [str(v) for f in config.get("filters") or [] if f.get("field") == "lineItemId" for v in f.get("values") or []]
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    data = {"reportId": report_id, "name": body.get("name"), "startDate": start.isoformat(), "endDate": end.isoformat(),
            "configuration": config, "status": "PENDING", "createdAt": now, "updatedAt": now,
            "lineItems": items, "fingerprint": fingerprint}
    call.store.add("report", report_id, data)
    return json_response({k: v for k, v in data.items() if k not in ("lineItems", "fingerprint")})


def _amazon_report(call: Call) -> StoredObject:
    found = call.store.find("report", call.params["reportId"])
    if found is None:
        raise ApiError(404, "Report not found")
    return found


def amazon_get(call: Call) -> Response:
    report = _amazon_report(call)
    view = {k: v for k, v in report.data.items() if k not in ("lineItems", "fingerprint")}
    if _ready(report, call):
        view |= {"status": "COMPLETED", "url": f"{_base(call, '/amazon-ads')}/reporting/downloads/{report.id}",
                 "urlExpiresAt": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()}
    else:
        view["status"] = "PROCESSING" if time.time() - report.created_at >= READY_S * call.scale / 2 else "PENDING"
    return json_response(view)


def amazon_download(call: Call) -> Response:
    report = _amazon_report(call)
    if not _ready(report, call):
        raise ApiError(404, "Report not ready")
    data = report.data
    rows = delivery(call, data["lineItems"], _date(data["startDate"], "startDate"), _date(data["endDate"], "endDate"), "amazon-ads")
    records = [{"date": r["day"].isoformat(), "lineItemId": r["line_item_id"], "impressions": r["impressions"],
                "clickThroughs": r["clicks"], "totalCost": r["spend_cents"] / 100} for r in rows]
    return Response(gzip.compress(json.dumps(records).encode()), media_type="application/octet-stream")


AMAZON_ADS = Vendor(
    name="amazon-ads",
    mount="/amazon-ads",
    errors=AmazonErrors(),
    endpoints=(
        Endpoint("POST", "/reporting/reports", amazon_create, WRITE_LATENCY_S),
        Endpoint("GET", "/reporting/reports/{reportId}", amazon_get, READ_LATENCY_S),
        Endpoint("GET", "/reporting/downloads/{reportId}", amazon_download, READ_LATENCY_S),
    ),
)


# ---- The Trade Desk MyReports ----------------------------------------------------------------------------------
class TradeDeskErrors(ErrorStyle):
    """``{"Message": ..., "ErrorDetails": [...]}``; 429 carries ``Retry-After``."""

    sends_retry_after = True
    default_messages: Mapping[int, str] = {401: "Authentication failed: invalid TTD-Auth token", 429: "Too many requests"}

    def body(self, error: ApiError) -> dict[str, Any]:
        details = [{"Property": error.code, "Reasons": [self.message(error)]}] if error.code else []
        return {"Message": self.message(error), "ErrorDetails": details}


def ttd_create(call: Call) -> Response:
    body = call.json()
    name = body.get("ReportScheduleName")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "The request is invalid.", code="ReportScheduleName")
    if body.get("ReportFrequency") not in ("Once", None):
        raise ApiError(400, "Only one-time schedules are emulated.", code="ReportFrequency")
    start = _date(body.get("ReportStartDateInclusive"), "ReportStartDateInclusive")
    end = _date(body.get("ReportEndDateExclusive"), "ReportEndDateExclusive") - dt.timedelta(days=1)
    schedule_id = int(call.ids.numeric()) % 10**9
    execution_id = schedule_id + 1
    data = {"ReportScheduleId": schedule_id, "ReportScheduleName": name, "ReportFrequency": "Once",
            "ReportTemplateId": body.get("ReportTemplateId"), "AdvertiserFilters": body.get("AdvertiserFilters") or [],
            "start": start.isoformat(), "end": end.isoformat(), "lineItems": [str(x) for x in body.get("AdGroupFilters") or []],
            "ReportExecutionId": execution_id}
    call.store.add("schedule", str(schedule_id), data)
    return json_response({k: data[k] for k in ("ReportScheduleId", "ReportScheduleName", "ReportFrequency", "ReportTemplateId")})


def ttd_query_schedules(call: Call) -> Response:
    body = call.json()
    contains = str(body.get("NameContains") or "")
    found = [s.data for s in call.store.live("schedule") if contains in s.data["ReportScheduleName"]]
    start, size = int(body.get("PageStartIndex") or 0), int(body.get("PageSize") or 100)
    page = [{k: s[k] for k in ("ReportScheduleId", "ReportScheduleName", "ReportFrequency")} for s in found[start : start + size]]
    return json_response({"Result": page, "ResultCount": len(found)})


def ttd_query_executions(call: Call) -> Response:
    body = call.json()
    wanted = {str(x) for x in body.get("ReportScheduleIds") or []}
    result = []
    for schedule in call.store.live("schedule"):
        if wanted and schedule.id not in wanted:
            continue
        ready = _ready(schedule, call)
        execution = {"ReportExecutionId": schedule.data["ReportExecutionId"], "ReportScheduleId": schedule.data["ReportScheduleId"],
                     "ReportScheduleName": schedule.data["ReportScheduleName"],
                     "ReportExecutionState": "Complete" if ready else "InProgress", "ReportDeliveries": []}
        if ready:
            url = f"{_base(call, '/ttd')}/v3/myreports/download/{schedule.data['ReportExecutionId']}"
            execution["ReportDeliveries"] = [{"DownloadURL": url, "DeliveredPath": None}]
        result.append(execution)
    return json_response({"Result": result, "ResultCount": len(result)})


def ttd_download(call: Call) -> Response:
    execution = int(call.params["executionId"])
    schedule = next((s for s in call.store.live("schedule") if s.data["ReportExecutionId"] == execution), None)
    if schedule is None or not _ready(schedule, call):
        raise ApiError(404, "Report not found")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Date", "Ad Group Id", "Impressions", "Clicks", "Advertiser Cost (Adv Currency)"])
    start, end = _date(schedule.data["start"], "start"), _date(schedule.data["end"], "end")
    for r in delivery(call, schedule.data["lineItems"], start, end, "ttd"):
        writer.writerow([f"{r['day'].isoformat()}T00:00:00", r["line_item_id"], r["impressions"], r["clicks"],
                         f"{r['spend_cents'] / 100:.2f}"])
    return Response(out.getvalue(), media_type="text/csv")


TTD = Vendor(
    name="ttd",
    mount="/ttd",
    errors=TradeDeskErrors(),
    endpoints=(
        Endpoint("POST", "/v3/myreports/reportschedule", ttd_create, WRITE_LATENCY_S),
        Endpoint("POST", "/v3/myreports/reportschedule/query", ttd_query_schedules, READ_LATENCY_S),
        Endpoint("POST", "/v3/myreports/reportexecution/query/advertisers", ttd_query_executions, READ_LATENCY_S),
        Endpoint("GET", "/v3/myreports/download/{executionId}", ttd_download, READ_LATENCY_S),
    ),
)


# ---- Bid Manager API v2 ------------------------------------------------------------------------------------------
def _gdate(value: Any, field: str) -> dt.date:
    try:
        return dt.date(int(value["year"]), int(value["month"]), int(value["day"]))
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, f"Invalid value at '{field}'") from None


def _query_view(query: StoredObject) -> dict[str, Any]:
    return {k: v for k, v in query.data.items() if not k.startswith("_")}


def bm_create_query(call: Call) -> Response:
    body = call.json()
    metadata, params = body.get("metadata") or {}, body.get("params") or {}
    if not metadata.get("title"):
        raise ApiError(400, "Invalid value at 'query.metadata.title'")
    data_range = metadata.get("dataRange") or {}
    if data_range.get("range") != "CUSTOM_DATES":
        raise ApiError(400, "Only CUSTOM_DATES ranges are emulated.")
    start = _gdate(data_range.get("customStartDate"), "query.metadata.dataRange.customStartDate")
    end = _gdate(data_range.get("customEndDate"), "query.metadata.dataRange.customEndDate")
    query_id = call.ids.numeric()
    items = [str(f.get("value")) for f in params.get("filters") or [] if f.get("type") == "FILTER_LINE_ITEM"]
    data = {"queryId": query_id, "metadata": metadata, "params": params, "schedule": body.get("schedule") or {},
            "_start": start.isoformat(), "_end": end.isoformat(), "_items": items}
    call.store.add("query", query_id, data)
    return json_response(_query_view(call.store.find("query", query_id)))  # type: ignore[arg-type]


def bm_list_queries(call: Call) -> Response:
    queries = call.store.live("query")
    start = int(call.query.get("pageToken") or 0)
    size = int(call.query.get("pageSize") or 100)
    page = {"queries": [_query_view(q) for q in queries[start : start + size]]}
    if start + size < len(queries):
        page["nextPageToken"] = str(start + size)
    return json_response(page)


def _bm_query(call: Call) -> StoredObject:
    found = call.store.find("query", call.params["queryId"])
    if found is None:
        raise ApiError(404, "Requested entity was not found.")
    return found


def _report_view(report: StoredObject, call: Call) -> dict[str, Any]:
    data = report.data
    ready = _ready(report, call)
    metadata = {"status": {"state": "DONE" if ready else "RUNNING", "format": "CSV"},
                "reportDataStartDate": data["_start"], "reportDataEndDate": data["_end"]}
    if ready:
        metadata["status"]["finishTime"] = dt.datetime.now(dt.timezone.utc).isoformat()
        metadata["googleCloudStoragePath"] = f"{_base(call, '/bid-manager')}/v2/downloads/{report.id}.csv"
    return {"key": {"queryId": data["queryId"], "reportId": report.id}, "metadata": metadata}


def bm_run(call: Call) -> Response:
    query = _bm_query(call)
    report_id = call.ids.numeric()
    call.store.add("report", report_id, {"queryId": query.id, "_start": query.data["_start"], "_end": query.data["_end"],
                                         "_items": query.data["_items"]})
    return json_response(_report_view(call.store.find("report", report_id), call))  # type: ignore[arg-type]


def bm_list_reports(call: Call) -> Response:
    query = _bm_query(call)
    return json_response({"reports": [_report_view(r, call) for r in call.store.live("report") if r.data["queryId"] == query.id]})


def bm_get_report(call: Call) -> Response:
    _bm_query(call)
    report = call.store.find("report", call.params["reportId"])
    if report is None or report.data["queryId"] != call.params["queryId"]:
        raise ApiError(404, "Requested entity was not found.")
    return json_response(_report_view(report, call))


def bm_download(call: Call) -> Response:
    report = call.store.find("report", call.params["reportId"])
    if report is None or not _ready(report, call):
        raise ApiError(404, "No such object.")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Date", "Line Item ID", "Impressions", "Clicks", "Revenue (Adv Currency)"])
    total = [0, 0, 0]
    rows = delivery(call, report.data["_items"], _date(report.data["_start"], "start"), _date(report.data["_end"], "end"),
                    "bid-manager")
    for r in rows:
        writer.writerow([r["day"].strftime("%Y/%m/%d"), r["line_item_id"], r["impressions"], r["clicks"],
                         f"{r['spend_cents'] / 100:.2f}"])
        total = [total[0] + r["impressions"], total[1] + r["clicks"], total[2] + r["spend_cents"]]
    writer.writerow(["", "", total[0], total[1], f"{total[2] / 100:.2f}"])  # Bid Manager's summary row
    return Response(out.getvalue(), media_type="text/csv")


BID_MANAGER = Vendor(
    name="bid-manager",
    mount="/bid-manager",
    errors=GoogleErrors("doubleclickbidmanager.googleapis.com"),
    endpoints=(
        Endpoint("POST", "/v2/queries", bm_create_query, WRITE_LATENCY_S),
        Endpoint("GET", "/v2/queries", bm_list_queries, READ_LATENCY_S),
        Endpoint("POST", "/v2/queries/{queryId}:run", bm_run, WRITE_LATENCY_S),
        Endpoint("GET", "/v2/queries/{queryId}/reports", bm_list_reports, READ_LATENCY_S),
        Endpoint("GET", "/v2/queries/{queryId}/reports/{reportId}", bm_get_report, READ_LATENCY_S),
        Endpoint("GET", "/v2/downloads/{reportId}.csv", bm_download, READ_LATENCY_S),
    ),
)

# The spec's ``dsp`` -> the sandbox vendor that reports on it.
REPORTING_VENDORS: Mapping[str, str] = {"amazon": "amazon-ads", "trade_desk": "ttd", "dv360": "bid-manager"}


def line_item_object(channel: str, daily_cents: Mapping[dt.date, int]) -> dict[str, Any]:
    """The ``lineitem`` object a reporting vendor reports on (``SandboxServer.add_object``'s data)."""
    return {"channel": channel, "daily_cents": {d.isoformat(): int(c) for d, c in daily_cents.items()}}
