"""Per-camera multi-object tracking (SPEC §5): ByteTrack by default, BoT-SORT and OC-SORT as
options, all from Roboflow's `trackers` library (not re-implemented here).

The library answers the input detections reordered (each row still carries its own box,
confidence and data), with ``tracker_id`` −1 for boxes not (yet) in a confirmed track.
`Tracker.update` keeps only confirmed tracks, and reports the tracks the library dropped since
the last update: the camera stage turns those into ``track_end`` messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv
from pydantic import BaseModel, TypeAdapter, ValidationError
from trackers import BoTSORTTracker, ByteTrackTracker, OCSORTTracker
from trackers.core.base import BaseTracker

from stream.config import TrackerConfig

TRACKERS: dict[str, type[BaseTracker]] = {
    "bytetrack": ByteTrackTracker,
    "botsort": BoTSORTTracker,
    "ocsort": OCSORTTracker,
}
_CONFIG_ADAPTER: TypeAdapter[Any] = TypeAdapter(TrackerConfig)


@dataclass
class TrackUpdate:
    """One frame's answer: confirmed tracks matched to a detection, and tracks that ended."""

    tracked: sv.Detections
    ended: list[int] = field(default_factory=list)


class Tracker:
    """A `trackers` library tracker chosen by name, with confirmed-only output and track ends."""

    def __init__(self, config: TrackerConfig, frame_rate: float) -> None:
        self.config = config
        options = config.library_options()
        self._tracker = TRACKERS[config.name](frame_rate=frame_rate, **options)
        self._uses_frame = bool(getattr(config, "enable_cmc", False))
        self._alive: set[int] = set()

    @property
    def alive(self) -> set[int]:
        """Confirmed tracks the library still keeps (matched or coasting)."""
        return set(self._alive)

    def update(
        self, detections: sv.Detections, image: np.ndarray | None, timestamp_s: float
    ) -> TrackUpdate:
        """Track one frame's detections; ``timestamp_s`` drives the motion model, so frames
        dropped by an fps cap are predicted over, not ignored."""
        frame = image if self._uses_frame else None
        result = self._tracker.update(detections, frame=frame, timestamp=timestamp_s)
        confirmed = result[result.tracker_id >= 0] if len(result) else result
        alive = {int(t.tracker_id) for t in self._tracker.tracks if t.tracker_id >= 0}
        ended = sorted(self._alive - alive)
        self._alive = alive
        return TrackUpdate(confirmed, ended)

    def finish(self) -> list[int]:
        """End of the source: every track still alive ends."""
        ended = sorted(self._alive)
        self._alive = set()
        return ended


def parse_tracker_config(spec: str | dict[str, Any]) -> TrackerConfig:
    """A tracker config from its name or cams.yaml mapping; a wrong name lists the valid ones."""
    data = {"name": spec} if isinstance(spec, str) else spec
    try:
        return _CONFIG_ADAPTER.validate_python(data)
    except ValidationError as error:
        problems = "; ".join(e["msg"] for e in error.errors())
        raise ValueError(f"invalid tracker {spec!r}: {problems}") from None


def build_tracker(spec: TrackerConfig | str | dict[str, Any], frame_rate: float) -> Tracker:
    """The tracker for a camera running at ``frame_rate`` (frames per second after any cap)."""
    config = spec if isinstance(spec, BaseModel) else parse_tracker_config(spec)
    return Tracker(config, frame_rate)
