"""market_research: the extractor, the SSRF guard, the bounded fetcher, the
vault's folders and metadata, and the asset feeding the brief."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import ipaddress
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from campaign_assets.ledger import Ledger, Scope, content_library
from campaign_assets.logic.extract import extract
from campaign_assets.logic.prompts import PATTERN_INSTRUCTIONS, content_request
from campaign_assets.services import web
from campaign_assets.services.web import BlockedAddress, FetchError, WebFetcher, address_refusal
from campaign_assets.spec import PATTERNS, SpecError, parse_spec

from .conftest import EXAMPLES, SEED
from .test_assets import materialize

FIXTURE = Path(__file__).parent / "fixtures" / "competitor.html"
TITLE = "Globex Observe — Full-stack observability for platform teams"


# ---- extraction -------------------------------------------------------------------
def test_extractor_reads_title_description_headings_and_claims_from_saved_html() -> None:
    page = extract(FIXTURE.read_text())
    assert page.title == TITLE
    assert page.description.startswith("Globex Observe unifies metrics, logs and traces")
    assert page.headings == [
        "See everything. Fix anything.", "Built on OpenTelemetry", "Trusted by 3,000 engineering teams", "Pricing",
    ]
    assert page.claims == [
        "Globex Observe gives platform teams one view of every service.",
        "Instrument once with open standards and keep your data portable.",
        "Cut mean time to resolution by 60% in the first quarter.",
        "Predictable pricing per host, never per gigabyte.",
        "From startups to the Fortune 500, teams rely on Globex to keep their services up.",
    ]
    assert not any("script" in c or "Copyright" in c or "Pricing for teams" in c for c in page.claims)


# ---- the SSRF guard ------------------------------------------------------------------
@pytest.mark.parametrize(
    "address, kind",
    [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.9", "private"),
        ("192.168.1.1", "private"), ("fd00::1", "private"), ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"), ("100.64.0.1", "not a globally routable"),
    ],
)
def test_every_non_public_address_class_is_refused(address: str, kind: str) -> None:
    reason = address_refusal(ipaddress.ip_address(address))
    assert reason and kind in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def _resolver(table: dict[str, str]):
    def fake(host: str, port: int, *args: object) -> list:
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        family = socket.AF_INET6 if ":" in table[host] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (table[host], port))]

    return fake


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "javascript:alert(1)"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(FetchError, match="scheme"):
        asyncio.run(WebFetcher().fetch(url))


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "getaddrinfo", _resolver({"intranet.example.com": "10.0.0.7"}))
    with pytest.raises(BlockedAddress, match=r"intranet.example.com resolves to 10.0.0.7 is a private address"):
        asyncio.run(WebFetcher().fetch("https://intranet.example.com/"))


def test_a_literal_metadata_address_is_refused() -> None:
    with pytest.raises(BlockedAddress, match="link-local"):
        asyncio.run(WebFetcher().fetch("http://169.254.169.254/latest/meta-data/"))


# ---- a local site ----------------------------------------------------------------------
class Site(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    delays: dict[str, float] = {}
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append(self.path)
        time.sleep(self.delays.get(self.path, 0))
        status, headers, body = self.routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"missing"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers and status < 300 or status >= 400:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[tuple[str, type[Site]]]:
    handler = type("TestSite", (Site,), {"routes": {}, "delays": {}, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler
    finally:
        server.shutdown()
        server.server_close()


HTML = {"Content-Type": "text/html; charset=utf-8"}


def allowed(**kw: object) -> WebFetcher:
    return WebFetcher(allow_hosts=frozenset({"127.0.0.1"}), **kw)  # type: ignore[arg-type]


def test_loopback_is_refused_unless_allowlisted(site) -> None:
    base, handler = site
    handler.routes["/"] = (200, HTML, FIXTURE.read_bytes())
    with pytest.raises(BlockedAddress, match="loopback"):
        asyncio.run(WebFetcher().fetch(base + "/"))
    page = asyncio.run(allowed().fetch(base + "/"))
    assert extract(page.html).title == TITLE
    assert handler.seen == ["/robots.txt", "/"]


def test_a_redirect_to_loopback_is_refused(site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A public-looking name (allowlisted here, it is the test server) that
    redirects to a non-allowlisted loopback name: the hop is vetted and refused."""
    base, handler = site
    port = base.rsplit(":", 1)[1]
    monkeypatch.setattr(web, "getaddrinfo", _resolver({"competitor.example": "127.0.0.1", "127.0.0.1": "127.0.0.1"}))
    handler.routes["/go"] = (302, {"Location": f"http://127.0.0.1:{port}/secret"}, b"")
    fetcher = WebFetcher(allow_hosts=frozenset({"competitor.example"}))
    with pytest.raises(BlockedAddress, match="127.0.0.1 is a loopback address"):
        asyncio.run(fetcher.fetch(f"http://competitor.example:{port}/go"))
    assert "/secret" not in handler.seen


