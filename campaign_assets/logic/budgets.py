"""DSP budgets from the media plan, to the cent, and the read-back comparison.

Pure: the plan DataFrame (channel, week_start, week_end, budget) in; per DSP
channel its total in cents and its flight out; and the comparison of what a
vendor says a line item holds with what the plan says it should.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd

CENT = Decimal("0.01")


@dataclass(frozen=True)
class ChannelBudget:
    channel: str
    dsp: str
    budget_cents: int
    start: dt.date
    end: dt.date


def to_cents(amount: Any) -> int:
    """A plan amount (float of a two-decimal value) in cents, exactly."""
    return int(round(Decimal(str(amount)) / CENT))


def channel_budgets(plan: pd.DataFrame, channels: Mapping[str, str]) -> list[ChannelBudget]:
    """Per channel of ``channels`` (channel name -> DSP name, in spec order):
    the plan's total in cents and its flight (first week_start .. last week_end)."""
    out = []
    for channel, dsp in channels.items():
        rows = plan[plan["channel"] == channel]
        if rows.empty:
            raise ValueError(f"the media plan has no rows for DSP channel {channel!r}")
        out.append(
            ChannelBudget(
                channel,
                dsp,
                sum(to_cents(b) for b in rows["budget"]),
                dt.date.fromisoformat(str(min(rows["week_start"]))),
                dt.date.fromisoformat(str(max(rows["week_end"]))),
            )
        )
    return out


def compare_budgets(plan_cents: Mapping[str, int], vendor: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per line item read back from a vendor (``channel``, ``dsp``,
    ``line_item_id``, ``vendor_cents`` (None: not found at the vendor),
    ``vendor_status``) against the plan's cents for its channel.
    ``difference_cents`` is vendor minus plan (None when the vendor had none)."""
    rows = []
    for line in vendor:
        planned = plan_cents[line["channel"]]
        found = line.get("vendor_cents")
        rows.append(
            {
                "channel": line["channel"],
                "dsp": line["dsp"],
                "line_item_id": line["line_item_id"],
                "plan_cents": planned,
                "vendor_cents": found,
                "difference_cents": None if found is None else found - planned,
                "vendor_status": line.get("vendor_status") or "missing",
            }
        )
    return rows


def budget_mismatches(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """What a blocking check reports: every line item whose vendor budget is not the plan's, or missing."""
    problems = []
    for row in rows:
        if row["vendor_cents"] is None:
            problems.append(f"{row['channel']} ({row['dsp']}): line item {row['line_item_id']} not found at the vendor")
        elif row["difference_cents"]:
            problems.append(
                f"{row['channel']} ({row['dsp']}): vendor {row['vendor_cents']} cents, plan {row['plan_cents']} cents"
            )
    return problems
