"""Atomic writes: a crash or kill never leaves a half-written file or directory behind.

Files are written to a temporary sibling and renamed; directories are built in a
temporary sibling (`.tmp-*`, never picked up by loaders) and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX + path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces `path` in one rename.

    An existing `path` is moved aside first and removed after the swap; on error the
    temporary directory is deleted and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + path.name + "-", dir=path.parent))
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f"{TEMP_PREFIX}old-{path.name}-{os.getpid()}"
        os.replace(path, old)
    os.replace(temp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_stale_temporaries(directory: str | Path) -> list[Path]:
    """Remove leftovers of interrupted atomic writes in `directory`; returns what was removed."""
    removed = []
    for entry in Path(directory).glob(TEMP_PREFIX + "*"):
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
