"""The README's landing page screenshots, taken by the browser code the tests
use: the seed campaign built through the real asset path (local backends, a
throwaway workspace), photographed full-page at desktop and mobile width.

    python -m campaign_assets_tests.screenshots     # or: make screenshots
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from .browser import DESKTOP, MOBILE, build_landing_pages, chromium, unavailable, visit

PROJECT = Path(__file__).resolve().parents[1]
SHOTS = {"landing-page-desktop.png": DESKTOP, "landing-page-mobile.png": MOBILE}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", default="q4-product-launch", help="example campaign to photograph")
    parser.add_argument("--out", type=Path, default=PROJECT / "docs", help="folder for the PNGs")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        root = Path(tmp)
        shutil.copytree(PROJECT / "campaigns", root / "campaigns")
        env = {"CAMPAIGNS_DIR": str(root / "campaigns"), "WORKSPACE_DIR": str(root / "workspace")}
        os.environ.update(env)  # where the resources' EnvVars resolve
        page = build_landing_pages(env, [args.campaign])[args.campaign]
        with chromium() as browser:
            for name, viewport in SHOTS.items():
                shot = root / name
                report = visit(browser, page, viewport, screenshot=shot)
                problems = report.console_errors + report.page_errors + report.failed_requests + report.dialogs
                if problems:
                    print(f"{name}: the page has problems: {problems}", file=sys.stderr)
                    return 1
                args.out.mkdir(parents=True, exist_ok=True)
                image = Image.open(shot)
                buf = io.BytesIO()  # palette PNG: a fraction of the size, no visible loss on flat UI colours
                image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
                (args.out / name).write_bytes(buf.getvalue())
                print(f"{args.out / name}: {image.width}x{image.height}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
