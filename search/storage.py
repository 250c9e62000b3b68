"""Where Ray Tune keeps a study's experiment state: ``--storage-path``.

A local path is made absolute (default ``./runs``); a URI (``file://``, ``s3://``,
``gs://``, ...) goes to Ray unchanged, so Ray's pyarrow file systems read and write it. On a
cluster of several nodes the storage must be one that every node sees (an NFS mount at the
same path, or a bucket): trials write there from whichever node runs them.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from leukmodels.errors import UserError
from search.names import check_name, child_path

DEFAULT_ROOT = "runs"
URI_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "az", "memory")
"""Schemes Ray's storage (pyarrow / fsspec file systems) understands."""
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_uri(path: str) -> bool:
    """Whether ``path`` is a URI (``scheme://...``) rather than a local path."""
    return _SCHEME.match(path) is not None


def storage_root(path: str | None) -> str:
    """The experiment root Ray gets: an absolute local path, or the URI as given.

    An unknown scheme or a URI without a location is a UserError.
    """
    if not path:
        return str(Path(DEFAULT_ROOT).resolve())
    text = path.strip()
    match = _SCHEME.match(text)
    if match is None:
        return str(Path(text).expanduser().resolve())
    scheme = match.group(1).lower()
    if scheme not in URI_SCHEMES:
        raise UserError(
            f"--storage-path {text!r}: unknown scheme {scheme!r}; give a local path or a URI "
            f"with one of {', '.join(s + '://' for s in URI_SCHEMES)}"
        )
    parts = urlsplit(text)
    if not (parts.netloc or parts.path.strip("/")):
        raise UserError(f"--storage-path {text!r} names no bucket or folder")
    if parts.password:
        raise UserError(
            f"--storage-path {scheme}://...: put no credentials in the URI; give them to every "
            "node through the environment (e.g. AWS_ACCESS_KEY_ID from a Secret)"
        )
    return text.rstrip("/")


def experiment_path(root: str, name: str) -> str:
    """The study's own folder under ``root`` (a local path or a URI); ``name`` is checked."""
    if is_uri(root):
        return f"{root.rstrip('/')}/{check_name(name, 'study name')}"
    return str(child_path(root, name))


def split_experiment(path: str) -> tuple[str, str]:
    """``(root, name)`` of an experiment path made by :func:`experiment_path`."""
    root, _, name = path.rstrip("/").rpartition("/")
    return root, name
