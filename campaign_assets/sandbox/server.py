"""Serve the sandbox on 127.0.0.1: in a background thread (tests, benchmarks) or from the command line."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import socket
import sys
import threading
import time
from functools import partial
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from campaign_assets.sandbox.app import build_app
from campaign_assets.sandbox.config import FAULT_KINDS, SandboxConfig
from campaign_assets.sandbox.faults import TRANSPORT_EXTENSION

HOST = "127.0.0.1"
DEFAULT_CLI_PORT = 8787
GRACE_S = 1  # uvicorn's graceful shutdown: in-flight requests then get cancelled
STOP_TIMEOUT_S = 10


async def _with_transport(
    app: ASGIApp, transport: asyncio.Transport, scope: Scope, receive: Receive, send: Send
) -> None:
    scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = transport
    await app(scope, receive, send)


class _TransportExposingProtocol(H11Protocol):
    """uvicorn's h11 protocol, putting each connection's transport in the ASGI scope extensions.

    The sandbox needs the socket itself to drop connections for ``reset`` and ``lost_response``.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = partial(_with_transport, self.app, transport)


class SandboxServer:
    """The sandbox served by uvicorn on 127.0.0.1 in a background thread.

    ``port=0`` picks a free port. Use as a context manager, or `start` and `stop`.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        port: int = 0,
        log_level: str = "warning",
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.app: Starlette = build_app(config)
        self._requested_port = port
        self._log_level = log_level
        self._startup_timeout_s = startup_timeout_s
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._control_client: httpx.Client | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; only known once started."""
        if self._port is None:
            raise RuntimeError("the sandbox server is not started")
        return f"http://{HOST}:{self._port}"

    def start(self) -> SandboxServer:
        """Bind, serve in a background thread and return once the health check answers."""
        if self._thread is not None:
            raise RuntimeError("the sandbox server is already started")
        sock = socket.create_server((HOST, self._requested_port), backlog=2048)
        self._port = sock.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                http=_TransportExposingProtocol,
                lifespan="off",
                log_level=self._log_level,
                access_log=False,
                timeout_graceful_shutdown=GRACE_S,
            )
        )
        self._stopped.clear()
        self._thread = threading.Thread(
            target=self._serve, args=(self._server, sock), name="vendor-sandbox", daemon=True
        )
        self._thread.start()
        self._control_client = httpx.Client(base_url=self.url, timeout=10.0)
        self._wait_until_healthy(self._control_client)
        return self

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        finally:
            self._stopped.set()

    def _wait_until_healthy(self, client: httpx.Client) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline and self._thread is not None and self._thread.is_alive():
            try:
                if client.get("/_sandbox/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the sandbox server did not become healthy within {self._startup_timeout_s} s")

    def stop(self) -> None:
        """Stop serving: requests in flight get `GRACE_S` to finish, then are cancelled
        (a held ``timeout`` fault or a long latency ends at once). Safe to call twice."""
        if self._control_client is not None:
            self._control_client.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None and not self._stopped.wait(STOP_TIMEOUT_S):
            if self._server is not None:
                self._server.force_exit = True  # stop waiting for connections that will not close
            self._stopped.wait(STOP_TIMEOUT_S)
        self._server, self._thread, self._control_client = None, None, None

    def wait(self) -> None:
        """Block until the server stops; Ctrl-C raises KeyboardInterrupt here.

        Waits on an event, never in ``Thread.join``: on Python < 3.13 a KeyboardInterrupt
        inside ``join`` marks the still-running thread as stopped (CPython gh-90882's
        bpo-45274 fix releases the lock the thread holds), so `stop` would not wait for
        uvicorn's shutdown and the process would exit racing a live server thread.
        """
        while self._thread is not None and not self._stopped.wait(0.5):
            pass

    def state(self) -> dict[str, Any]:
        """``GET /_sandbox/state``."""
        return self._control("GET", "/_sandbox/state")

    def reset(self, **config: Any) -> None:
        """``POST /_sandbox/reset``: forget everything; startup config with `config` fields changed."""
        self._control("POST", "/_sandbox/reset", config)

    def queue_fault(self, vendor: str, kind: str, endpoint: str | None = None, times: int = 1) -> None:
        """``POST /_sandbox/faults``: fail the next `times` matching requests with `kind`."""
        fault = {"vendor": vendor, "kind": kind, "endpoint": endpoint, "times": times}
        self._control("POST", "/_sandbox/faults", fault)

    def add_object(self, vendor: str, kind: str, object_id: str, data: dict[str, Any]) -> None:
        """``POST /_sandbox/objects``: an object the vendor holds without an emulated endpoint making it."""
        self._control("POST", "/_sandbox/objects", {"vendor": vendor, "kind": kind, "id": object_id, "data": data})

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._control_client is None:
            raise RuntimeError("the sandbox server is not started")
        response = self._control_client.request(method, path, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def service_env(url: str) -> dict[str, str]:
    """The environment variables that point every service client at the sandbox at `url`."""
    return {
        "LLM_BASE_URL": f"{url}/openai/v1",
        "LLM_API_KEY": "sandbox-llm-token",
        "IMAGES_BASE_URL": f"{url}/openai/v1",
        "IMAGES_API_KEY": "sandbox-images-token",
        "IMAGES_PROVIDER": "openai",
        "GOOGLE_DOCS_BASE_URL": f"{url}/google-docs",
        "GOOGLE_SHEETS_BASE_URL": f"{url}/google-sheets",
        "GOOGLE_DRIVE_BASE_URL": f"{url}/google-drive",
        "GOOGLE_ACCESS_TOKEN": "sandbox-google-token",
        "ASANA_BASE_URL": f"{url}/asana/api/1.0",
        "ASANA_ACCESS_TOKEN": "sandbox-asana-token",
        "ASANA_WORKSPACE_GID": "1200000000000001",
        "CANVA_BASE_URL": f"{url}/canva/rest",
        "CANVA_ACCESS_TOKEN": "sandbox-canva-token",
        "AMAZON_DSP_BASE_URL": f"{url}/amazon-dsp",
        "AMAZON_DSP_ACCESS_TOKEN": "sandbox-amazon-dsp-token",
        "AMAZON_DSP_CLIENT_ID": "amzn1.application-oa2-client.sandbox",
        "AMAZON_DSP_PROFILE_ID": "3000000000000001",
        "AMAZON_DSP_ADVERTISER_ID": "4000000000000001",
        "TTD_BASE_URL": f"{url}/trade-desk/v3",
        "TTD_AUTH_TOKEN": "sandbox-ttd-token",
        "TTD_ADVERTISER_ID": "ttdadv1",
        "DV360_BASE_URL": f"{url}/dv360",
        "DV360_ACCESS_TOKEN": "sandbox-dv360-token",
        "DV360_ADVERTISER_ID": "5000000000000001",
        "SENDGRID_BASE_URL": f"{url}/sendgrid",
        "SENDGRID_API_KEY": "SG.sandbox-sendgrid-key",
        "SENDGRID_SENDER_ID": "1234567",
        "BUFFER_BASE_URL": f"{url}/buffer/1",
        "BUFFER_ACCESS_TOKEN": "sandbox-buffer-token",
        "GITHUB_API_BASE_URL": f"{url}/github",
        "GITHUB_PAGES_TOKEN": "ghp_sandboxtoken",
        "GITHUB_PAGES_REPOSITORY": "acme/campaigns",
        "GITHUB_PAGES_BRANCH": "gh-pages",
        # DSP reporting: the DSP accounts' tokens above, their own base URLs.
        "AMAZON_REPORTING_BASE_URL": f"{url}/amazon-ads",
        "TTD_REPORTING_BASE_URL": f"{url}/ttd",
        "TTD_REPORT_TEMPLATE_ID": "1001",
        "BID_MANAGER_BASE_URL": f"{url}/bid-manager",
        # Slack last: test support reads the printed exports up to SLACK_CHANNEL.
        "SLACK_BASE_URL": f"{url}/slack/api",
        "SLACK_BOT_TOKEN": "xoxb-sandbox-token",
        "SLACK_CHANNEL": "C0CAMPAIGNS",
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="campaign-assets sandbox",
        description="Serve the vendor sandbox on 127.0.0.1; print the environment pointing clients at it.",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="latency and limit-window multiplier (0.1 = 10x faster)"
    )
    parser.add_argument(
        "--faults", type=float, default=0.0, metavar="RATE", help="probability that a request fails (0..1)"
    )
    parser.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        metavar="KINDS",
        help=f"comma-separated subset of {','.join(FAULT_KINDS)}",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_CLI_PORT, help="0 picks a free port")
    parser.add_argument(
        "--no-limits", action="store_true", help="turn vendor rate limits and concurrency caps off"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault RNG")
    parser.add_argument(
        "--timeout-hold",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a timeout fault holds a request",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``campaign-assets sandbox``: serve in the foreground until Ctrl-C."""
    args = _parse_args(argv)
    try:
        config = SandboxConfig(
            scale=args.scale,
            fault_rate=args.faults,
            fault_kinds=tuple(kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()),
            limits_enabled=not args.no_limits,
            seed=args.seed,
            timeout_hold_s=args.timeout_hold,
        )
    except ValueError as error:
        print(f"invalid option: {error}", file=sys.stderr)
        return 2
    # Ctrl-C and SIGTERM stop the server even when SIGINT arrived ignored (a
    # shell starts background jobs with SIGINT ignored, and Python then keeps
    # it so: the sandbox would never see Ctrl-C).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    server = SandboxServer(config, port=args.port, log_level="info")
    try:
        server.start()
    except OSError as error:
        print(f"cannot listen on {HOST}:{args.port}: {error}", file=sys.stderr)
        return 1
    for name, value in service_env(server.url).items():
        print(f"export {name}={shlex.quote(value)}")
    sys.stdout.flush()
    print(f"# vendor sandbox at {server.url} (scale {args.scale}); Ctrl-C to stop", file=sys.stderr)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
