"""Review rounds and approval decisions (issue #13): who approved what, when.

A *review round* is one fingerprint of what would go out (``logic/review.py``
``Release.fingerprint``) put in front of the reviewers: recorded once, when
``campaign_review`` first sees that fingerprint. A *decision* (approved or
rejected) is a person's answer for one fingerprint, with who, when, a note
and where it was given (the CLI or the Dagster approval job). Decisions are
never updated or deleted: the newest decision for a fingerprint is the one
that counts, and the table is the audit trail.

The gate's state for a campaign is the decision for the *current*
fingerprint: none yet -> awaiting approval; approved; rejected. A new
fingerprint has no decision, so any change to what would go out asks again.
Same database as the ledger (SQLAlchemy Core; SQLite or Postgres).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from campaign_assets.core.db import Database, metadata, upsert

Decision = Literal["approved", "rejected"]
Phase = Literal["awaiting approval", "approved", "rejected"]

review_rounds = sa.Table(
    "review_rounds",
    metadata,
    sa.Column("organization", sa.String(64), primary_key=True),
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("reviewers", sa.Text, nullable=False, default="[]"),  # JSON list of names
    sa.Column("summary", sa.Text, nullable=False, default="{}"),  # JSON: counts, findings, voice score
    sa.Column("packet", sa.Text),  # where the review packet is (a path or URL)
)

approval_decisions = sa.Table(
    "approval_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("organization", sa.String(64), nullable=False),
    sa.Column("campaign", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("decided_by", sa.String(120), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("via", sa.String(32), nullable=False),  # "cli" or "dagster:<run id>"
    sa.Index("ix_decisions_campaign", "organization", "campaign", "fingerprint"),
)


@dataclass(frozen=True)
class ReviewRound:
    organization: str
    campaign: str
    fingerprint: str
    requested_at: dt.datetime
    spec_hash: str
    reviewers: list[str]
    summary: dict[str, Any]
    packet: str | None


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    organization: str
    campaign: str
    fingerprint: str
    decision: Decision
    decided_by: str
    note: str
    decided_at: dt.datetime
    via: str


@dataclass(frozen=True)
class GateState:
    """Where a campaign's approval stands for one fingerprint."""

    phase: Phase
    fingerprint: str
    round: ReviewRound | None
    decision: DecisionRecord | None

    @property
    def approved(self) -> bool:
        return self.phase == "approved"

    def describe(self) -> str:
        if self.decision is not None and self.phase == "approved":
            return f"approved by {self.decision.decided_by} at {_when(self.decision.decided_at)}"
        if self.decision is not None and self.phase == "rejected":
            return f"rejected by {self.decision.decided_by} at {_when(self.decision.decided_at)}: {self.decision.note}"
        since = f" since {_when(self.round.requested_at)}" if self.round else ""
        asked = f", asked: {', '.join(self.round.reviewers)}" if self.round and self.round.reviewers else ""
        return f"awaiting approval{since}{asked}"


