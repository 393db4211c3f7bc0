"""The performance_daily table (Ledger.write_performance / Ledger.performance),
on SQLite and on the machine's Postgres."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from campaign_assets.ledger import PERFORMANCE_COLUMNS, Ledger
from campaign_assets.logic.performance import pacing

DAY = dt.date(2027, 1, 4)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = Ledger(url)
    yield store
    store.dispose()


def row(object_id: str = "li-1", day: dt.date = DAY, **values: Any) -> dict[str, Any]:
    return dict(
        organization="acme", campaign="q4", day=day, source="amazon", channel="display", object_id=object_id,
        impressions=100_000, clicks=120, spend_cents=35_000, currency="USD",
    ) | values


def test_rows_round_trip_and_refetching_a_day_replaces_its_rows(ledger: Ledger) -> None:
    email = row("send-1", source="email", channel="email", impressions=0, spend_cents=0, clicks=40, delivered=1000, opens=250)
    assert ledger.write_performance([row(), row(day=DAY + dt.timedelta(days=1)), email]) == 3
    frame = ledger.performance("acme", "q4")
    assert list(frame.columns) == PERFORMANCE_COLUMNS
    assert len(frame) == 3
    assert frame["day"].tolist() == [DAY, DAY, DAY + dt.timedelta(days=1)]  # by day, then source
    assert frame["source"].tolist()[:2] == ["amazon", "email"]
    first = frame.iloc[0]
    assert (first["spend_cents"], first["clicks"], first["delivered"], first["opens"]) == (35_000, 120, 0, 0)
    assert frame.iloc[1][["delivered", "opens", "clicks"]].tolist() == [1000, 250, 40]
    assert str(frame["spend_cents"].dtype) == "int64"

    # The day is fetched again with new numbers: the same keys, replaced, no new rows.
    ledger.write_performance(pd.DataFrame([row(spend_cents=36_000, clicks=130)]))
    again = ledger.performance("acme", "q4")
    assert len(again) == 3
    assert again.iloc[0][["spend_cents", "clicks"]].tolist() == [36_000, 130]


def test_until_and_tenants_select_rows(ledger: Ledger) -> None:
    ledger.write_performance(
        [row(day=DAY + dt.timedelta(days=n)) for n in range(5)]
        + [row(organization="other"), row(campaign="q1", day="2027-01-05")]
    )
    assert len(ledger.performance("acme", "q4")) == 5
    assert ledger.performance("acme", "q4", until=DAY + dt.timedelta(days=1))["day"].tolist() == [
        DAY, DAY + dt.timedelta(days=1),
    ]
    assert ledger.performance("acme", "q1")["day"].tolist() == [dt.date(2027, 1, 5)]  # an ISO string is a day
    assert len(ledger.performance("other", "q4")) == 1
    empty = ledger.performance("nobody", "q4")
    assert empty.empty and list(empty.columns) == PERFORMANCE_COLUMNS


def test_a_bad_row_writes_nothing(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="lacks currency"):
        ledger.write_performance([row("a"), row("b", currency=None)])
    with pytest.raises(ValueError, match="negative spend_cents"):
        ledger.write_performance([row("a"), row("b", spend_cents=-1)])
    assert ledger.performance("acme", "q4").empty
    assert ledger.write_performance([]) == 0


def test_the_table_answers_sql_and_feeds_the_pacing(ledger: Ledger) -> None:
    ledger.write_performance([row(f"li-{n}", day=DAY + dt.timedelta(days=n % 3)) for n in range(6)])
    with ledger.engine.connect() as conn:
        spend = conn.execute(
            sa.text("select channel, sum(spend_cents) from performance_daily where campaign = 'q4' group by channel")
        ).all()
    assert [(c, int(s)) for c, s in spend] == [("display", 6 * 35_000)]
    plan = pd.DataFrame(
        [dict(channel="display", dsp="amazon", week=1, week_start=DAY.isoformat(),
              week_end=(DAY + dt.timedelta(days=6)).isoformat(), days=7, budget=7 * 700.0)]
    )
    table = pacing(plan, ledger.performance("acme", "q4"), DAY + dt.timedelta(days=2))
    assert table.loc[0, "spent_to_date_cents"] == 210_000 and table.loc[0, "planned_to_date_cents"] == 210_000
    assert table.loc[0, "within"]


def test_a_day_written_twice_in_one_batch_keeps_the_last(ledger: Ledger) -> None:
    ledger.write_performance([row(spend_cents=1), row(spend_cents=2)])
    assert ledger.performance("acme", "q4")["spend_cents"].tolist() == [2]


def test_an_existing_ledger_gains_the_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    Ledger(url).dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("drop table performance_daily"))
    engine.dispose()
    with Ledger(url) as store:  # an older database: the table is created on open
        store.write_performance([row()])
        assert len(store.performance("acme", "q4")) == 1
