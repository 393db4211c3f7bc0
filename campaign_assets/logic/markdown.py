"""Reading and writing the markdown the workflows hand on: brief sections,
key messages, a piece's title, the summary report. Pure functions only."""

from __future__ import annotations

import re
from typing import Any

from campaign_assets.logic.prompts import BRIEF_SECTIONS


def section(markdown: str, name: str) -> str:
    match = re.search(rf"^##\s+{re.escape(name)}\s*$(.*?)(?=^##\s|\Z)", markdown, flags=re.M | re.S)
    return match.group(1).strip() if match else ""


def missing_sections(markdown: str) -> list[str]:
    headings = {m.strip().lower() for m in re.findall(r"^##\s+(.+)$", markdown, flags=re.M)}
    return [s for s in BRIEF_SECTIONS if s.lower() not in headings]


def key_messages(brief_markdown: str) -> dict[str, str]:
    messages = {}
    for m in re.finditer(r"^-\s+\*\*(.+?):\*\*\s+(.+)$", section(brief_markdown, "Key Messages"), flags=re.M):
        messages[m.group(1).strip()] = m.group(2).strip()
    return messages


def first_line_title(body: str, fallback: str) -> str:
    """A piece's title: its first non-empty line, without heading marks or ``Subject:``."""
    for line in body.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line.removeprefix("Subject:").strip()[:200]
    return fallback


def report_markdown(name: str, summary: str, facts: dict[str, Any], links: dict[str, str | None]) -> str:
    lines = [f"# {name} — Summary Report", "", summary.strip(), "", "## Artifacts", ""]
    lines += [f"- {label}: {url}" for label, url in links.items() if url]
    lines += ["", "## Items", "", "| asset | items |", "| --- | ---: |"]
    lines += [f"| {asset} | {n} |" for asset, n in facts["items_by_asset"].items()]
    lines += ["", "## Failures", ""]
    lines += [f"- `{f['asset']}` / `{f['item']}`: {f['error']}" for f in facts["failures"]] or ["None."]
    if facts["fallbacks"]:
        lines += ["", "## Made locally while the vendor was down", ""]
        lines += [f"- `{f['asset']}` / `{f['item']}`: {f['reason']}" for f in facts["fallbacks"]]
        lines += ["", "The next materialization publishes them to the vendor."]
    return "\n".join(lines) + "\n"
