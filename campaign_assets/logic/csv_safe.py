"""Every CSV this project writes, written one way: hostile text stays inert.

Spec text (campaign name, task names and notes, ...) and vendor text (error
messages) end up in CSV files people open in Excel, LibreOffice or Google
Sheets. A spreadsheet reads a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula (tab and carriage return are stripped by some importers,
exposing what follows), so a task named ``=HYPERLINK(...)`` would be live the
moment someone opens tasks.csv. This is CSV injection (OWASP "CSV Injection").

The rule, applied by ``neutralize`` to every cell of every row:

- a **str** cell whose first character is one of ``= + - @ \\t \\r`` gets one
  single quote ``'`` in front of it; nothing else in the value changes (the
  csv module still quotes commas, quotes and newlines as usual). Spreadsheets
  show a leading ``'`` as "this is text" and drop it from the display.
- every other cell is left alone: an ``int``/``float`` (a budget, a week
  number, a negative amount) is a number, not text, and is written as the
  number it is; ``None`` becomes an empty cell as the csv module does.
- lines end with CRLF (RFC 4180), so a cell holding a carriage return or a
  newline anywhere is quoted and a reader sees the same rows that were written.
- the rule is idempotent: a neutralized cell starts with ``'``, which is not
  dangerous, so running it twice changes nothing.

Only ``csv_text`` and ``dict_csv_text`` build CSV text in campaign_assets;
``grep -rn "csv" campaign_assets`` should find no other writer.

The Google Sheets HTTP backend does not go through this module: it sends
``valueInputOption=RAW``, so Google stores each string exactly as sent (never
parsed as a formula) and each JSON number as a number. Prefixing there would
put a visible ``'`` into the sheet, because RAW does not interpret it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DANGEROUS_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
NEUTRALIZER = "'"


def neutralize(value: Any) -> Any:
    """The cell as it is safe to write: a dangerous str gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(DANGEROUS_PREFIXES):
        return NEUTRALIZER + value
    return value


def is_inert(cell: str) -> bool:
    """A cell read back from a CSV is inert when it cannot start a formula."""
    return not cell.startswith(DANGEROUS_PREFIXES)


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [neutralize(value) for value in row]


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows (header included, if any) as CSV text with every cell neutralized."""
    buf = io.StringIO()
    # RFC 4180 line ends: the csv module quotes a cell that contains any
    # character of the line terminator, so with "\r\n" a stray "\r" inside a
    # cell is quoted too (with "\n" alone it was not, and split the row).
    csv.writer(buf, lineterminator="\r\n").writerows(safe_row(row) for row in rows)
    return buf.getvalue()


def dict_csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """Records as CSV text: a header from the first record's keys, then one
    line per record (missing keys are empty cells, extra keys an error, as
    with csv.DictWriter); '' when there are none."""
    if not rows:
        return ""
    fields = list(rows[0])
    for row in rows:
        extra = set(row) - set(fields)
        if extra:
            raise ValueError(f"record has fields the header lacks: {sorted(extra)}")
    return csv_text([fields, *([row.get(name, "") for name in fields] for row in rows)])
