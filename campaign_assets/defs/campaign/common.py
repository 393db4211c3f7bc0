"""What every campaign asset shares: the partitions, the retry policy, the tags, the metadata.

The partitions definition is used by the automation and teardown jobs too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from campaign_assets.core.items import ACTIONS, ItemReport
from campaign_assets.logic.render import thumbnail_uri
from campaign_assets.settings import OWNER, PARTITIONS, PRIORITY_TAG, SERVICE_TAG

if TYPE_CHECKING:
    from campaign_assets.workflows import Outcome

campaigns_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS)

# Failures below the item level (the ledger database briefly unreachable, a
# step process lost) retry the whole step: items already done are reused from
# the ledger, so a retry redoes only what is missing. Item failures never
# raise, so they never spend these.
STEP_RETRY = dg.RetryPolicy(max_retries=3, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def service_asset(service: str | None, *, critical: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Keyword arguments of a campaign asset that calls ``service``: the
    partitions, the owner, the service's pool (across runs) and its op tag
    (``tag_concurrency_limits`` within a run). ``critical``: on the seed's
    critical path, so the executor launches it first among steps ready at
    the same moment (they share two cores while they start)."""
    extra: dict[str, Any] = {
        "partitions_def": campaigns_partitions,
        "owners": [OWNER],
        "code_version": "1",
        "retry_policy": STEP_RETRY,
    }
    tags = {SERVICE_TAG: service} if service else {}
    if critical:
        tags[PRIORITY_TAG] = "10"
    if service:
        extra["pool"] = service
    if tags:
        extra["op_tags"] = tags
    return extra | kwargs


def report_metadata(*reports: ItemReport) -> dict[str, Any]:
    """Counts per outcome, and every failure with its reason."""
    counts = dict.fromkeys(ACTIONS, 0)
    failures: list[tuple[str, str]] = []
    fallbacks: list[tuple[str, str]] = []
    for report in reports:
        for action, n in report.counts.items():
            counts[action] += n
        failures += report.failures
        fallbacks += report.fallbacks
    meta: dict[str, Any] = {f"items_{k}": dg.MetadataValue.int(v) for k, v in counts.items()}
    if failures:
        meta["failures"] = dg.MetadataValue.md("\n".join(f"- `{key}`: {reason}" for key, reason in failures))
    if fallbacks:
        meta["fallback"] = dg.MetadataValue.md(
            "Made by the local backend while the vendor was down; published next time.\n\n"
            + "\n".join(f"- `{key}`: {reason}" for key, reason in fallbacks)
        )
    return meta


def service_metadata(clients: Iterable[Any]) -> dict[str, Any]:
    """Which backend ran for each service (``llm/backend``), and each of its
    numbers as its own top-level key (``llm/calls``, ``llm/retries``,
    ``llm/wall_seconds``...), so the UI can chart every one over time."""
    meta: dict[str, Any] = {}
    for client in clients:
        meta[f"{client.service}/backend"] = dg.MetadataValue.text(client.backend)
        for name, number in client.stats.as_metadata().items():
            value = dg.MetadataValue.float(number) if isinstance(number, float) else dg.MetadataValue.int(number)
            meta[f"{client.service}/{name}"] = value
    return meta


def url(value: str | None) -> dg.MetadataValue:
    return dg.MetadataValue.url(value) if value else dg.MetadataValue.text("—")


def failed_check(check: str, report: ItemReport, what: str) -> dg.AssetCheckResult:
    """An item-count check that warns when items of ``report`` failed."""
    failed = report.failures
    return dg.AssetCheckResult(
        check_name=check,
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            f"{what}_ok": len(report.succeeded),
            f"{what}_failed": len(failed),
            "failed_keys": dg.MetadataValue.json([k for k, _ in failed]),
        },
        description=f"{len(report.succeeded)} of {len(report.results)} {what} produced",
    )


def materialize_result(
    outcome: Outcome, *, checks: Iterable[dg.AssetCheckResult] = (), asset_key: str | None = None, **metadata: Any
):
    """An asset's result: the workflow's value, its item counts, its services'
    numbers and its links, plus the asset's own ``metadata`` and ``checks``
    (``asset_key``: which output, in a multi_asset)."""
    meta = report_metadata(*outcome.reports) | service_metadata(outcome.clients)
    meta |= {name: url(link) for name, link in outcome.links.items()}
    return dg.MaterializeResult(
        asset_key=asset_key, value=outcome.value, metadata=meta | metadata, check_results=list(checks)
    )


def creatives_preview(creatives: list[dict[str, Any]]) -> str:
    """Thumbnails of every creative, with its size and design link."""
    if not creatives:
        return "(no creatives)"
    rows = ["| size | preview | design |", "| --- | --- | --- |"]
    for c in creatives:
        path = Path(c["path"])
        thumb = f"![{c['size']}]({thumbnail_uri(path.read_bytes())})" if path.exists() else "—"
        rows.append(f"| {c['size']} | {thumb} | [open]({c['edit_url']}) |")
    return "\n".join(rows)
