"""The emulated vendors, each served under its own prefix on the sandbox."""

from __future__ import annotations

from campaign_assets.sandbox.vendors.amazon_dsp import AMAZON_DSP
from campaign_assets.sandbox.vendors.asana import ASANA
from campaign_assets.sandbox.vendors.base import Vendor
from campaign_assets.sandbox.vendors.buffer import BUFFER
from campaign_assets.sandbox.vendors.canva import CANVA
from campaign_assets.sandbox.vendors.dsp_reporting import AMAZON_ADS, BID_MANAGER, TTD
from campaign_assets.sandbox.vendors.github import GITHUB
from campaign_assets.sandbox.vendors.dv360 import DV360
from campaign_assets.sandbox.vendors.google_docs import GOOGLE_DOCS
from campaign_assets.sandbox.vendors.google_drive import GOOGLE_DRIVE
from campaign_assets.sandbox.vendors.google_sheets import GOOGLE_SHEETS
from campaign_assets.sandbox.vendors.openai import OPENAI, OPENROUTER
from campaign_assets.sandbox.vendors.sendgrid import SENDGRID
from campaign_assets.sandbox.vendors.slack import SLACK
from campaign_assets.sandbox.vendors.trade_desk import TRADE_DESK

VENDORS: tuple[Vendor, ...] = (
    OPENAI,
    OPENROUTER,
    GOOGLE_DOCS,
    GOOGLE_SHEETS,
    GOOGLE_DRIVE,
    ASANA,
    CANVA,
    SLACK,
    SENDGRID,
    BUFFER,
    GITHUB,
    AMAZON_DSP,
    TRADE_DESK,
    DV360,
    AMAZON_ADS,
    TTD,
    BID_MANAGER,
)

__all__ = ["VENDORS", "Vendor"]
