"""The sandbox ASGI app: every vendor mounted under its own prefix, plus ``/_sandbox/*``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from campaign_assets.sandbox.config import SandboxConfig
from campaign_assets.sandbox.control import (
    ControlError,
    control_error_response,
    control_routes,
)
from campaign_assets.sandbox.gateway import Gateway
from campaign_assets.sandbox.runtime import Runtime
from campaign_assets.sandbox.vendors import VENDORS, Vendor
from campaign_assets.sandbox.vendors.base import Call, Endpoint

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _unknown_endpoint(vendor: Vendor) -> Endpoint:
    """A catch-all answering the vendor's own 404 for paths it does not serve."""

    def unknown(call: Call) -> Response:
        raise vendor.errors.unknown_endpoint(call.request.method, call.request.url.path)

    return Endpoint("*", "/{path:path}", unknown, 0.0)


def _vendor_mount(runtime: Runtime, vendor: Vendor) -> Mount:
    routes: list[BaseRoute] = [
        Route(e.path, Gateway(runtime, vendor, e).handle, methods=[e.method]) for e in vendor.endpoints
    ]
    catch_all = _unknown_endpoint(vendor)
    routes.append(Route(catch_all.path, Gateway(runtime, vendor, catch_all).handle, methods=_ALL_METHODS))
    return Mount(vendor.mount, routes=routes)


def build_app(config: SandboxConfig | None = None) -> Starlette:
    """A fresh sandbox app; all its state lives on ``app.state.sandbox`` (a `Runtime`)."""
    runtime = Runtime(config or SandboxConfig())
    app = Starlette(
        routes=[*control_routes(runtime), *(_vendor_mount(runtime, vendor) for vendor in VENDORS)],
        exception_handlers={ControlError: control_error_response},
    )
    app.state.sandbox = runtime
    return app
