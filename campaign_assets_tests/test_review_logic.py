"""What would go out, its fingerprint and the review's checks (logic/review.py), and the approvals table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_assets.approvals import Approvals, NoReview
from campaign_assets.logic.media_plan import build_media_plan
from campaign_assets.logic.review import (
    EMAIL_SUBJECT_MAX,
    SOCIAL_LIMITS,
    FileOut,
    Release,
    banned_phrase_findings,
    build_release,
    fit_post,
    length_findings,
    link_findings,
    outgoing_texts,
    parse_voice,
    voice_heuristics,
)
from campaign_assets.spec import load_spec
from campaign_assets_tests.conftest import EXAMPLES

LANDING = "https://acme.github.io/site/webinars/spring/"


def spec():
    return load_spec(EXAMPLES / "spring-webinar-series.yaml")


def pieces(body_extra: str = "") -> list[dict]:
    return [
        {"key": "platform-engineers--email", "content_type": "email", "title": "Observe more, spend less",
         "stakeholder_group": "Platform Engineers",
         "body": f"# Observe more, spend less\n\nJoin Acme's spring webinars. {body_extra}\n\nSee you there."},
        {"key": "platform-engineers--social-post", "content_type": "social-post", "title": "Spring webinars",
         "stakeholder_group": "Platform Engineers",
         "body": f"# Spring webinars\n\nThree sessions on OpenTelemetry with Acme. {body_extra}"},
    ]


def files() -> list[FileOut]:
    return [FileOut("webinars/spring/index.html", "/tmp/x/landing_page.html", "ab" * 32, 1000)]


def release(**kw) -> Release:
    s = spec()
    return build_release(s, kw.get("pieces", pieces()), kw.get("meta", "Spring webinars by Acme."), kw.get("landing", LANDING), files(), build_media_plan(s))


def test_release_has_one_email_per_email_piece_and_one_post_per_piece_and_profile() -> None:
    r = release()
    assert [e.key for e in r.emails] == ["platform-engineers--email"]
    assert r.emails[0].send_at == "2027-02-22T15:00:00Z"
    assert r.emails[0].list_id == "3f6b2c1e-8d4a-4c2b-9e71-5a0d2f9c7b18"
    assert [(p.network, p.scheduled_at) for p in r.posts] == [
        ("linkedin", "2027-03-01T16:00:00Z"),
        ("twitter", "2027-03-01T17:00:00Z"),
    ]
    assert [f.path for f in r.files] == ["webinars/spring/index.html"]
    assert [(s.channel, s.dsp) for s in r.spend] == [("display", "dv360")]
    assert r.spend[0].budget_cents == 48000 * 25  # a quarter of 48,000.00, in cents


def test_every_outgoing_link_is_tracked_to_the_landing_page() -> None:
    r = release()
    assert link_findings(r) == []
    assert "utm_source=twitter" in r.posts[1].text and "utm_campaign=spring-webinar-series" in r.posts[1].text


def test_a_link_elsewhere_or_without_utm_is_a_finding() -> None:
    r = release(pieces=pieces("Read https://competitor.example/pricing first."))
    reasons = [f.reason for f in link_findings(r)]
    assert any("competitor.example" in reason for reason in reasons)
    bare = release(pieces=pieces(f"Or go to {LANDING} directly."))
    assert any("lacks utm_source" in f.reason for f in link_findings(bare))


def test_no_landing_url_is_one_clear_finding() -> None:
    r = release(landing=None)
    assert [f.item for f in link_findings(r)] == ["landing_page"]


def test_fingerprint_changes_with_anything_that_goes_out_and_only_then() -> None:
    base = release()
    assert release().fingerprint == base.fingerprint
    assert release(pieces=pieces("New line.")).fingerprint != base.fingerprint
    moved = FileOut("webinars/spring/index.html", "/elsewhere/landing_page.html", "ab" * 32, 1000)
    same_bytes = Release(**{**base.__dict__, "files": (moved,)})
    assert same_bytes.fingerprint == base.fingerprint  # where the bytes sit locally is not what goes out
    assert Release.from_dict(base.as_dict()).fingerprint == base.fingerprint


def test_lengths_are_checked_per_channel() -> None:
    long_title = "A" * (EMAIL_SUBJECT_MAX + 1)
    p = pieces()
    p[0]["body"] = f"# {long_title}\n\nBody."
    r = release(pieces=p, meta="x" * 161)
    items = {f.item for f in length_findings(r)}
    assert items == {"email:platform-engineers--email", "landing_page:meta_description"}
    assert all(len(post.text) <= SOCIAL_LIMITS[post.network] for post in r.posts)


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=0, max_size=700), limit=st.sampled_from(sorted(set(SOCIAL_LIMITS.values()))))
def test_fit_post_always_fits_and_keeps_the_link(text: str, limit: int) -> None:
    link = f"{LANDING}?utm_source=x&utm_medium=social&utm_campaign=c"
    post = fit_post(text, link, limit)
    assert len(post) <= limit and post.endswith(link)


def test_banned_phrases_match_whole_words_in_any_case_and_spacing() -> None:
    texts = {"a": "Our World-Class   Synergy is here", "b": "classy synergyx", "c": "a GAME\nchanger"}
    found = banned_phrase_findings(texts, ["world-class", "synergy", "game changer"])
    assert sorted((f.item, f.reason.split("'")[1]) for f in found) == [
        ("a", "synergy"), ("a", "world-class"), ("c", "game changer"),
    ]


def test_outgoing_texts_cover_email_posts_and_the_landing_page() -> None:
    texts = outgoing_texts(release(), "Landing text synergy")
    assert set(texts) == {"email:platform-engineers--email", "landing_page"} | {
        f"post:platform-engineers--social-post@{p}" for p in ("5f1a2b3c4d5e6f7081920a1b", "5f1a2b3c4d5e6f7081920a1c")
    }
    assert [f.item for f in banned_phrase_findings(texts, spec().brand.banned_phrases)] == ["landing_page"]


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ('{"score": 8, "notes": ["fine"]}', 8),
        ('```json\n{"score": 12, "notes": "loud"}\n```', 10),
        ("Score: 6/10 — a bit stiff", 6),
        ("I cannot judge this.", None),
    ],
)
def test_parse_voice_reads_json_or_a_score_line(answer: str, score: int | None) -> None:
    assert parse_voice(answer).score == score


def test_local_voice_heuristics_penalize_banned_phrases_and_shouting() -> None:
    s = spec()
    calm = voice_heuristics(s, {"email:x": "Acme invites you to three practical sessions."})
    loud = voice_heuristics(s, {"email:x": "Acme!!! WORLD-CLASS SYNERGY!!!"})
    assert calm["score"] > loud["score"]
    assert any("world-class" in n for n in loud["notes"])


def test_approvals_gate_follows_the_fingerprint(tmp_path: Path) -> None:
    store = Approvals(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    with pytest.raises(NoReview):
        store.decide("acme", "c", "approved", by="dana")
    first = store.record_round("acme", "c", "f1", spec_hash="s1", reviewers=["Dana"], summary={}, packet=None)
    again = store.record_round("acme", "c", "f1", spec_hash="s1", reviewers=["Dana"], summary={"n": 1}, packet="p")
    assert again.requested_at == first.requested_at and again.summary == {"n": 1}
    assert store.state("acme", "c").phase == "awaiting approval"
    with pytest.raises(ValueError, match="note"):
        store.decide("acme", "c", "rejected", by="dana")
    store.decide("acme", "c", "approved", by="dana", note="ok")
    assert store.is_approved("acme", "c", "f1")
    store.record_round("acme", "c", "f2", spec_hash="s2", reviewers=["Dana"], summary={}, packet=None)
    state = store.state("acme", "c")
    assert (state.phase, state.fingerprint) == ("awaiting approval", "f2")  # new content asks again
    assert not store.is_approved("acme", "c", "f2")
    store.decide("acme", "c", "rejected", by="sam", note="tone")
    assert store.state("acme", "c").describe().startswith("rejected by sam")
    assert [d.decision for d in store.decisions_after(0)] == ["approved", "rejected"]
    store.dispose()


def test_approvals_on_postgres(pg_url: str) -> None:
    store = Approvals(pg_url)
    store.record_round("acme", "c", "f1", spec_hash="s", reviewers=[], summary={}, packet=None)
    record = store.decide("acme", "c", "approved", by="dana")
    assert store.decisions_after(record.id - 1)[0].decided_by == "dana"
    assert store.state("acme", "c").approved
    store.dispose()


def test_build_release_without_distribution_sends_nothing() -> None:
    s = load_spec(EXAMPLES / "holiday-retail-push.yaml")
    r = build_release(s, pieces(), "x", None, files(), pd.DataFrame())
    assert (r.emails, r.posts, r.files, r.spend) == ((), (), (), ())


def test_links_to_the_brand_site_lead_to_the_tracked_landing_page() -> None:
    r = release(pieces=pieces("More at https://acme.example/webinars/spring and https://other.example/x."))
    email = r.emails[0]
    assert "https://acme.example/webinars/spring" not in email.text and "utm_source=email" in email.text
    assert all("acme.example" not in p.text for p in r.posts)
    reasons = [f.reason for f in link_findings(r)]
    assert reasons and all("other.example" in reason for reason in reasons)  # a third party stays flagged


def test_local_file_landing_pages_are_links_too() -> None:
    r = release(landing="file:///tmp/ws/acme/spring-webinar-series/site/webinars/spring/")
    assert link_findings(r) == []
