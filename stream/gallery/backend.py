"""The backend line: what `Gallery` needs from a Qdrant store, met by Edge and by a server.

Everything above this line (matching, re-ranking, the id sequence, schema checks, records) is
shared; a backend only translates these few calls into its client's API.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from stream.gallery.records import GLOBAL_VECTOR

# payload field → index kind; the matcher filters by camera and time, lookups go by global id.
PAYLOAD_INDEXES = {
    "camera": "keyword",
    "t_first": "float",
    "t_last": "float",
    "t_end": "float",
    "global_id": "integer",
}


class GalleryError(RuntimeError):
    """A gallery that cannot be opened or used as asked; the message names where and why."""


@dataclass(frozen=True)
class CandidateFilter:
    """Payload conditions on a search or scroll; None leaves a condition out.

    ``reentry`` = (t_first, t_last) of a new tracklet on ``exclude_camera``: that camera's
    tracklets pass too when they were last seen before t_first and had ended by t_last (the
    same person leaving the view and coming back).
    """

    exclude_camera: str | None = None
    reentry: tuple[float, float] | None = None
    camera: str | None = None
    t_last_min: float | None = None
    t_first_max: float | None = None
    global_id: int | None = None

    def build(self, models: SimpleNamespace) -> object | None:
        """This filter in a client's own classes; both speak Qdrant's filter language.

        ``models`` names the client's ``Filter``, ``FieldCondition``, ``MatchValue`` and
        ``Range`` classes (they take the same keyword arguments in both clients).
        """
        must, must_not = [], []
        if self.exclude_camera is not None:
            other_camera = models.FieldCondition(
                key="camera", match=models.MatchValue(value=self.exclude_camera)
            )
            if self.reentry is None:
                must_not.append(other_camera)
            else:
                began, seen = self.reentry
                ended_before = models.Filter(
                    must=[
                        other_camera,
                        models.FieldCondition(key="t_last", range=models.Range(lt=began)),
                        models.FieldCondition(key="t_end", range=models.Range(lte=seen)),
                    ]
                )
                must.append(
                    models.Filter(should=[models.Filter(must_not=[other_camera]), ended_before])
                )
        if self.camera is not None:
            must.append(
                models.FieldCondition(key="camera", match=models.MatchValue(value=self.camera))
            )
        if self.global_id is not None:
            must.append(
                models.FieldCondition(
                    key="global_id", match=models.MatchValue(value=self.global_id)
                )
            )
        if self.t_last_min is not None:
            must.append(
                models.FieldCondition(key="t_last", range=models.Range(gte=self.t_last_min))
            )
        if self.t_first_max is not None:
            must.append(
                models.FieldCondition(key="t_first", range=models.Range(lte=self.t_first_max))
            )
        if not must and not must_not:
            return None
        return models.Filter(must=must or None, must_not=must_not or None)

    def admits(self, payload: dict) -> bool:
        """Whether a point with this payload passes: the conditions of `build`, checked here."""
        return (
            (
                self.exclude_camera is None
                or payload["camera"] != self.exclude_camera
                or (self.reentry is not None and _ended_before(payload, *self.reentry))
            )
            and (self.camera is None or payload["camera"] == self.camera)
            and (self.global_id is None or payload["global_id"] == self.global_id)
            and (self.t_last_min is None or payload["t_last"] >= self.t_last_min)
            and (self.t_first_max is None or payload["t_first"] <= self.t_first_max)
        )


def _ended_before(payload: dict, began: float, seen: float) -> bool:
    t_end = payload.get("t_end")
    return payload["t_last"] < began and t_end is not None and t_end <= seen


@dataclass(frozen=True)
class StoredPoint:
    """A point as a backend returns it: id, payload, global vector and (searches) cosine score."""

    id: str
    payload: dict
    global_vector: np.ndarray
    score: float | None = None

    @classmethod
    def of(cls, point: object, score: float | None = None) -> StoredPoint:
        """From either client's point or record (both carry ``id``, ``payload``, ``vector``)."""
        return cls(
            id=str(point.id),
            payload=point.payload,
            global_vector=np.asarray(point.vector[GLOBAL_VECTOR], dtype=np.float32),
            score=score,
        )


class Backend(ABC):
    """One Qdrant collection of tracklet points (layout in `stream.gallery.records`)."""

    location: str

    @abstractmethod
    def stored_vector_size(self) -> int | None:
        """Size of the stored ``global`` vector; None when the collection does not exist yet."""

    @abstractmethod
    def create(self, vector_size: int) -> None:
        """Create the collection with its cosine ``global`` vector and the payload indexes."""

    @abstractmethod
    def upsert(self, points: list[tuple[str, np.ndarray, dict]]) -> None:
        """Insert or replace (id, global vector, payload) points; searches see them at once."""

    @abstractmethod
    def flush(self) -> None:
        """Make every upsert so far durable: after it returns, the points are acknowledged."""

    @abstractmethod
    def search(
        self, vector: np.ndarray, limit: int, where: CandidateFilter, hnsw_ef: int | None
    ) -> list[StoredPoint]:
        """The ``limit`` nearest points by cosine of the global vector, best first: exactly
        (``hnsw_ef`` None) or through the HNSW index with that search breadth."""

    @abstractmethod
    def retrieve(self, ids: list[str]) -> list[StoredPoint]:
        """The points with these ids that exist, in no particular order."""

    @abstractmethod
    def scroll(self, where: CandidateFilter) -> list[StoredPoint]:
        """Every point that passes ``where``."""

    @abstractmethod
    def max_global_id(self) -> int:
        """The largest stored global id, 0 when empty: the id sequence continues from it."""

    @abstractmethod
    def count(self) -> int:
        """Number of stored points."""

    @abstractmethod
    def build_index(self) -> None:
        """Build the approximate-search (HNSW) index of what is stored, now."""

    @abstractmethod
    def close(self) -> None:
        """Release the collection (flushing first where that applies)."""