def test_a_redirect_to_another_scheme_is_refused(site) -> None:
    base, handler = site
    handler.routes["/go"] = (301, {"Location": "file:///etc/passwd"}, b"")
    with pytest.raises(FetchError, match="scheme 'file'"):
        asyncio.run(allowed().fetch(base + "/go"))


def test_robots_txt_disallow_is_honoured(site) -> None:
    base, handler = site
    handler.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private\n")
    handler.routes["/private/page"] = (200, HTML, b"<title>secret</title>")
    handler.routes["/public"] = (200, HTML, b"<title>open</title>")
    with pytest.raises(FetchError, match="robots"):
        asyncio.run(allowed().fetch(base + "/private/page"))
    assert "/private/page" not in handler.seen
    assert "open" in asyncio.run(allowed().fetch(base + "/public")).html


def test_the_user_agent_names_the_fetcher(site) -> None:
    base, handler = site
    agents: list[str] = []
    original = handler.do_GET

    def spy(self) -> None:
        agents.append(self.headers.get("User-Agent"))
        original(self)

    handler.do_GET = spy  # type: ignore[method-assign]
    handler.routes["/"] = (200, HTML, b"<title>x</title>")
    asyncio.run(allowed().fetch(base + "/"))
    assert agents and all(a.startswith("campaign-assets-research/") for a in agents)


def test_pages_over_the_size_cap_are_stopped(site) -> None:
    base, handler = site
    big = b"<html><body>" + b"x" * 50_000 + b"</body></html>"
    handler.routes["/declared"] = (200, HTML, big)
    handler.routes["/streamed"] = (200, HTML | {"Content-Length": ""}, big)  # no usable length: counted while read
    with pytest.raises(FetchError, match="too_large"):
        asyncio.run(allowed(max_bytes=10_000).fetch(base + "/declared"))
    handler.routes["/streamed"] = (200, {"Content-Type": "text/html", "Connection": "close"}, big)
    with pytest.raises(FetchError, match="too_large"):
        asyncio.run(allowed(max_bytes=10_000).fetch(base + "/streamed"))


def test_redirects_are_capped_at_five(site) -> None:
    base, handler = site
    for n in range(7):
        handler.routes[f"/r{n}"] = (302, {"Location": f"/r{n + 1}"}, b"")
    handler.routes["/r7"] = (200, HTML, b"<title>end</title>")
    handler.routes["/r2-ok"] = (302, {"Location": "/r5"}, b"")
    with pytest.raises(FetchError, match="too_many_redirects"):
        asyncio.run(allowed().fetch(base + "/r0"))
    assert "end" in asyncio.run(allowed().fetch(base + "/r2")).html  # exactly five hops: fine


def test_non_html_is_refused(site) -> None:
    base, handler = site
    handler.routes["/data.json"] = (200, {"Content-Type": "application/json"}, b"{}")
    with pytest.raises(FetchError, match="content_type"):
        asyncio.run(allowed().fetch(base + "/data.json"))


def test_a_slow_server_times_out(site) -> None:
    base, handler = site
    handler.routes["/slow"] = (200, HTML, b"<title>late</title>")
    handler.delays["/slow"] = 2.0
    started = time.monotonic()
    with pytest.raises(FetchError, match="timeout"):
        asyncio.run(allowed(timeout_s=0.3, total_timeout_s=1.0).fetch(base + "/slow"))
    assert time.monotonic() - started < 1.8


# ---- patterns ----------------------------------------------------------------------------
def _seed_data() -> dict:
    return yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())


