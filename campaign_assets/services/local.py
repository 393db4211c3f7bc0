"""What every local backend shares: atomic file writes under the campaign's
workspace folder, a per-call stats record like the HTTP one, and a tiny
object store of JSON records for vendors whose objects are records.

The only module that writes artifact files: ``logic/`` stays pure, and the
workflows write their local artifacts (tasks.csv, content pieces, the landing
page) through ``write_text`` here.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

from campaign_assets.services.http import ServiceStats


def write_bytes(path: Path, data: bytes) -> Path:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def unlink(path: Path) -> bool:
    """Delete a file: True if it existed, False if it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def inside(folder: Path, *parts: str) -> Path:
    """``folder/parts``, refusing anything that resolves outside ``folder``."""
    path = folder.joinpath(*parts).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ValueError(f"refusing to touch {path}: outside the campaign folder {folder}")
    return path


class LocalClient:
    """Base of every local backend: files under the campaign's workspace folder."""

    backend: ClassVar[str] = "local"

    def __init__(self, service: str, out_dir: Path):
        self.service = service
        self.out_dir = out_dir
        self.stats = ServiceStats(service=service)

    @asynccontextmanager
    async def call(self, operation: str) -> AsyncIterator[None]:
        """Count a local 'call' like an HTTP one, so metadata reads the same."""
        start = time.monotonic()
        self.stats.calls += 1
        try:
            yield
        except Exception:
            self.stats.record_failure("permanent")
            raise
        else:
            self.stats.successes += 1
        finally:
            self.stats.record_attempt(start, time.monotonic())

    # A tiny object store for vendors whose objects are records (Asana,
    # Canva, DSPs, Slack): one JSON file per object, so concurrent steps never
    # write the same file.
    def _object_path(self, kind: str, object_id: str) -> Path:
        return self.out_dir / self.service / kind / f"{object_id}.json"

    def put(self, kind: str, object_id: str, record: Mapping[str, Any]) -> None:
        write_text(self._object_path(kind, object_id), json.dumps(record, indent=2, default=str))

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        path = self._object_path(kind, object_id)
        return json.loads(path.read_text()) if path.exists() else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        folder = self.out_dir / self.service / kind
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def remove(self, kind: str, object_id: str) -> bool:
        """Delete a record: True if it existed, False if it was already gone."""
        return unlink(self._object_path(kind, object_id))

    def find(self, kind: str, marker: str) -> dict[str, Any] | None:
        return next((r for r in self.all(kind) if r.get("marker") == marker), None)
