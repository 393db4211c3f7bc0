"""A real S3 API on this machine: moto's server mode in its own process group.

``moto_s3()`` starts ``moto_server -H 127.0.0.1 -p PORT`` (a free port), waits
until it answers, yields the environment a client needs (``AWS_ENDPOINT_URL``
and dummy credentials, which moto accepts) and stops the process group by its
pid. Nothing outside the test talks to it; nothing of it outlives the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from campaign_assets_tests.support.ports import HOST, free_port
from campaign_assets_tests.support.processes import start_in_group, stop_groups, wait_for

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
REGION = "us-east-1"


@dataclass
class MotoS3:
    endpoint: str
    env: dict[str, str]
    process: subprocess.Popen

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _up(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500
    except httpx.TransportError:
        return False


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    port = free_port()
    endpoint = f"http://{HOST}:{port}"
    process = start_in_group([str(MOTO_SERVER), "-H", HOST, "-p", str(port)], cwd=Path.cwd(), env=os.environ)
    try:
        wait_for("moto_server", lambda: _up(endpoint) or process.poll() is not None, timeout=60, interval=0.2)
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }
        yield MotoS3(endpoint, env, process)
    finally:
        stop_groups([process], grace_s=10)
