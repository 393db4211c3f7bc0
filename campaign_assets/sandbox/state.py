"""What the sandbox remembers: created objects, the call log and traffic counters."""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from campaign_assets.sandbox.config import VENDOR_NAMES, FaultKind

AuthOutcome = Literal["ok", "missing", "revoked"]


@dataclass
class StoredObject:
    """One vendor object; `data` holds its fields, `deleted` marks a vendor-side delete."""

    kind: str
    id: str
    data: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    deleted: bool = False


class ObjectStore:
    """The objects of one vendor, by id, in creation order."""

    def __init__(self) -> None:
        self._objects: dict[str, StoredObject] = {}

    def add(self, kind: str, object_id: str, data: dict[str, Any]) -> StoredObject:
        stored = StoredObject(kind=kind, id=object_id, data=data)
        self._objects[object_id] = stored
        return stored

    def find(self, kind: str, object_id: str) -> StoredObject | None:
        """The live (not deleted) object of that kind and id, if any."""
        stored = self._objects.get(object_id)
        if stored is None or stored.kind != kind or stored.deleted:
            return None
        return stored

    def live(self, kind: str) -> list[StoredObject]:
        return [o for o in self._objects.values() if o.kind == kind and not o.deleted]

    def __contains__(self, object_id: str) -> bool:
        return object_id in self._objects

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(o) for o in self._objects.values()]


@dataclass
class CallRecord:
    """One request as the sandbox saw it.

    `status` is the HTTP status the sandbox produced; it is `None` when the connection
    was dropped before any response (`reset`). For `lost_response` it is the status
    of the committed response the client never received in full.
    """

    vendor: str
    method: str
    endpoint: str
    path: str
    start: float
    end: float | None = None
    status: int | None = None
    fault: FaultKind | None = None
    rate_limited: bool = False
    auth: AuthOutcome | None = None


@dataclass
class Traffic:
    """In-flight counts of one vendor, overall and per endpoint, with their maxima."""

    calls: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    endpoint_in_flight: Counter[str] = field(default_factory=Counter)
    endpoint_max_in_flight: dict[str, int] = field(default_factory=dict)

    def enter(self, endpoint: str) -> None:
        self.calls[endpoint] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.endpoint_in_flight[endpoint] += 1
        self.endpoint_max_in_flight[endpoint] = max(
            self.endpoint_max_in_flight.get(endpoint, 0), self.endpoint_in_flight[endpoint]
        )

    def leave(self, endpoint: str) -> None:
        self.in_flight -= 1
        self.endpoint_in_flight[endpoint] -= 1


class SandboxState:
    """Objects, call log and traffic of every vendor; replaced whole by a reset."""

    def __init__(self) -> None:
        self.stores: dict[str, ObjectStore] = {name: ObjectStore() for name in VENDOR_NAMES}
        self.traffic: dict[str, Traffic] = {name: Traffic() for name in VENDOR_NAMES}
        self.calls: list[CallRecord] = []

    def begin_call(self, vendor: str, endpoint: str, method: str, path: str) -> CallRecord:
        record = CallRecord(vendor=vendor, method=method, endpoint=endpoint, path=path, start=time.time())
        self.calls.append(record)
        self.traffic[vendor].enter(endpoint)
        return record

    def end_call(self, record: CallRecord) -> None:
        record.end = time.time()
        self.traffic[record.vendor].leave(record.endpoint)

    def to_json(self) -> dict[str, Any]:
        return {
            "vendors": {
                name: {
                    "objects": self.stores[name].to_json(),
                    "calls_by_endpoint": dict(traffic.calls),
                    "in_flight": traffic.in_flight,
                    "max_concurrency": traffic.max_in_flight,
                    "max_concurrency_by_endpoint": traffic.endpoint_max_in_flight,
                }
                for name, traffic in self.traffic.items()
            },
            "calls": [asdict(record) for record in self.calls],
        }


class IdFactory:
    """Vendor-looking ids, unique for the app's lifetime (a reset never reuses one)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._salt = secrets.token_hex(8)
        self._numeric_base = 1_200_000_001_000_000 + secrets.randbelow(10**14)

    def token(self, length: int) -> str:
        """`length` URL-safe characters (letters, digits, `-`, `_`)."""
        digest = hashlib.sha256(f"{self._salt}:{next(self._counter)}".encode()).digest()
        return base64.urlsafe_b64encode(digest).decode()[:length]

    def alphanumeric(self, length: int) -> str:
        digest = hashlib.sha256(f"{self._salt}:{next(self._counter)}".encode()).hexdigest()
        return digest[:length]

    def numeric(self) -> str:
        """An Asana-style numeric gid."""
        return str(self._numeric_base + next(self._counter))
