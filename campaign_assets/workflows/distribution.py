"""email_send, social_posts, published_site: what goes out, only once approved.

Each asset sends its part of the approved ``Release`` (``logic/review.py``)
and nothing else. Before any call it checks, itself, that a person approved
exactly this release's fingerprint (``refusal``): otherwise it sends nothing,
writes no ledger row, and says why.

Made, one ledger item per object, exactly once (a lost response included:
the clients find what a lost create left):
- ``email_send``: ``send:<piece>`` (email): a SendGrid single send to the
  spec's list, scheduled at its send time and cancellable until then;
- ``social_posts``: ``post:<piece>@<profile>`` (social): one Buffer update per
  post and profile, scheduled;
- ``published_site``: ``file:<path>`` (pages): the landing page and the
  creatives on GitHub Pages through the contents API.

When approved content changes, the next approval updates each object: a send
or a post is replaced (cancelled and deleted, then scheduled anew, while it
has not gone out), a file is written over (with its current sha).

Torn down in reverse: files removed, posts deleted, sends cancelled then deleted.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from campaign_assets.approvals import Approvals
from campaign_assets.core.items import Attempt, Item, VendorRef, locate, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.review import EmailOut, FileOut, PostOut, Release
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, deleted_by_id, scope_of

EMAIL = "email_send"
SOCIAL = "social_posts"
SITE = "published_site"
SEND, POST, FILE = "send:", "post:", "file:"


def refusal(approvals: Approvals, spec: CampaignSpec, release: Release) -> str | None:
    """Why nothing may go out for ``release`` (None: a person approved exactly it)."""
    state = approvals.state(spec.organization, spec.id, release.fingerprint)
    if state is None or state.round is None:
        return f"not sent: content {release.fingerprint[:12]} was never put to the reviewers"
    if not state.approved:
        return f"not sent: {state.describe()} (content {release.fingerprint[:12]})"
    return None


def _when(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


# ---- email ---------------------------------------------------------------------------
async def send_emails(spec: CampaignSpec, release: Release, fingerprint: str, email: Any, ledger: Ledger, out: Path) -> Outcome:
    by_key = {f"{SEND}{e.key}": e for e in release.emails}
    async with email.session(out) as client:

        async def create(item: Item, attempt: Attempt) -> VendorRef:
            e: EmailOut = by_key[item.key]
            send = await attempt.adopt_or_create(
                lambda marker: client.find_send(marker=marker),
                lambda marker: client.schedule_send(
                    f"{spec.name} — {e.key}", e.subject, e.html, e.text, e.list_id, _when(e.send_at), marker=marker
                ),
            )
            return VendorRef(
                send.send_id, send.url,
                {"list_id": e.list_id, "send_at": e.send_at, "subject": e.subject, "status": send.status, "fingerprint": fingerprint},
            )

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            # A scheduled send is replaced while it has not gone out (a sent one
            # cannot be changed: cancel_send says so and the item fails).
            await client.cancel_send(ref.vendor_id)
            await client.delete_send(ref.vendor_id)
            return await create(item, Attempt(attempt.marker, recovering=False))

        items = [Item(key, {"subject": e.subject, "html": e.html, "text": e.text, "list_id": e.list_id, "send_at": e.send_at})
                 for key, e in by_key.items()]
        report = await run_items(ledger, scope_of(spec, EMAIL), "email", items, create=create, update=update)
    value = [dict(r.ref.data, key=r.key, send_id=r.ref.vendor_id, url=r.ref.url) for r in report.succeeded if r.ref]
    return Outcome(value, [report], [client])


# ---- social ----------------------------------------------------------------------------
async def schedule_posts(spec: CampaignSpec, release: Release, fingerprint: str, social: Any, ledger: Ledger, out: Path) -> Outcome:
    by_key = {f"{POST}{p.key}": p for p in release.posts}
    async with social.session(out) as client:

        async def create(item: Item, attempt: Attempt) -> VendorRef:
            p: PostOut = by_key[item.key]
            at = _when(p.scheduled_at)
            post = await attempt.adopt_or_create(
                lambda _marker: client.find_post(p.profile_id, p.text, at),
                lambda marker: client.schedule_post(p.profile_id, p.text, at, marker=marker),
            )
            return VendorRef(
                post.post_id, post.url,
                {"profile_id": p.profile_id, "network": p.network, "scheduled_at": p.scheduled_at, "fingerprint": fingerprint},
            )

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            await client.delete_post(ref.vendor_id)
            return await create(item, Attempt(attempt.marker, recovering=False))

        items = [Item(key, {"profile_id": p.profile_id, "text": p.text, "scheduled_at": p.scheduled_at}) for key, p in by_key.items()]
        report = await run_items(ledger, scope_of(spec, SOCIAL), "social", items, create=create, update=update)
    value = [dict(r.ref.data, key=r.key, post_id=r.ref.vendor_id, url=r.ref.url) for r in report.succeeded if r.ref]
    return Outcome(value, [report], [client])


# ---- web -------------------------------------------------------------------------------
async def publish_site(spec: CampaignSpec, release: Release, fingerprint: str, pages: Any, ledger: Ledger, out: Path) -> Outcome:
    by_key = {f"{FILE}{f.path}": f for f in release.files}
    async with pages.session(out) as client:

        async def create(item: Item, attempt: Attempt) -> VendorRef:
            f: FileOut = by_key[item.key]
            content = Path(f.source).read_bytes()
            published = await client.publish_file(f.path, content, f"{spec.name}: publish {f.path} {attempt.marker}")
            return VendorRef(published.sha, published.url, {"path": f.path, "sha256": f.sha256, "fingerprint": fingerprint})

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await create(item, attempt)  # the client writes over the file with its current sha

        items = [Item(key, {"path": f.path, "sha256": f.sha256}) for key, f in by_key.items()]
        report = await run_items(ledger, scope_of(spec, SITE), "pages", items, create=create, update=update)
    value = [dict(r.ref.data, key=r.key, url=r.ref.url) for r in report.succeeded if r.ref]
    index = next((v["url"] for v in value if v["path"].endswith("/index.html")), None)
    return Outcome(value, [report], [client], links={"published_page": index})


# ---- teardown ----------------------------------------------------------------------------
async def _cancel_and_delete_send(email: Any, row: LedgerRow, ctx: Context) -> bool:
    found = await locate(row, lambda marker: _send_id(email, marker))
    if not found:
        return False
    await email.cancel_send(found)
    return await email.delete_send(found)


async def _send_id(email: Any, marker: str) -> str | None:
    return getattr(await email.find_send(marker=marker), "send_id", None)


async def _delete_post(social: Any, row: LedgerRow, ctx: Context) -> bool:
    return await deleted_by_id(social.delete_post, row.vendor_id)


async def _remove_file(pages: Any, row: LedgerRow, ctx: Context) -> bool:
    path = row.item_key.removeprefix(FILE)
    return await pages.delete_file(path, f"teardown: remove {path} {row.marker}")


# Made email, then social, then web; torn down in reverse (files first).
STAGES = (
    Stage(EMAIL, EMAIL, (Rule("email", _cancel_and_delete_send, SEND),)),
    Stage(SOCIAL, SOCIAL, (Rule("social", _delete_post, POST),)),
    Stage(SITE, SITE, (Rule("pages", _remove_file, FILE),)),
)
