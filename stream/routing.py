"""Which feature worker gets a tracklet's crops, and the camera stage's sending side (SPEC §4).

Several workers share one crop stream by tracklet: every crop and the end of a (camera, track)
go to the same worker, chosen by a hash that is stable across processes and runs (Python's
``hash`` of a str is salted per process, crc32 is not). A worker then aggregates its tracklets
locally and never needs another worker's crops. Each worker binds its own PULL endpoint; a
camera stage holds one PUSH socket per worker endpoint (`CropRouter`), in the configured order.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import zmq

from stream.wire import CropMessage, TrackEndMessage


def worker_for(camera: str, track: int, num_workers: int) -> int:
    """The index in [0, num_workers) of the worker that owns tracklet (camera, track)."""
    if num_workers < 1:
        raise ValueError(f"num_workers must be ≥ 1, got {num_workers}")
    return zlib.crc32(f"{camera}\x00{track}".encode()) % num_workers


class CropRouter:
    """PUSH sockets connected to the workers' crop endpoints; `send` routes by `worker_for`.

    ``send_hwm``: messages queued per worker before `send` blocks (or, with ``block=False``,
    reports the worker as full so a real-time stage can drop the crop instead of stalling).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        context: zmq.Context | None = None,
        send_hwm: int = 1000,
        linger_ms: int = 2000,
    ) -> None:
        if not endpoints:
            raise ValueError("CropRouter needs at least one worker endpoint")
        self.endpoints = list(endpoints)
        context = context or zmq.Context.instance()
        self._sockets = []
        for endpoint in self.endpoints:
            socket = context.socket(zmq.PUSH)
            socket.setsockopt(zmq.SNDHWM, send_hwm)
            socket.setsockopt(zmq.LINGER, linger_ms)
            socket.connect(endpoint)
            self._sockets.append(socket)

    def send(
        self, message: CropMessage | TrackEndMessage, *, block: bool = True, jpeg_quality: int = 90
    ) -> bool:
        """Send ``message`` to its tracklet's worker; False when ``block`` is off and that
        worker's queue is full (the message was not sent)."""
        index = worker_for(message.camera, message.track, len(self._sockets))
        frames = (
            message.encode(jpeg_quality) if isinstance(message, CropMessage) else message.encode()
        )
        try:
            self._sockets[index].send_multipart(frames, flags=0 if block else zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def close(self) -> None:
        """Close the sockets; queued messages still go out for up to ``linger_ms``."""
        for socket in self._sockets:
            socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
