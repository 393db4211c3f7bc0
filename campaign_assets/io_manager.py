"""Asset values on any filesystem fsspec reaches: local, ``s3://``, ``gs://``.

``CampaignIOManager`` is the code location's ``io_manager``. It pickles every
value like Dagster's default ``FilesystemIOManager`` and lays them out the same
way (``BASE/<asset key>/<partition>``), on a ``dagster.UPathIOManager``
(universal-pathlib over fsspec), so the base can be a bucket prefix that every
host reads: a run on one machine loads what a run on another wrote
(``report_refresh_job`` loads the upstream values of earlier runs).

Where, from the environment (``resources.build_resources``):

- ``CAMPAIGN_IO_BASE`` (through ``dg.EnvVar``): ``s3://bucket/prefix``,
  ``gs://bucket/prefix`` or a local folder. Unset, the instance's storage
  folder (``$DAGSTER_HOME/storage``, a temporary folder for an ephemeral
  instance): exactly where the default IO manager kept values before, so
  values written before this IO manager existed still load.
- ``AWS_ENDPOINT_URL`` (an S3-compatible endpoint: MinIO, moto, R2): passed to
  s3fs as ``endpoint_url``. Credentials are never configuration here: s3fs
  (botocore) reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, an
  instance role or IRSA itself; gcsfs reads ``GOOGLE_APPLICATION_CREDENTIALS``
  or workload identity.

Followed: Dagster's "UPathIOManager" API docs (``dump_to_path``,
``load_from_path``, ``make_safe_partition_path``) and its own
``PickledObjectFilesystemIOManager``; universal-pathlib's ``UPath(url,
**storage_options)``; s3fs's ``S3FileSystem(endpoint_url=...)``.
"""

from __future__ import annotations

import pickle
from typing import Any

import dagster as dg
from dagster._core.storage.upath_io_manager import escape_dotdot_segments, escape_leading_slash
from pydantic import Field
from upath import UPath

from campaign_assets.storage import ENDPOINT_ENV, storage_options

__all__ = ["ENDPOINT_ENV", "IO_BASE_ENV", "CampaignIOManager", "PickledUPathIOManager", "io_base", "storage_options"]

IO_BASE_ENV = "CAMPAIGN_IO_BASE"
PICKLE_PROTOCOL = 4  # the default IO manager's: readable by every Python the project supports


def io_base(base: str, endpoint_url: str | None = None) -> UPath:
    """The base path as a UPath with its storage options (``storage.location``)."""
    return UPath(base, **storage_options(base, endpoint_url))


class PickledUPathIOManager(dg.UPathIOManager):
    """Pickles to ``BASE/<asset key>/<partition>`` (no extension, as the default IO manager)."""

    extension = ""

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        # A partition key is a literal segment under the asset, never a way up or out.
        return base_path / escape_dotdot_segments(escape_leading_slash(partition))

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        with path.open("wb") as file:
            pickle.dump(obj, file, PICKLE_PROTOCOL)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        with path.open("rb") as file:
            return pickle.load(file)


class CampaignIOManager(dg.ConfigurableIOManagerFactory):
    """Asset values pickled under ``base_path`` (a local folder, ``s3://`` or ``gs://``)."""

    base_path: str | None = Field(
        default=None,
        description="Local folder, s3://bucket/prefix or gs://bucket/prefix (CAMPAIGN_IO_BASE). "
        "Unset: the instance's storage folder, where the default IO manager keeps values.",
    )
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint for s3:// bases (AWS_ENDPOINT_URL)."
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> PickledUPathIOManager:
        base = self.base_path
        if not base:
            if context.instance is None:
                raise dg.DagsterInvariantViolationError(f"{IO_BASE_ENV} is unset and there is no instance")
            base = context.instance.storage_directory()
        return PickledUPathIOManager(base_path=io_base(base, self.endpoint_url))
