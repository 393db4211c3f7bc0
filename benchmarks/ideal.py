"""The ideal schedule: a zero-overhead event simulation of the seed workload.

Each call starts as soon as its inputs exist and its service has a free slot;
nothing else costs time. The workload lists exactly the calls one campaign
run makes (DESIGN.md §10), with the sandbox's per-endpoint latencies. The caps
are a caps profile's (``profile_slots``: services sharing a vendor share its
slots): 286 s at scale 1 under the seed's, 196 s under the vendors' limits.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from campaign_assets.settings import SEED_PROFILE, CapsProfile
from campaign_assets_tests.support.in_flight import peak_in_flight


@dataclass(frozen=True)
class Call:
    name: str
    service: str
    seconds: float
    after: tuple[str, ...] = ()
    holds_slot: bool = True  # a Canva upload job runs at the vendor without a request in flight


@dataclass
class Schedule:
    start: dict[str, float] = field(default_factory=dict)
    end: dict[str, float] = field(default_factory=dict)

    @property
    def makespan(self) -> float:
        return max(self.end.values(), default=0.0)

    def max_in_flight(self, calls: Iterable[Call], service: str) -> int:
        return peak_in_flight(
            (self.start[c.name], self.end[c.name]) for c in calls if c.service == service and c.holds_slot
        )


def simulate(calls: list[Call], caps: Mapping[str, int], groups: Mapping[str, str] | None = None) -> Schedule:
    """List scheduling in time order: when a call's inputs are done it waits
    for a slot of its service (first come, first served).

    ``groups``: services that share one vendor's cap (service -> group, as the
    slot board's shared slots); ``caps`` then holds the group's cap by the
    group's name. Every other service's cap is ``caps[service]``."""
    groups = groups or {}
    by_name = {c.name: c for c in calls}
    if len(by_name) != len(calls):
        raise ValueError("call names repeat")
    waiting_on = {c.name: set(c.after) for c in calls}
    dependents: dict[str, list[str]] = defaultdict(list)
    for c in calls:
        for dep in c.after:
            if dep not in by_name:
                raise ValueError(f"{c.name} waits on unknown call {dep}")
            dependents[dep].append(c.name)
    def slot(service: str) -> str:
        return groups.get(service, service)

    free = {slot(c.service): caps[slot(c.service)] for c in calls if c.holds_slot}
    queues: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    events: list[tuple[float, int, str]] = []  # (time, seq, call that ends)
    schedule = Schedule()
    seq = 0

    def start(name: str, now: float) -> None:
        nonlocal seq
        schedule.start[name] = now
        seq += 1
        heapq.heappush(events, (now + by_name[name].seconds, seq, name))

    def ready(name: str, now: float) -> None:
        nonlocal seq
        call = by_name[name]
        if not call.holds_slot:
            start(name, now)
        elif free[slot(call.service)] > 0:
            free[slot(call.service)] -= 1
            start(name, now)
        else:
            seq += 1
            heapq.heappush(queues[slot(call.service)], (now, seq, name))

    for c in calls:
        if not c.after:
            ready(c.name, 0.0)
    while events:
        now, _, name = heapq.heappop(events)
        schedule.end[name] = now
        call = by_name[name]
        if call.holds_slot:
            key = slot(call.service)
            free[key] += 1
            if queues[key]:
                _, _, queued = heapq.heappop(queues[key])
                free[key] -= 1
                start(queued, now)
        for dep in dependents[name]:
            waiting_on[dep].discard(name)
            if not waiting_on[dep]:
                ready(dep, now)
    if len(schedule.end) != len(calls):
        raise ValueError("the workload has a cycle")
    return schedule


def sequential_seconds(calls: Iterable[Call]) -> float:
    """The seeds' "before": one call at a time."""
    return sum(c.seconds for c in calls)


# Latencies at scale 1.0 (DESIGN.md §10); the sandbox serves the same.
SEED_LATENCY = {
    "llm": 30.0,
    "docs": 15.0,
    "sheets": 15.0,
    "asana": 20.0,
    "images": 90.0,
    "canva_upload": 30.0,
    "canva_design": 15.0,
    "dsp": 1.0,
    "slack": 1.0,
}
SEED_CAPS = dict(SEED_PROFILE.caps)


def profile_slots(profile: CapsProfile) -> tuple[dict[str, int], dict[str, str]]:
    """``simulate``'s ``caps`` and ``groups`` for a caps profile: each service's
    own cap, and each shared group's (OpenAI's, for chat and images together)."""
    caps = {service: cap for service, cap in profile.caps.items() if service not in profile.shared}
    return caps | dict(profile.group_caps), dict(profile.shared)


def seed_workload(
    *,
    tasks: int = 13,
    sizes: int = 4,
    pieces: int = 9,
    dsp_lines: int = 2,
    scale: float = 1.0,
    latency: Mapping[str, float] = SEED_LATENCY,
    slack: bool = True,
) -> list[Call]:
    """Every call one campaign run makes, with its inputs."""
    s = {k: v * scale for k, v in latency.items()}
    calls = [
        Call("brief.llm", "llm", s["llm"]),
        Call("brief.doc_create", "docs", s["docs"], ("brief.llm",)),
        Call("brief.doc_write", "docs", s["docs"], ("brief.doc_create",)),
        Call("plan.sheet_create", "sheets", s["sheets"]),
        Call("plan.values_update", "sheets", s["sheets"], ("plan.sheet_create",)),
        Call("asana.project", "asana", s["asana"]),
    ]
    calls += [Call(f"asana.task{i}", "asana", s["asana"], ("asana.project",)) for i in range(tasks)]
    for i in range(sizes):
        calls += [
            Call(f"creative{i}.image", "images", s["images"]),
            Call(f"creative{i}.upload", "canva", s["canva_upload"], (f"creative{i}.image",)),
            Call(f"creative{i}.design", "canva", s["canva_design"], (f"creative{i}.upload",)),
        ]
    calls += [Call(f"piece{i}.llm", "llm", s["llm"], ("brief.doc_write",)) for i in range(pieces)]
    # The seed's DSP channels: display on Amazon DSP, video on The Trade Desk (then DV360 if more).
    dsp_services = ("amazon_dsp", "trade_desk", "dv360")
    calls += [Call(f"dsp{i}", dsp_services[i % 3], s["dsp"], ("plan.values_update",)) for i in range(dsp_lines)]
    everything = tuple(c.name for c in calls)
    calls += [
        Call("report.llm", "llm", s["llm"], everything),
        Call("report.doc_create", "docs", s["docs"], ("report.llm",)),
        Call("report.doc_write", "docs", s["docs"], ("report.doc_create",)),
    ]
    if slack:
        calls.append(Call("report.slack", "slack", s["slack"], ("report.doc_write",)))
    return calls
