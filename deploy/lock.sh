#!/usr/bin/env bash
# Regenerate deploy/requirements.lock: every dependency of pyproject.toml plus
# the `deploy` extra, for the image's Python (3.12, Linux), with hashes of
# every published file (pip install --require-hashes in deploy/Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile pyproject.toml --extra deploy --python-version 3.12 \
  --python-platform x86_64-unknown-linux-gnu --generate-hashes --annotation-style line \
  --custom-compile-command "bash deploy/lock.sh" -o deploy/requirements.lock -q
