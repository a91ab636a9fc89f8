"""Fixtures for the serving tests: a random-weight checkpoint and a shared running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import MODEL, running

from anyseq.testing import random_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("serve") / MODEL)


@pytest.fixture(scope="module")
def server(checkpoint) -> Iterator[str]:
    """A shared server (tests that count what the server did start their own)."""
    with running(checkpoint) as (url, _):
        yield url
