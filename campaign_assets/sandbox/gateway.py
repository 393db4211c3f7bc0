"""The path every vendor request takes: log, authenticate, limit, inject faults, wait, handle."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from campaign_assets.sandbox.config import SandboxConfig
from campaign_assets.sandbox.faults import DroppedConnection, Fault
from campaign_assets.sandbox.limits import RateLimited
from campaign_assets.sandbox.runtime import Generation, Runtime
from campaign_assets.sandbox.state import CallRecord
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    Vendor,
)


class Gateway:
    """Serves one endpoint of one vendor; `handle` is the Starlette endpoint.

    Order: count and log the call; reject a bad token at once (no latency); refuse
    with the vendor's 429 when a limit is full; hold a limit slot while a fault is
    drawn and served, or while the endpoint's latency passes and the handler runs.
    """

    def __init__(self, runtime: Runtime, vendor: Vendor, endpoint: Endpoint) -> None:
        self._runtime = runtime
        self._vendor = vendor
        self._endpoint = endpoint

    async def handle(self, request: Request) -> Response:
        generation = self._runtime.current
        state = generation.state
        record = state.begin_call(self._vendor.name, self._endpoint.name, request.method, request.url.path)
        try:
            response = await self._serve(request, generation, record)
        finally:
            state.end_call(record)
        record.status = _logged_status(response)
        return response

    async def _serve(self, request: Request, generation: Generation, record: CallRecord) -> Response:
        errors, config = self._vendor.errors, generation.config
        body = await request.body()
        record.auth = self._vendor.auth(request)
        if record.auth != "ok":
            return errors.render(errors.auth_failure(record.auth))
        call = Call(
            request=request,
            body=body,
            state=generation.state,
            store=generation.state.stores[self._vendor.name],
            ids=self._runtime.ids,
            scale=config.scale,
        )
        latency_s = self._endpoint.latency_for(call) * config.scale
        admission = generation.limiter.admit(
            self._vendor.name, request.method, self._endpoint.name, latency_s
        )
        if isinstance(admission, RateLimited):
            record.rate_limited = True
            return errors.render(ApiError(429, retry_after_s=admission.retry_after_s))
        with admission:
            fault = generation.faults.draw(self._vendor.name, self._endpoint)
            record.fault = fault.kind if fault else None
            return await self._respond(call, latency_s, fault, config)

    async def _respond(
        self, call: Call, latency_s: float, fault: Fault | None, config: SandboxConfig
    ) -> Response:
        if fault is not None and fault.kind != "lost_response":
            return await self._fail(fault, config)
        await asyncio.sleep(latency_s)
        response = self._run_handler(call)
        if fault is not None:  # lost_response: the write is committed, its response is cut short
            return DroppedConnection(response)
        return response

    async def _fail(self, fault: Fault, config: SandboxConfig) -> Response:
        """The faults that strike before the write (500, 429, timeout, reset): nothing is stored."""
        errors = self._vendor.errors
        if fault.kind == "429":
            return errors.render(ApiError(429, retry_after_s=config.scale))  # one second, scaled
        if fault.kind == "500":
            return errors.render(ApiError(fault.status or 500))
        if fault.kind == "timeout":
            await asyncio.sleep(config.timeout_hold_s)
            return errors.render(ApiError(504))
        return DroppedConnection()

    def _run_handler(self, call: Call) -> Response:
        try:
            return self._endpoint.handler(call)
        except ApiError as error:
            return self._vendor.errors.render(error)


def _logged_status(response: Response) -> int | None:
    if isinstance(response, DroppedConnection):
        return response.committed.status_code if response.committed is not None else None
    return response.status_code
