"""Plugin (see ``pytest_plugins`` in ``tests/conftest.py``): the ``camera`` fixture, a
GStreamer RTSP test camera with credentials, for the recorder tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import recording as rec
from tests.rtsp_server import RtspCamera


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[RtspCamera]:
    with RtspCamera(tmp_path / "rtsp.log", user="viewer", password="s3cr3t-pw", fps=rec.FPS) as cam:
        yield cam
