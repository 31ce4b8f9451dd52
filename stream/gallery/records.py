"""What the gallery stores for a tracklet, and how a record maps onto a Qdrant point.

Point layout (both backends):
- id: a UUID derived from (run, camera, track), so re-sending a tracklet updates it in place
  and two runs (whose trackers both start at track 1) never share a point;
- vector ``"global"`` [d], cosine, stored as float16: the one vector searched (payload filters
  narrow it). An exact search streams every candidate's vector, so half the bytes made Edge's
  filtered search at 100k tracklets 1.6x faster (144 -> 88 ms p50 on a CPU loaded by other
  jobs, side by side); the cosine moves by ~1e-3, below what re-ranking decides on;
- payload ``camera`` (keyword index), ``t_first`` / ``t_last`` (float indexes: the time window),
  ``global_id`` (integer index: lookup for `Gallery.records_of`, range for the id sequence),
  ``t_end`` (float index; null while the tracklet is open: re-entry candidates have ended),
  ``run``, ``track``, ``thumbnail``, ``match_score``, ``visibility`` [K] (a short list of
  floats), ``box_first`` / ``box_last`` ([x1, y1, x2, y2] or null), and
  ``parts``: the K part vectors, each unit-normalised (cosine distance ignores scale), as
  little-endian float16 bytes in base64.

Why parts live in the payload and not as a named vector: they are never searched, only read
for the top-N candidates, and a returned vector crosses into Python as K·d float objects. With
K=10, d=512 and 20 candidates, Qdrant Edge returned them in ~13–21 ms p50 as a named vector
against ~7–8 ms through this payload (measured side by side on 5k points, 2 shared CPU cores);
float16 halves the bytes at a cosine error of ~1e-3.
"""

from __future__ import annotations

import base64
import math
import uuid
from dataclasses import dataclass, field

import numpy as np
import torch

from reid_core.features import ReIDFeatures

GLOBAL_VECTOR = "global"
POINT_ID_NAMESPACE = uuid.UUID("6f1c8a52-3d0e-4b47-9a83-51f0c2b7e915")
PART_DTYPE = np.dtype("<f2")
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the camera's frame


def point_id(camera: str, track: int, run: str = "") -> str:
    """The stable point id of a tracklet: one point per (run, camera, track), updated in place.

    Without a run it is the id of galleries written before runs had ids (same (camera, track)
    → same point)."""
    key = f"{camera}\x00{track}" if not run else f"{run}\x00{camera}\x00{track}"
    return str(uuid.uuid5(POINT_ID_NAMESPACE, key))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


@dataclass(frozen=True)
class Appearance:
    """A tracklet's appearance, as the occlusion-aware distance reads it (SPEC §2.6–2.7).

    global_vector [d], part_vectors [K, d], visibility [K] in [0, 1]; stored float32.
    """

    global_vector: np.ndarray
    part_vectors: np.ndarray
    visibility: np.ndarray

    def __post_init__(self) -> None:
        for name in ("global_vector", "part_vectors", "visibility"):
            value = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            if not np.isfinite(value).all():
                raise ValueError(f"Appearance.{name} has non-finite values")
            object.__setattr__(self, name, value)
        if self.global_vector.ndim != 1:
            raise ValueError(
                f"Appearance.global_vector must be [d], got {self.global_vector.shape}"
            )
        d = self.global_vector.shape[0]
        if self.part_vectors.ndim != 2 or self.part_vectors.shape[1] != d:
            raise ValueError(
                f"Appearance.part_vectors must be [K, {d}], got {self.part_vectors.shape}"
            )
        k = self.part_vectors.shape[0]
        if self.visibility.shape != (k,):
            raise ValueError(f"Appearance.visibility must be [{k}], got {self.visibility.shape}")
        if (self.visibility < 0).any() or (self.visibility > 1).any():
            raise ValueError("Appearance.visibility must lie in [0, 1]")
        if not np.linalg.norm(self.global_vector) > 0:
            raise ValueError("Appearance.global_vector is all zeros (cosine is undefined)")

    def __repr__(self) -> str:
        return f"Appearance(d={self.dim}, K={self.num_parts}, visibility={self.visibility})"

    @property
    def dim(self) -> int:
        return self.global_vector.shape[0]

    @property
    def num_parts(self) -> int:
        return self.part_vectors.shape[0]

    @classmethod
    def from_features(cls, features: ReIDFeatures, index: int = 0) -> Appearance:
        """One row of a model output (e.g. a worker's aggregated tracklet features)."""
        row = features[index].detach().cpu()
        return cls(
            global_vector=row.global_features[0].numpy(),
            part_vectors=row.part_features[0].numpy(),
            visibility=row.visibility[0].numpy(),
        )


def as_features(appearances: list[Appearance]) -> ReIDFeatures:
    """Stack appearances into the `ReIDFeatures` that `reid_core.distance` takes.

    The gallery keeps no keypoints, Jacobians or segmentation (the distance reads none of them):
    those fields are neutral (zero keypoints, identity Jacobians, an empty 0×0 grid).
    """
    n, k = len(appearances), appearances[0].num_parts
    return ReIDFeatures(
        global_features=torch.from_numpy(np.stack([a.global_vector for a in appearances])),
        part_features=torch.from_numpy(np.stack([a.part_vectors for a in appearances])),
        visibility=torch.from_numpy(np.stack([a.visibility for a in appearances])),
        keypoints=torch.zeros(n, k, 2),
        jacobians=torch.eye(2).expand(n, k, 2, 2).clone(),
        segmentation=torch.zeros(n, k + 1, 0, 0),
    )


