"""The README's review-and-approval screenshots, from the Dagster UI in headless Chromium.

The reviewed example campaign is drafted with ``campaign-assets launch`` (local
backends, a throwaway DAGSTER_HOME and workspace); dagster-webserver serves that
instance; the pages a reviewer uses are photographed: the approval gate
awaiting approval, the ``approve_campaign`` launchpad with a decision typed
in, and, after ``campaign-assets approve`` and a second launch, the gate
approved.

    python -m campaign_assets_tests.ui_screenshots     # or: make screenshots
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from .browser import chromium, unavailable
from .support.dagster import BIN, PROJECT, temp_project, webserver_args, webserver_up
from .support.ports import free_port
from .support.processes import start_in_group, stop_groups, wait_for

CAMPAIGN = "spring-webinar-series"
VIEWPORT = {"width": 1440, "height": 900}


def cli(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "campaign-assets"), *args], env=env, cwd=PROJECT, check=True, stdout=subprocess.DEVNULL)


DECISION_YAML = f"""ops:
  record_decision:
    config:
      campaign: {CAMPAIGN}
      decision: approve
      reviewer: Dana Whitfield
      note: Copy and budgets checked against the brief
"""


def fill_decision(page: Any) -> None:
    """Type a reviewer's decision into the launchpad's config editor."""
    page.locator(".CodeMirror").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(DECISION_YAML)  # no key events: the editor's auto-indent stays out of it
    page.wait_for_timeout(1500)  # the launchpad validates the config as it changes


def shoot(browser: Any, url: str, wait_text: str, out: Path, prepare: Any = None) -> None:
    """Open ``url``, wait until ``wait_text`` shows and the page is quiet, photograph the viewport."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    try:
        page.goto(url, wait_until="networkidle", timeout=120_000)
        page.get_by_text(wait_text, exact=False).first.wait_for(timeout=120_000)
        skip = page.get_by_role("button", name="Skip")  # the UI's one-time "join the community" dialog
        if skip.count():
            skip.first.click()
            page.wait_for_timeout(500)
        if prepare is not None:
            prepare(page)
        page.wait_for_load_state("networkidle", timeout=60_000)
        page.wait_for_timeout(1500)  # the UI's last layout pass after data arrives
        shot = page.screenshot(full_page=False)
    finally:
        context.close()
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    buf = io.BytesIO()  # palette PNG: a fraction of the size, no visible loss on flat UI colours
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    print(f"{out}: {image.width}x{image.height}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PROJECT / "docs", help="folder for the PNGs")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    with temp_project([CAMPAIGN]) as paths:
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))} | paths
        env["CAMPAIGN_PROGRESS"] = "off"
        cli(env, "launch", CAMPAIGN)  # drafted, reviewed: awaiting approval
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_in_group(webserver_args(port), cwd=PROJECT, env=env)
        try:
            wait_for("dagster-webserver", lambda: webserver_up(url), timeout=120)
            gate = f"{url}/assets/approval_gate?partition={CAMPAIGN}"
            with chromium() as browser:
                shoot(browser, f"{gate}&view=overview", "awaiting approval", args.out / "approval-gate-awaiting.png")
                shoot(browser, f"{url}/locations/campaign_assets/jobs/approve_campaign/playground", "record_decision",
                      args.out / "approve-campaign-launchpad.png", prepare=fill_decision)
                cli(env, "approve", CAMPAIGN, "--by", "Dana Whitfield", "--note", "Ship it")
                cli(env, "launch", CAMPAIGN)  # the distribution half
                shoot(browser, f"{gate}&view=overview", "Dana Whitfield", args.out / "approval-gate-approved.png")
        finally:
            stop_groups([server], grace_s=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
