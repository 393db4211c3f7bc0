"""The scripted vendor's server: one per test module, reset before each test."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from campaign_assets_tests.http_layer.vendor import ScriptedVendor, Server


@pytest.fixture(scope="module")
def _server() -> Any:
    vendor = ScriptedVendor()
    app = Starlette(routes=[Mount("/", app=vendor)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    # The fake vendor's own logs are not under test: dropped connections make uvicorn log
    # "Exception in ASGI application", and its access log prints request URLs (query tokens
    # included) -- the server side, not our client. Silence both while the server runs.
    server_loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")]
    previous = [lg.disabled for lg in server_loggers]
    for lg in server_loggers:
        lg.disabled = True
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Server(vendor, f"http://127.0.0.1:{port}")
    finally:
        vendor.released.set()  # a request still held answers, so the server stops at once
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        for lg, was_disabled in zip(server_loggers, previous):
            lg.disabled = was_disabled


@pytest.fixture()
def server(_server: Server) -> Server:
    _server.vendor.reset()
    return _server