@dataclass(frozen=True, kw_only=True)
class Tracklet:
    """One camera's track of one person, with its aggregated appearance, as the worker sends it.

    ``run`` names the `stream run` that saw it (track ids restart in every run); ``t_end`` is
    when its camera ended it, None while it is open: only an ended tracklet of the same camera
    is a re-entry candidate. ``box_first`` / ``box_last`` are its boxes (pixels of its camera's
    frame) at ``t_first`` / ``t_last``, None when unknown: where it entered and left the view
    tell whether a re-entry is physically possible (`GalleryConfig.reentry_max_speed`).
    """

    camera: str
    track: int
    t_first: float
    t_last: float
    appearance: Appearance
    thumbnail: str = ""
    run: str = ""
    t_end: float | None = None
    box_first: Box | None = None
    box_last: Box | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.camera, str) or not self.camera:
            raise ValueError(f"Tracklet.camera must be a non-empty string, got {self.camera!r}")
        if isinstance(self.track, bool) or not isinstance(self.track, int) or self.track < 0:
            raise ValueError(f"Tracklet.track must be an integer ≥ 0, got {self.track!r}")
        if not (math.isfinite(self.t_first) and math.isfinite(self.t_last)):
            raise ValueError(f"Tracklet times must be finite, got {self.t_first}, {self.t_last}")
        if self.t_first > self.t_last:
            raise ValueError(f"Tracklet.t_first {self.t_first} is after t_last {self.t_last}")
        if self.t_end is not None and not math.isfinite(self.t_end):
            raise ValueError(f"Tracklet.t_end must be finite or None, got {self.t_end}")
        for name in ("box_first", "box_last"):
            box = getattr(self, name)
            if box is not None and not _is_box(box):
                raise ValueError(
                    f"Tracklet.{name} must be [x1, y1, x2, y2] finite with x1 <= x2 and "
                    f"y1 <= y2, or None; got {box!r}"
                )

    @property
    def point_id(self) -> str:
        return point_id(self.camera, self.track, self.run)


@dataclass(frozen=True, kw_only=True)
class TrackletRecord(Tracklet):
    """A stored tracklet: its global identity and the distance it was matched at.

    ``match_score`` is None for a tracklet that founded a new identity with no candidate.
    The stored global vector comes back unit-normalised (Qdrant normalises cosine vectors).
    """

    global_id: int
    match_score: float | None = None

    def to_payload(self) -> dict:
        parts = unit_rows(self.appearance.part_vectors).astype(PART_DTYPE)
        return {
            "camera": self.camera,
            "run": self.run,
            "track": self.track,
            "global_id": self.global_id,
            "t_first": float(self.t_first),
            "t_last": float(self.t_last),
            "t_end": None if self.t_end is None else float(self.t_end),
            "thumbnail": self.thumbnail,
            "match_score": self.match_score,
            "box_first": None if self.box_first is None else [float(v) for v in self.box_first],
            "box_last": None if self.box_last is None else [float(v) for v in self.box_last],
            "visibility": [float(v) for v in self.appearance.visibility],
            "parts": base64.b64encode(parts.tobytes()).decode("ascii"),
        }

    @classmethod
    def from_point(cls, payload: dict, global_vector: np.ndarray) -> TrackletRecord:
        visibility = np.asarray(payload["visibility"], dtype=np.float32)
        parts = np.frombuffer(base64.b64decode(payload["parts"]), dtype=PART_DTYPE)
        appearance = Appearance(
            global_vector=global_vector,
            part_vectors=parts.astype(np.float32).reshape(len(visibility), -1),
            visibility=visibility,
        )
        return cls(
            camera=payload["camera"],
            track=payload["track"],
            t_first=payload["t_first"],
            t_last=payload["t_last"],
            appearance=appearance,
            thumbnail=payload["thumbnail"],
            run=payload.get("run", ""),  # galleries written before runs had ids
            t_end=payload.get("t_end"),
            box_first=_box_or_none(payload.get("box_first")),  # None in older galleries
            box_last=_box_or_none(payload.get("box_last")),
            global_id=payload["global_id"],
            match_score=payload["match_score"],
        )


def box_distance_in_heights(a: Box, b: Box) -> float | None:
    """Distance between two boxes' centres in units of the taller box's height: how far a
    person moved, in body heights, whatever their distance from the camera (None when both
    boxes are 0 px tall)."""
    height = max(a[3] - a[1], b[3] - b[1])
    if height <= 0:
        return None
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return math.hypot(dx, dy) / height


def _is_box(box: object) -> bool:
    try:
        x1, y1, x2, y2 = (float(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return False
    return all(math.isfinite(v) for v in (x1, y1, x2, y2)) and x1 <= x2 and y1 <= y2


def _box_or_none(value: list[float] | None) -> Box | None:
    return None if value is None else tuple(float(v) for v in value)  # type: ignore[return-value]


@dataclass(frozen=True)
class Match:
    """`Gallery.match`'s answer: the global identity, its distance, and whether it is new.

    score: occlusion-aware distance (SPEC §2.7, lower = more alike) to the accepted tracklet,
    or to the best rejected one for a new identity; None when no candidate passed the filters.
    """

    global_id: int
    score: float | None
    is_new: bool


@dataclass(frozen=True)
class GalleryHit:
    """One search result: the stored tracklet, its distance to the query and Qdrant's cosine."""

    record: TrackletRecord
    distance: float
    similarity: float = field(repr=False)
