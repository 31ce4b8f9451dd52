"""Shared pytest set-up: keep every library offline and give tests the shared data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ultralytics reaches for the network at import (NOTES.md): keep it offline in every test.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked slow (20 s to 2 min each) run first. `make test` hands whole modules to
    the two xdist workers (``--dist loadscope``, so a module's fixtures are built once) in the
    order of their first test here (``--no-loadscope-reorder``): the modules with long tests
    start first, and no worker is left finishing a long one alone while the other waits.
    (``--dist loadgroup`` would keep named groups together, but pytest-xdist 3.8 marks a group
    by rewriting ``item._nodeid``, which pytest 9.2 no longer reads: every group was split.)"""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def _offline_ultralytics_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics")))


@pytest.fixture(scope="session")
def tud_campus() -> Path:
    """Real MOT15 footage (../shared/data/mot15-TUD-Campus); tests using it skip when absent."""
    root = SHARED_DATA / "mot15-TUD-Campus"
    if not (root / "gt" / "gt.txt").is_file():
        pytest.skip(f"shared real footage not present at {root}")
    return root


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic 2-camera scene (3 people, 3 s, 320×180) shared read-only by the
    stream tests; tests that need other settings render their own."""
    from trainer.synth.video import VideoConfig, write_videos

    out = tmp_path_factory.mktemp("scene") / "synth"
    config = VideoConfig(cameras=2, people=3, seconds=3, size=(320, 180))
    write_videos(config, out, workers=1, show_progress=False)
    return out
