"""CSV injection: every CSV campaign_assets writes keeps hostile text inert (OWASP rule)."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_assets import workflows
from campaign_assets.ledger import Ledger
from campaign_assets.logic.csv_safe import DANGEROUS_PREFIXES, csv_text, dict_csv_text, is_inert, neutralize
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.sheets import HttpSheets, LocalSheets, SheetRef, SheetsResource, a1_range_for
from campaign_assets.spec import parse_spec

from .conftest import EXAMPLES, SEED
from .support.hostile import HOSTILE_TEXT

HOSTILE = HOSTILE_TEXT


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def read_file(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:  # as the csv docs say: no newline translation
        return list(csv.reader(f))


def expected(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value if value[:1] in DANGEROUS_PREFIXES else value
    return "" if value is None else str(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_neutralize_prefixes_only_dangerous_text_and_keeps_it_intact(value: str) -> None:
    safe = neutralize(value)
    if value[:1] in DANGEROUS_PREFIXES:
        assert safe == "'" + value
    else:
        assert safe == value
    assert is_inert(safe) and neutralize(safe) == safe  # idempotent


@pytest.mark.parametrize("number", [-2, -2.5, 0, 3, 1e-9, 250000.0])
def test_numbers_stay_numbers(number: float) -> None:
    assert neutralize(number) is number
    [[cell]] = read_back(csv_text([[number]]))
    assert cell == str(number) and not cell.startswith("'")


def test_every_cell_reads_back_inert_and_otherwise_unchanged() -> None:
    rows = [["name", "note", "amount"], *[[h, f"note {h}", -1.5] for h in HOSTILE], [None, "", 7]]
    back = read_back(csv_text(rows))
    assert len(back) == len(rows)
    for row, got in zip(rows, back):
        assert got == [expected(v) for v in row]
        assert all(is_inert(cell) for value, cell in zip(row, got) if isinstance(value, str))


def test_dict_csv_text_neutralizes_header_and_cells_and_rejects_extra_keys() -> None:
    assert dict_csv_text([]) == ""
    back = read_back(dict_csv_text([{"=h": "=1+2", "b": 2}, {"=h": "@x"}]))
    assert back == [["'=h", "b"], ["'=1+2", "2"], ["'@x", ""]]
    with pytest.raises(ValueError, match="header lacks"):
        dict_csv_text([{"a": 1}, {"a": 1, "b": 2}])


def test_tasks_csv_writer_neutralizes_every_hostile_name() -> None:
    rows = [{"key": f"t{i}", "name": h, "notes": h, "due_on": "2027-01-04", "error": h} for i, h in enumerate(HOSTILE)]
    back = read_back(dict_csv_text(rows))
    assert back[0] == ["key", "name", "notes", "due_on", "error"]
    for original, got in zip(HOSTILE, back[1:]):
        assert got[1] == got[2] == got[4] == expected(original)
        assert is_inert(got[1])


def hostile_spec() -> Any:
    data = yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())
    data["name"] = "=1+2"
    data["tasks"] = [
        {"name": "=1+2", "notes": "+SUM(A1)", "offset_days": -1},
        {"name": "@cmd", "notes": "-2+3", "offset_days": 0},
        {"name": "-2+3 launch", "notes": "=HYPERLINK(\"http://x\")", "offset_days": 2},
        {"name": "Plain task", "notes": "a, \"quoted\"\nnote", "offset_days": 3},
    ]
    return parse_spec(yaml.safe_dump(data), "hostile.yaml")


def test_make_project_writes_an_inert_tasks_csv(tmp_path: Path) -> None:
    """The real workflow (local Asana, sqlite ledger): tasks.csv read back with csv."""
    spec = hostile_spec()
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        asyncio.run(workflows.make_project(spec, AsanaResource(), ledger, tmp_path / "out"))
    finally:
        ledger.dispose()
    back = read_file(tmp_path / "out" / "tasks.csv")
    header, rows = back[0], back[1:]
    names = [row[header.index("name")] for row in rows]
    assert names == ["'=1+2", "'@cmd", "'-2+3 launch", "Plain task"]
    assert all(is_inert(cell) for row in back for cell in row)


def test_local_sheets_writes_an_inert_media_plan_csv(tmp_path: Path) -> None:
    values = [["channel", "budget"], ["=1+2", -120.5], ["@cmd", 3], ["\t=x", 0.25], ["display", -7]]

    async def go() -> None:
        sheets = LocalSheets(tmp_path)
        ref = await sheets.create_spreadsheet("Plan", name="media_plan")
        await sheets.update_values(ref, a1_range_for(values), values)

    asyncio.run(go())
    back = read_file(tmp_path / "media_plan.csv")
    assert back == [["channel", "budget"], ["'=1+2", "-120.5"], ["'@cmd", "3"], ["'\t=x", "0.25"], ["display", "-7"]]


def test_publish_media_plan_locally_keeps_numbers_numeric(tmp_path: Path) -> None:
    spec = hostile_spec()
    from campaign_assets.logic.media_plan import build_media_plan

    plan = build_media_plan(spec)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        asyncio.run(workflows.publish_media_plan(spec, plan, SheetsResource(), ledger, tmp_path / "out"))
    finally:
        ledger.dispose()
    [path] = (tmp_path / "out").rglob("media_plan.csv")
    back = read_file(path)
    assert back[0] == list(plan.columns)
    budgets = [float(row[back[0].index("budget")]) for row in back[1:]]
    assert round(sum(budgets), 2) == spec.budget.total


class RecordingHttp:
    """Stands in for HttpSession: records the request HttpSheets would send."""

    service = "sheets"
    stats = None

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((method, path, kwargs))
        return {}


def test_google_sheets_gets_raw_values_so_text_is_never_a_formula() -> None:
    """RAW: Google stores '=1+2' as that text; numbers go as JSON numbers and
    stay numbers. The values are sent exactly as given (no ' prefix, which RAW would show)."""
    values = [["channel", "week", "budget"], ["=1+2", 1, -120.5], ["@cmd", 2, 99.99]]
    http = RecordingHttp()
    asyncio.run(HttpSheets(http).update_values(SheetRef("sid", "t", "u"), a1_range_for(values), values))  # type: ignore[arg-type]
    [(method, _path, kwargs)] = http.calls
    assert method == "PUT" and kwargs["params"]["valueInputOption"] == "RAW"
    assert kwargs["json"]["values"] == values
    assert isinstance(kwargs["json"]["values"][1][2], float) and isinstance(kwargs["json"]["values"][1][1], int)