def _when(moment: dt.datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; we store UTC
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class NoReview(LookupError):
    """A decision was asked for a campaign that has never been reviewed."""


class Approvals(Database):
    """Typed access to the review rounds and decisions (the ledger's database)."""

    def __init__(self, url: str):
        super().__init__(url, review_rounds, approval_decisions)

    # ---- review rounds --------------------------------------------------
    def record_round(
        self,
        organization: str,
        campaign: str,
        fingerprint: str,
        *,
        spec_hash: str,
        reviewers: list[str],
        summary: dict[str, Any],
        packet: str | None,
    ) -> ReviewRound:
        """The round of ``fingerprint``: recorded the first time (its
        ``requested_at`` is when the reviewers were first asked), its summary
        refreshed after that."""
        t = review_rounds
        now = dt.datetime.now(dt.timezone.utc)
        values = dict(spec_hash=spec_hash, reviewers=json.dumps(reviewers), summary=json.dumps(summary, default=str), packet=packet)

        row = dict(organization=organization, campaign=campaign, fingerprint=fingerprint, requested_at=now, **values)
        self._tx(lambda tx: upsert(tx, t, row, values))
        found = self.round(organization, campaign, fingerprint)
        assert found is not None
        return found

    def round(self, organization: str, campaign: str, fingerprint: str) -> ReviewRound | None:
        t = review_rounds
        query = sa.select(t).where(t.c.organization == organization, t.c.campaign == campaign, t.c.fingerprint == fingerprint)
        row = self._read(lambda conn: conn.execute(query).first())
        return _round(row) if row else None

    def latest_round(self, organization: str, campaign: str) -> ReviewRound | None:
        t = review_rounds
        query = (
            sa.select(t)
            .where(t.c.organization == organization, t.c.campaign == campaign)
            .order_by(t.c.requested_at.desc())
            .limit(1)
        )
        row = self._read(lambda conn: conn.execute(query).first())
        return _round(row) if row else None

    # ---- decisions --------------------------------------------------------
    def decide(
        self,
        organization: str,
        campaign: str,
        decision: Decision,
        *,
        by: str,
        note: str = "",
        via: str = "cli",
        fingerprint: str | None = None,
    ) -> DecisionRecord:
        """Record a person's decision on ``fingerprint`` (default: the latest
        review round's, what the reviewers were last shown)."""
        if decision not in ("approved", "rejected"):
            raise ValueError(f"decision must be approved or rejected, not {decision!r}")
        if not by.strip():
            raise ValueError("a decision needs the name of who made it")
        if decision == "rejected" and not note.strip():
            raise ValueError("a rejection needs a note saying why")
        if fingerprint is None:
            latest = self.latest_round(organization, campaign)
            if latest is None:
                raise NoReview(f"{organization}/{campaign} has not been reviewed yet: launch it first")
            fingerprint = latest.fingerprint
        elif self.round(organization, campaign, fingerprint) is None:
            raise NoReview(f"{organization}/{campaign} has no review round for fingerprint {fingerprint[:12]}")
        t = approval_decisions
        values = dict(
            organization=organization,
            campaign=campaign,
            fingerprint=fingerprint,
            decision=decision,
            decided_by=by.strip(),
            note=note.strip(),
            decided_at=dt.datetime.now(dt.timezone.utc),
            via=via,
        )
        new_id = self._tx(lambda tx: tx.execute(sa.insert(t).values(**values)).inserted_primary_key[0])
        return DecisionRecord(id=int(new_id), **values)  # type: ignore[arg-type]

    def decision_for(self, organization: str, campaign: str, fingerprint: str) -> DecisionRecord | None:
        t = approval_decisions
        query = (
            sa.select(t)
            .where(t.c.organization == organization, t.c.campaign == campaign, t.c.fingerprint == fingerprint)
            .order_by(t.c.id.desc())
            .limit(1)
        )
        row = self._read(lambda conn: conn.execute(query).first())
        return _decision(row) if row else None

    def decisions_after(self, last_id: int, limit: int = 100) -> list[DecisionRecord]:
        """Decisions newer than ``last_id``, oldest first (the approvals sensor's cursor)."""
        t = approval_decisions
        query = sa.select(t).where(t.c.id > last_id).order_by(t.c.id).limit(limit)
        return [_decision(r) for r in self._read(lambda conn: list(conn.execute(query)))]

    def history(self, organization: str, campaign: str) -> list[DecisionRecord]:
        t = approval_decisions
        query = sa.select(t).where(t.c.organization == organization, t.c.campaign == campaign).order_by(t.c.id)
        return [_decision(r) for r in self._read(lambda conn: list(conn.execute(query)))]

    # ---- the gate -------------------------------------------------------------
    def state(self, organization: str, campaign: str, fingerprint: str | None = None) -> GateState | None:
        """The gate for ``fingerprint`` (default: the latest round's); None
        when the campaign was never reviewed."""
        found = self.round(organization, campaign, fingerprint) if fingerprint else self.latest_round(organization, campaign)
        if fingerprint is None and found is None:
            return None
        fingerprint = fingerprint or found.fingerprint  # type: ignore[union-attr]
        decision = self.decision_for(organization, campaign, fingerprint)
        phase: Phase = decision.decision if decision else "awaiting approval"  # type: ignore[assignment]
        return GateState(phase, fingerprint, found, decision)

    def is_approved(self, organization: str, campaign: str, fingerprint: str) -> bool:
        decision = self.decision_for(organization, campaign, fingerprint)
        return decision is not None and decision.decision == "approved"


def _round(r: sa.Row) -> ReviewRound:
    return ReviewRound(
        organization=r.organization,
        campaign=r.campaign,
        fingerprint=r.fingerprint,
        requested_at=r.requested_at,
        spec_hash=r.spec_hash,
        reviewers=json.loads(r.reviewers or "[]"),
        summary=json.loads(r.summary or "{}"),
        packet=r.packet,
    )


def _decision(r: sa.Row) -> DecisionRecord:
    return DecisionRecord(
        id=r.id,
        organization=r.organization,
        campaign=r.campaign,
        fingerprint=r.fingerprint,
        decision=r.decision,
        decided_by=r.decided_by,
        note=r.note,
        decided_at=r.decided_at,
        via=r.via,
    )
