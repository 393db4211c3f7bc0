"""``/_sandbox/*``: the control endpoints tests and benchmarks use (never faulted, never limited).

- ``GET /_sandbox/health``: ``{"ok": true}``.
- ``GET /_sandbox/state``: config, per-vendor objects and traffic, the call log, queued faults.
- ``POST /_sandbox/reset``: forget objects, calls and queued faults; the config returns to the
  startup one, with the body's fields (optional, a partial `SandboxConfig`) applied.
- ``GET /_sandbox/config`` / ``POST /_sandbox/config``: read, or patch the config while keeping
  objects, calls and queued faults (limit accounting and the fault RNG restart).
- ``POST /_sandbox/faults``: queue a `ForcedFault`.
- ``POST /_sandbox/objects``: put an object in a vendor's store (``{vendor, kind, id, data}``):
  what a vendor holds that no emulated endpoint creates (the line items DSP reporting reports on).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from campaign_assets.sandbox.config import SandboxConfig
from campaign_assets.sandbox.faults import ForcedFault
from campaign_assets.sandbox.runtime import Runtime
from campaign_assets.sandbox.vendors import VENDORS


class ControlError(Exception):
    """A control request the sandbox cannot honour; answered 400 by `control_error_response`."""


async def control_error_response(request: Request, error: Exception) -> Response:
    return JSONResponse({"ok": False, "error": str(error)}, status_code=400)


async def _patch(request: Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty)."""
    body = await request.body()
    try:
        patch = json.loads(body) if body.strip() else {}
    except ValueError as error:
        raise ControlError(f"invalid JSON: {error}") from None
    if not isinstance(patch, dict):
        raise ControlError("the body must be a JSON object")
    return patch


async def _patched(request: Request, config: SandboxConfig) -> SandboxConfig:
    """`config` with the request body's fields applied."""
    try:
        return config.updated(await _patch(request))
    except ValidationError as error:
        raise ControlError(str(error)) from None


def _check_fault(fault: ForcedFault) -> None:
    endpoints = {e.name: e for vendor in VENDORS if vendor.name == fault.vendor for e in vendor.endpoints}
    if fault.endpoint is not None and fault.endpoint not in endpoints:
        raise ControlError(
            f"unknown endpoint {fault.endpoint!r} for {fault.vendor}; known: {sorted(endpoints)}"
        )
    if (
        fault.kind == "lost_response"
        and fault.endpoint is not None
        and not endpoints[fault.endpoint].is_write
    ):
        raise ControlError("lost_response only applies to writes (POST, PUT, PATCH, DELETE)")


def control_routes(runtime: Runtime) -> list[BaseRoute]:
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def state(request: Request) -> Response:
        return JSONResponse(runtime.to_json())

    async def reset(request: Request) -> Response:
        runtime.reset(await _patched(request, runtime.initial_config))
        return JSONResponse({"ok": True, "config": runtime.current.config.model_dump(mode="json")})

    async def get_config(request: Request) -> Response:
        return JSONResponse(runtime.current.config.model_dump(mode="json"))

    async def set_config(request: Request) -> Response:
        runtime.reconfigure(await _patched(request, runtime.current.config))
        return JSONResponse({"ok": True, "config": runtime.current.config.model_dump(mode="json")})

    async def queue_fault(request: Request) -> Response:
        try:
            fault = ForcedFault.model_validate(await _patch(request))
        except ValidationError as error:
            raise ControlError(str(error)) from None
        _check_fault(fault)
        runtime.current.faults.enqueue(fault)
        return JSONResponse({"ok": True, "queued": runtime.current.faults.queued()})

    async def add_object(request: Request) -> Response:
        body = await _patch(request)
        vendor, kind, object_id, data = (body.get(k) for k in ("vendor", "kind", "id", "data"))
        stores = runtime.current.state.stores
        if vendor not in stores or not isinstance(kind, str) or not isinstance(object_id, str) or not isinstance(data, dict):
            raise ControlError(f"expected {{vendor (one of {sorted(stores)}), kind, id, data (an object)}}")
        stores[vendor].add(kind, object_id, data)
        return JSONResponse({"ok": True})

    return [
        Route("/_sandbox/health", health, methods=["GET"]),
        Route("/_sandbox/objects", add_object, methods=["POST"]),
        Route("/_sandbox/state", state, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/config", get_config, methods=["GET"]),
        Route("/_sandbox/config", set_config, methods=["POST"]),
        Route("/_sandbox/faults", queue_fault, methods=["POST"]),
    ]
