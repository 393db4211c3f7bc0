"""campaign-assets validate and launch, as a person runs them (a subprocess)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from campaign_assets.ledger import Ledger

from .conftest import EXAMPLES, SEED


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "campaign_assets.cli", *args],
        env=os.environ | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def home(project: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return project | {"DAGSTER_HOME": str(tmp_path / "dagster_home")}


def unseen_spec(folder: Path) -> Path:
    data = yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())
    data |= {
        "id": "partner-summit-2027",
        "name": "Partner Summit 2027",
        "organization": "globex",
        "objective": "consideration",
        "brand": {"name": "Globex", "primary_color": "#1F8A4C", "website": "https://globex.example"},
        "budget": {"total": 18500.75, "currency": "EUR"},
        "channels": [{"name": "social", "share": 0.6}, {"name": "display", "share": 0.4, "dsp": "dv360"}],
        "vectors": [{"stakeholder_group": "Channel Partners", "timing": "Week 1", "content_types": ["email", "blog-post"]}],
        "creative_sizes": ["1200x628", "300x250"],
    }
    path = folder / "partner-summit-2027.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_validate_accepts_the_examples(home: dict[str, str], tmp_path: Path) -> None:
    done = cli("validate", *map(str, sorted(EXAMPLES.glob("*.yaml"))), env=home, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": ok") == 3


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["channels"][0].update(share=0.9), "channels"),
        (lambda d: d.update(flight={"start": "2027-05-01", "end": "2027-04-01"}), "flight"),
        (lambda d: d.update(id="../escape"), "id"),
        (lambda d: d.update(launch_party=True), "launch_party"),
        (lambda d: d.pop("name"), "name"),
        (lambda d: d.update(creative_sizes=["99999x1"]), "creative_sizes"),
    ],
)
def test_invalid_specs_are_refused_by_validate_and_launch_leaving_nothing(
    edit, field: str, home: dict[str, str], tmp_path: Path
) -> None:
    data = yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())
    edit(data)
    bad = tmp_path / f"{SEED}.yaml"
    bad.write_text(yaml.safe_dump(data))
    done = cli("validate", str(bad), env=home, cwd=tmp_path)
    assert done.returncode == 1 and str(bad) in done.stderr
    assert re.search(rf"^\s+{re.escape(field)}\S*: ", done.stderr, flags=re.M), done.stderr

    launched = cli("launch", str(bad), env=home, cwd=tmp_path)
    assert launched.returncode == 2 and "nothing was run" in launched.stderr
    assert not Path(home["WORKSPACE_DIR"]).exists()
    assert not Path(home["DAGSTER_HOME"]).exists()


def test_truncated_file_is_refused(home: dict[str, str], tmp_path: Path) -> None:
    cut = tmp_path / f"{SEED}.yaml"
    cut.write_text((EXAMPLES / f"{SEED}.yaml").read_text()[:700] + "\nchannels:\n  - {name: disp")
    done = cli("launch", str(cut), env=home, cwd=tmp_path)
    assert done.returncode == 2 and str(cut) in done.stderr
    assert not Path(home["WORKSPACE_DIR"]).exists()


@pytest.mark.slow
def test_an_unseen_spec_launches_clean_and_a_second_launch_reuses_everything(
    home: dict[str, str], tmp_path: Path
) -> None:
    spec = unseen_spec(tmp_path)
    elsewhere = tmp_path / "elsewhere"  # the artifacts' folder is WORKSPACE_DIR, not the working directory's
    elsewhere.mkdir()
    first = cli("launch", str(spec), env=home, cwd=elsewhere)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "partner-summit-2027: SUCCESS" in first.stdout
    for asset in ("campaign_spec", "campaign_brief", "media_plan", "project_tasks", "creatives", "content_pieces",
                  "content_library", "landing_page", "dsp_activation", "summary_report"):
        assert re.search(rf"^\s+{asset}\s", first.stdout, flags=re.M), asset
    assert (Path(home["CAMPAIGNS_DIR"]) / spec.name).exists()  # registered with the other campaigns
    out = Path(home["WORKSPACE_DIR"]) / "globex" / "partner-summit-2027"
    assert f"artifacts: {out}" in first.stdout
    assert (out / "creatives" / "1200x628.png").exists() and (out / "landing_page.html").exists()

    ledger = Ledger(f"sqlite:///{Path(home['WORKSPACE_DIR']) / 'ledger.sqlite'}")
    rows = ledger.counts()
    second = cli("launch", "partner-summit-2027", env=home, cwd=elsewhere)
    assert second.returncode == 0, second.stdout + second.stderr
    assert ledger.counts() == rows
    assert not re.search(r"(created|updated|fallback|failed) [1-9]", second.stdout), second.stdout
    assert "reused" in second.stdout


@pytest.mark.slow
def test_approval_from_the_command_line(home: dict[str, str], tmp_path: Path) -> None:
    """The issue's check with the local backends: a copy of the distribution
    example (id, name, audience changed) sends nothing before approval, each
    object once after it, nothing on a third launch, and nothing new after
    its name and audience change (awaiting approval again)."""
    data = yaml.safe_load((EXAMPLES / "spring-webinar-series.yaml").read_text())
    data |= {"id": "webinar-copy", "name": "Webinar Copy", "audience": "SREs at fintech companies"}
    spec = tmp_path / "webinar-copy.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    ledger = Ledger(f"sqlite:///{Path(home['WORKSPACE_DIR']) / 'ledger.sqlite'}")

    def sent() -> dict[str, int]:
        rows = [r for r in ledger.campaign_rows("acme", "webinar-copy") if r.status == "created"]
        return {a: sum(r.scope.asset == a for r in rows) for a in ("email_send", "social_posts", "published_site")}

    def status() -> str:
        out = cli("status", "webinar-copy", env=home, cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    refused = cli("approve", "webinar-copy", "--by", "tester", env=home, cwd=tmp_path)
    assert refused.returncode == 2 and "not been reviewed yet" in refused.stderr

    first = cli("launch", str(spec), env=home, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "webinar-copy: awaiting approval" in first.stdout
    assert sent() == {"email_send": 0, "social_posts": 0, "published_site": 0}
    assert "awaiting approval since" in status()

    no_note = cli("reject", "webinar-copy", "--by", "tester", env=home, cwd=tmp_path)
    assert no_note.returncode != 0  # a rejection says why
    approved = cli("approve", "webinar-copy", "--by", "tester", env=home, cwd=tmp_path)
    assert approved.returncode == 0 and "approved by tester" in approved.stdout

    second = cli("launch", "webinar-copy", env=home, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert sent() == {"email_send": 1, "social_posts": 2, "published_site": 3}
    assert "acme/webinar-copy: distributed" in status()

    third = cli("launch", "webinar-copy", env=home, cwd=tmp_path)
    assert third.returncode == 0 and sent() == {"email_send": 1, "social_posts": 2, "published_site": 3}

    registered = Path(home["CAMPAIGNS_DIR"]) / "webinar-copy.yaml"
    changed = yaml.safe_load(registered.read_text()) | {"name": "Webinar Copy Two", "audience": "Data engineers"}
    registered.write_text(yaml.safe_dump(changed, sort_keys=False))
    fourth = cli("launch", "webinar-copy", env=home, cwd=tmp_path)
    assert fourth.returncode == 0 and "webinar-copy: awaiting approval" in fourth.stdout
    assert sent() == {"email_send": 1, "social_posts": 2, "published_site": 3}
    assert "acme/webinar-copy: awaiting approval" in status()
    ledger.dispose()
