"""Which feature worker gets a tracklet's crops, and the camera stage's sending side (SPEC §4).

Several workers share one crop stream by tracklet: every crop and the end of a (camera, track)
go to the same worker, chosen by a hash that is stable across processes and runs (Python's
``hash`` of a str is salted per process, crc32 is not). A worker then aggregates its tracklets
locally and never needs another worker's crops. Each worker binds its own PULL endpoint; a
camera stage holds one PUSH socket per worker endpoint (`stream.camera.CropSender`), in the
configured order.
"""

from __future__ import annotations

import zlib


def worker_for(camera: str, track: int, num_workers: int) -> int:
    """The index in [0, num_workers) of the worker that owns tracklet (camera, track)."""
    if num_workers < 1:
        raise ValueError(f"num_workers must be ≥ 1, got {num_workers}")
    return zlib.crc32(f"{camera}\x00{track}".encode()) % num_workers
