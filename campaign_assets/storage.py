"""One place for "how to open a location": a local folder or a URL.

Specs (``CAMPAIGNS_DIR``), artifacts (``WORKSPACE_DIR``) and asset values
(``CAMPAIGN_IO_BASE``) are each a local folder or a URL that fsspec reaches
through universal-pathlib (``s3://bucket/prefix``, ``gs://bucket/prefix``,
``file://``, ``memory://``). ``location`` turns either into a path object with
the same interface (``pathlib.Path`` or ``UPath``), giving an ``s3://`` URL
the S3-compatible endpoint (``AWS_ENDPOINT_URL``: MinIO, moto, R2).
Credentials are never configuration here: s3fs (botocore) and gcsfs find
them themselves (environment, instance role, workload identity).

Artifacts are made by code that writes local files (Pillow, Chromium, the
local backends), so a URL workspace is *mirrored*: ``Mirror.pull`` copies a
campaign's folder from the bucket into a local cache folder, the step works
there, and ``Mirror.push`` uploads what changed since the pull (new files,
or a different size or modification time). A push never deletes a remote
file unless asked (``prune``: the teardown, which deletes artifacts on
purpose).

Which copy is newer is decided by modification times: a pulled or pushed
file takes the remote object's time, so a later upload from another host is
newer than the local copy and is pulled, while a file this host wrote since
(not yet pushed) is kept.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # fsspec and upath load on first use of a URL: `campaign-assets validate` stays instant
    from upath import UPath

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
PART_SUFFIX = ".mirror-part"  # a download in progress; never pushed
# A remote object time within this of the local copy's is "the same" (S3 keeps whole seconds).
SAME_TIME_S = 1e-3

Snapshot = dict[str, tuple[int, int]]  # relative path -> (size, mtime_ns)


def is_url(where: str | os.PathLike[str]) -> bool:
    if _is_upath(where):
        return getattr(where, "protocol", "") != ""
    return not isinstance(where, Path) and "://" in os.fspath(where)


def _is_upath(where: object) -> bool:
    upath = sys.modules.get("upath")  # not imported yet: nothing is a UPath
    return upath is not None and isinstance(where, upath.UPath)


def storage_options(base: str, endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for ``base``: the S3 endpoint for ``s3://`` (and its
    ``s3a://`` alias), nothing for other protocols (gcsfs and the local
    filesystem take no endpoint here)."""
    if endpoint_url and base.split("://", 1)[0] in ("s3", "s3a"):
        return {"endpoint_url": endpoint_url}
    return {}


def location(where: str | os.PathLike[str] | UPath, endpoint_url: str | None = None) -> Path | UPath:
    """A local folder as a ``Path``, a URL as a ``UPath`` with its storage
    options; a path object is returned as it is."""
    if isinstance(where, Path) or _is_upath(where):
        return where
    text = os.fspath(where)
    if "://" in text:
        from upath import UPath

        return UPath(text, **storage_options(text, endpoint_url))
    return Path(text)


def fresh(path: Path | UPath) -> Path | UPath:
    """``path``, with what fsspec remembers of it and its parents forgotten:
    s3fs keeps listings (and the sizes it reads by) per filesystem, and one
    filesystem serves a process, so a long-lived sensor would otherwise never
    see a new or changed object."""
    if _is_upath(path) and getattr(path, "protocol", ""):
        path.fs.invalidate_cache(path.path)
    return path


def read_all(paths: Sequence[Path | UPath]) -> list[bytes | Exception]:
    """The bytes of each path, in order (an ``OSError`` for one that cannot
    be read). URLs are fetched together (s3fs and gcsfs: concurrently), so a
    folder of many specs in a bucket costs one round trip, not one each."""
    if paths and all(is_url(p) for p in paths) and len({p.protocol for p in paths}) == 1:
        got = paths[0].fs.cat([p.path for p in paths], on_error="return")
        return [_as_result(got.get(p.path, FileNotFoundError(str(p)))) for p in paths]
    out: list[bytes | Exception] = []
    for path in paths:
        try:
            out.append(path.read_bytes())
        except OSError as exc:
            out.append(exc)
    return out


def _as_result(value: Any) -> bytes | Exception:
    if isinstance(value, bytes):
        return value
    return value if isinstance(value, OSError) else OSError(str(value))


def shown(path: Path | UPath) -> str:
    """A path as a person should see it: the URL, or the absolute local path."""
    return str(path) if is_url(path) else str(Path(path).resolve())


def cache_name(url: str) -> str:
    """A relative folder naming ``url`` in a cache (``s3://b/p`` -> ``s3/b/p``),
    the same on every host; no segment can climb out."""
    protocol, _, rest = url.partition("://")
    parts = [p for p in rest.split("/") if p not in ("", ".", "..")]
    return "/".join([protocol or "local", *parts])