def test_pattern_is_one_of_the_seeds_six_and_shapes_content_prompts() -> None:
    with pytest.raises(SpecError, match="pattern"):
        parse_spec(yaml.safe_dump(_seed_data() | {"pattern": "BURST"}))
    prompts = set()
    for pattern in PATTERNS:
        spec = parse_spec(yaml.safe_dump(_seed_data() | {"pattern": pattern}))
        vector = spec.vectors[0]
        request = content_request(spec, vector, vector.content_types[0], "x")
        assert PATTERN_INSTRUCTIONS[pattern] in request.prompt
        prompts.add(request.prompt)
    assert len(prompts) == len(PATTERNS)


# ---- the vault -----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("pg_url")


def _old_library(url: str) -> None:
    """A content_library as the previous release created it: no folder, no metadata."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    old = sa.Table(
        "content_library", md,
        sa.Column("organization", sa.String(64), primary_key=True),
        sa.Column("campaign", sa.String(64), primary_key=True),
        sa.Column("piece_key", sa.String(200), primary_key=True),
        sa.Column("stakeholder_group", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(old).values(
            organization="acme", campaign=SEED, piece_key="tech-community--blog-post", stakeholder_group="Tech Community",
            content_type="blog-post", title="Old title", body="Old body", content_hash="h1",
            updated_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        ))
    engine.dispose()


def test_existing_vault_rows_migrate_without_loss_and_are_filed(ledger_url: str) -> None:
    _old_library(ledger_url)
    ledger = Ledger(ledger_url)
    [row] = ledger.library("acme", SEED)
    assert (row["title"], row["body"], row["content_hash"]) == ("Old title", "Old body", "h1")
    assert row["vector"] == "Tech Community" and row["auto_generated"] is True and row["status"] == "draft"
    assert row["folder"] == "Campaigns/UNFILED/Tech Community"  # pattern unknown at open
    assert ledger.backfill_library("acme", SEED, "CASCADE") == 1
    [row] = ledger.library("acme", SEED)
    assert row["folder"] == "Campaigns/CASCADE/Tech Community" and row["body"] == "Old body"
    ledger.dispose()


def test_pieces_and_research_notes_are_filed_with_metadata(ledger_url: str) -> None:
    from campaign_assets.workflows.content import store_library

    spec = parse_spec(yaml.safe_dump(_seed_data()))
    ledger = Ledger(ledger_url)
    pieces = [
        dict(key=f"tech-community--{ct}", stakeholder_group="Tech Community", content_type=ct, title=ct, body="b")
        for ct in ("blog-post", "social-post", "press-release")
    ]
    asyncio.run(store_library(spec, pieces, ledger))
    ledger.record_success(
        Scope("acme", SEED, "market_research"), "research:x", "llm", action="created", vendor_id="research:x",
        url=None, content_hash="c", payload={},
        library_row=dict(piece_key="research:x", stakeholder_group="Research", content_type="research-note",
                         title="Globex", body="summary", content_hash="c", folder="Campaigns/CASCADE/Research",
                         vector="Research", timing="before the brief", source="https://globex.example/",
                         auto_generated=True, status="research"),
    )
    rows = {r["piece_key"]: r for r in ledger.library("acme", SEED)}
    blog = rows["tech-community--blog-post"]
    assert blog["folder"] == "Campaigns/CASCADE/Tech Community"
    assert (blog["vector"], blog["timing"], blog["source"], blog["auto_generated"], blog["status"]) == (
        "Tech Community", "Week 1-2", "content_pieces", True, "draft")
    note = rows["research:x"]
    assert (note["folder"], note["source"], note["status"]) == ("Campaigns/CASCADE/Research", "https://globex.example/", "research")
    ledger.dispose()


# ---- the asset -------------------------------------------------------------------------------
def _with_research(project: dict[str, str], urls: list[str]) -> None:
    path = Path(project["CAMPAIGNS_DIR"]) / f"{SEED}.yaml"
    data = yaml.safe_load(path.read_text()) | {"research": {"competitors": urls, "topics": ["pricing"]}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _value(result: dg.ExecuteInProcessResult, asset: str):
    return result.asset_value(asset)


def test_market_research_feeds_the_brief_from_an_allowlisted_local_page(
    project: dict[str, str], site, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, handler = site
    handler.routes["/product"] = (200, HTML, FIXTURE.read_bytes())
    monkeypatch.setenv("RESEARCH_ALLOW_HOSTS", "127.0.0.1")
    project = project | {"RESEARCH_ALLOW_HOSTS": "127.0.0.1"}
    _with_research(project, [base + "/product", "http://localhost.invalid/offline"])
    result = materialize(project)
    research = _value(result, "market_research")
    assert TITLE in research["summary"]
    [read] = [c for c in research["competitors"] if c.get("summary")]
    assert read["title"] == TITLE and read["action"] == "created"
    [gone] = research["unavailable"]
    assert gone["url"] == "http://localhost.invalid/offline" and "network" in gone["reason"]
    brief = _value(result, "campaign_brief")
    assert "## Market Research" in brief["markdown"] and TITLE in brief["markdown"]
    meta = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert meta["market_research"]["items_fallback"].value == 1
    assert meta["market_research"]["items_failed"].value == 0
    assert "localhost.invalid" in meta["campaign_brief"]["research_unavailable"].value
    ledger = Ledger(f"sqlite:///{Path(project['WORKSPACE_DIR']) / 'ledger.sqlite'}")
    notes = [r for r in ledger.library("acme", SEED) if r["vector"] == "Research"]
    assert {n["status"] for n in notes} == {"research", "unavailable"}
    assert all(n["folder"] == "Campaigns/CASCADE/Research" for n in notes)
    ledger.dispose()


def test_no_research_section_means_no_calls_and_todays_brief(project: dict[str, str]) -> None:
    result = materialize(project)
    assert _value(result, "market_research")["summary"] == ""
    assert "## Market Research" not in _value(result, "campaign_brief")["markdown"]


def test_the_example_with_research_runs_clean_offline(project: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """spring-webinar-series names a real competitor page; with no network
    (every lookup fails) the page is a flagged fallback and the run succeeds."""

    def offline(*_args: object, **_kw: object) -> list:
        raise socket.gaierror("offline")

    monkeypatch.setattr(web, "getaddrinfo", offline)
    result = materialize(project, partition="spring-webinar-series")
    research = _value(result, "market_research")
    assert research["summary"] == "" and len(research["unavailable"]) == 1
    assert "offline" in research["unavailable"][0]["reason"]
    assert "## Market Research" not in _value(result, "campaign_brief")["markdown"]


def test_robots_txt_is_read_through_redirects(site) -> None:
    base, handler = site
    handler.routes["/robots.txt"] = (301, {"Location": "/real-robots.txt"}, b"")
    handler.routes["/real-robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: campaign-assets-research\nDisallow: /\n")
    handler.routes["/page"] = (200, HTML, b"<title>x</title>")
    with pytest.raises(FetchError, match="robots"):
        asyncio.run(allowed().fetch(base + "/page"))
    assert "/page" not in handler.seen


def test_robots_txt_forbidden_means_disallowed_and_missing_means_allowed(site) -> None:
    base, handler = site
    handler.routes["/page"] = (200, HTML, b"<title>x</title>")
    assert "x" in asyncio.run(allowed().fetch(base + "/page")).html  # /robots.txt is a 404
    handler.routes["/robots.txt"] = (403, {"Content-Type": "text/plain"}, b"no")
    with pytest.raises(FetchError, match="robots"):
        asyncio.run(allowed().fetch(base + "/page"))


def test_the_request_goes_to_the_vetted_address_not_a_second_lookup(site, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is resolved once, by the guard, and the
    connection goes to that address (the system resolver does not know
    competitor.example at all); the Host header carries the name."""
    base, handler = site
    port = base.rsplit(":", 1)[1]
    lookups: list[str] = []
    fake = _resolver({"competitor.example": "127.0.0.1"})

    def counting(host: str, *args: object) -> list:
        lookups.append(host)
        return fake(host, *args)

    monkeypatch.setattr(web, "getaddrinfo", counting)
    hosts: list[str] = []
    original = handler.do_GET

    def spy(self) -> None:
        hosts.append(self.headers.get("Host"))
        original(self)

    handler.do_GET = spy  # type: ignore[method-assign]
    handler.routes["/"] = (200, HTML, b"<title>pinned</title>")
    page = asyncio.run(WebFetcher(allow_hosts=frozenset({"competitor.example"})).fetch(f"http://competitor.example:{port}/"))
    assert "pinned" in page.html
    assert hosts == [f"competitor.example:{port}"] * 2  # robots.txt, then the page
    assert lookups == ["competitor.example"] * 2  # one vetted lookup per request, none by httpx
