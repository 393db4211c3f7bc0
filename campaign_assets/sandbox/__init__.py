"""The vendor sandbox: a local HTTP server emulating the vendor APIs our clients call.

Same paths, JSON shapes, auth headers and 429 signalling as the vendors, with scaled
latency, vendor limits and injected faults; ``/_sandbox/state`` shows everything
created and every call. See README.md beside this file.
"""

from campaign_assets.sandbox.app import build_app
from campaign_assets.sandbox.config import FaultSpec, LimitRule, SandboxConfig
from campaign_assets.sandbox.server import SandboxServer, main, service_env

__all__ = ["FaultSpec", "LimitRule", "SandboxConfig", "SandboxServer", "build_app", "main", "service_env"]