# ---- the mirror -------------------------------------------------------------------
def local_snapshot(folder: Path) -> Snapshot:
    """Every file under ``folder`` (but downloads in progress), with size and mtime."""
    found: Snapshot = {}
    if not folder.is_dir():
        return found
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith(PART_SUFFIX):
                continue
            path = Path(root) / name
            try:
                st = path.stat()
            except FileNotFoundError:  # removed while we walked
                continue
            found[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return found


def changed_since(before: Mapping[str, tuple[int, int]], now: Mapping[str, tuple[int, int]]) -> list[str]:
    """Files new or different (size or mtime) in ``now``, sorted."""
    return sorted(rel for rel, stat in now.items() if before.get(rel) != stat)


def remote_time(info: Mapping[str, Any]) -> float | None:
    """An fsspec listing entry's modification time, in epoch seconds
    (s3fs ``LastModified``, local ``mtime``, gcsfs ``updated``, memory ``created``)."""
    for key in ("LastModified", "mtime", "updated", "created"):
        value = info.get(key)
        if isinstance(value, dt.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _safe(rel: str) -> bool:
    return bool(rel) and not rel.startswith("/") and ".." not in rel.split("/") and not rel.endswith(PART_SUFFIX)


@dataclass
class Mirror:
    """A remote folder and its local copy; ``snapshot`` is the local copy as pulled."""

    remote: UPath
    local: Path
    snapshot: Snapshot = field(default_factory=dict)
    pulled: tuple[str, ...] = ()

    def remote_files(self) -> dict[str, dict[str, Any]]:
        """Relative path -> listing entry, for every object under the remote folder (one listing)."""
        fs, root = self.remote.fs, self.remote.path.rstrip("/")
        fs.invalidate_cache(root)
        try:
            listing = fs.find(root, detail=True)
        except FileNotFoundError:
            return {}
        files = {}
        for full, info in listing.items():
            if info.get("type", "file") != "file":
                continue
            rel = posixpath.relpath(full.rstrip("/"), root)
            if _safe(rel):
                files[rel] = info
        return files

    def _set_time(self, rel: str, when: float | None, expect: tuple[int, int] | None = None) -> None:
        """Give the local copy the remote object's time (unless it changed since ``expect``)."""
        if when is None:
            return
        path = self.local / rel
        try:
            if expect is not None:
                st = path.stat()
                if (st.st_size, st.st_mtime_ns) != expect:
                    return
            os.utime(path, (when, when))
        except FileNotFoundError:
            pass

    @classmethod
    def pull(cls, remote: UPath, local: Path) -> Mirror:
        """Copy into ``local`` every remote file it lacks or holds an older copy of."""
        mirror = cls(remote, local)
        local.mkdir(parents=True, exist_ok=True)
        wanted: list[tuple[str, float | None]] = []
        for rel, info in mirror.remote_files().items():
            when = remote_time(info)
            try:
                mtime = (local / rel).stat().st_mtime
            except FileNotFoundError:
                wanted.append((rel, when))
                continue
            if when is not None and when > mtime + SAME_TIME_S:
                wanted.append((rel, when))
        if wanted:
            fs, root = remote.fs, remote.path.rstrip("/")
            parts = [local / f"{rel}.{uuid.uuid4().hex[:8]}{PART_SUFFIX}" for rel, _ in wanted]
            for part in parts:
                part.parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get([f"{root}/{rel}" for rel, _ in wanted], [str(p) for p in parts])
                for (rel, when), part in zip(wanted, parts):
                    os.replace(part, local / rel)  # readers see the old file or the new one, never half
                    mirror._set_time(rel, when)
            finally:
                for part in parts:
                    part.unlink(missing_ok=True)
        mirror.pulled = tuple(rel for rel, _ in wanted)
        mirror.snapshot = local_snapshot(local)
        return mirror

    def push(self, prune: bool = False) -> list[str]:
        """Upload the files new or changed since the pull (or the last push);
        with ``prune``, delete the remote copies of files removed locally since.
        Returns what was uploaded (and ``-name`` for what was deleted)."""
        now = local_snapshot(self.local)
        upload = changed_since(self.snapshot, now)
        fs, root = self.remote.fs, self.remote.path.rstrip("/")
        done: list[str] = []
        if upload:
            fs.put([str(self.local / rel) for rel in upload], [f"{root}/{rel}" for rel in upload])
            done += upload
            times = {rel: remote_time(info) for rel, info in self.remote_files().items()}
            for rel in upload:
                self._set_time(rel, times.get(rel), expect=now[rel])
        if prune:
            gone = sorted(set(self.snapshot) - set(now))
            if gone:
                fs.rm([f"{root}/{rel}" for rel in gone])
                done += [f"-{rel}" for rel in gone]
        self.snapshot = local_snapshot(self.local)
        return done


def push_all(mirrors: Iterable[Mirror], prune: bool = False) -> list[str]:
    """Push every mirror; the remote paths uploaded (or ``-`` deleted)."""
    done = []
    for mirror in mirrors:
        done += [f"{mirror.remote}/{rel}" if not rel.startswith("-") else f"-{mirror.remote}/{rel[1:]}"
                 for rel in mirror.push(prune)]
    return done
