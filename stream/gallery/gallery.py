"""`Gallery`: cross-camera identity matching over a Qdrant collection (SPEC §4).

Matching a tracklet: the top-N stored tracklets by cosine of the global vector, filtered in
Qdrant to a time window and to other cameras or, for a person who comes back into a view, this
camera's tracklets that ended before the new one began (re-entry), are re-ranked by the
occlusion-aware distance (SPEC §2.7, `reid_core.distance.occlusion_aware_distance`); the
nearest one within the threshold lends its global id — unless that identity already has another
tracklet on this camera at an overlapping time (one person is not twice in one view at once;
the next candidate is tried) — otherwise the tracklet founds a new identity. A tracklet already in the gallery
keeps its global id while its features are updated — unless it is still the only tracklet
of its identity (``relink``): then each re-match may still join another camera's identity,
whose tracklet of the same person was not stored yet at the first match or matches only now
that more crops are pooled (``relink_reentry`` adds this camera's ended tracks).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import TracebackType
from typing import Self

import numpy as np
import torch

from reid_core.distance import occlusion_aware_distance
from stream.gallery.backend import Backend, CandidateFilter, GalleryError, StoredPoint
from stream.gallery.config import GalleryConfig
from stream.gallery.records import (
    Appearance,
    GalleryHit,
    Match,
    Tracklet,
    TrackletRecord,
    as_features,
    box_distance_in_heights,
    point_id,
)


def _backend(config: GalleryConfig) -> Backend:
    if config.path is not None:
        from stream.gallery.edge import EdgeBackend

        return EdgeBackend(config.path / config.collection, config.edge_prefilter_factor)
    from stream.gallery.server import ServerBackend

    api_key = config.api_key or os.environ.get("QDRANT_API_KEY") or None
    return ServerBackend(config.url, api_key, config.collection)


@contextmanager
def _single_threaded_torch() -> Iterator[None]:
    """Re-ranking works on ~100k floats: split over threads on a busy CPU, each op waits for a
    descheduled sibling (F.normalize on [20, 10, 512] took 1.7–6.6 ms with 2 threads against
    0.15 ms with 1 while other processes loaded both cores). Restores the caller's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Gallery:
    """The identity gallery; `Gallery.open` (a context manager) is the usual way in.

    Not thread-safe: one worker thread owns a Gallery (Edge allows one open per folder anyway).
    """

    def __init__(self, config: GalleryConfig, backend: Backend) -> None:
        """Use ``backend``'s collection, creating it when absent; never re-creates or deletes one.

        A stored collection whose vector size or part count differs from the config is an error
        that leaves it untouched.
        """
        self.config = config
        self._backend = backend
        self._flushed_at = time.monotonic()
        stored = backend.stored_vector_size()
        if stored is None:
            backend.create(config.vector_size)
        elif stored != config.vector_size:
            raise GalleryError(
                f"the gallery {backend.location} stores {stored}-d global vectors but the "
                f"model makes {config.vector_size}-d ones (vector_size): open it with the "
                "model that built it, or give a new path/collection; nothing was changed"
            )
        last_id = backend.max_global_id()
        self._next_global_id = self._id_from(last_id + 1)
        self._check_stored_part_count(last_id)

    @classmethod
    def open(cls, config: GalleryConfig) -> Gallery:
        """Open the gallery that ``config`` names (Edge folder or server collection)."""
        backend = _backend(config)
        try:
            return cls(config, backend)
        except BaseException:
            backend.close()
            raise

    def _check_stored_part_count(self, last_id: int) -> None:
        if last_id == 0:
            return
        stored = self._backend.scroll(CandidateFilter(global_id=last_id))
        parts = len(stored[0].payload["visibility"])
        if parts != self.config.num_parts:
            raise GalleryError(
                f"the gallery {self._backend.location} stores {parts} part vectors per tracklet "
                f"but the model makes {self.config.num_parts} (num_parts); nothing was changed"
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._backend.close()

    def __len__(self) -> int:
        return self._backend.count()

    def _id_from(self, value: int) -> int:
        """The first id ≥ value in this gallery's residue class (id_offset mod id_stride)."""
        return value + (self.config.id_offset - value) % self.config.id_stride

    @property
    def next_global_id(self) -> int:
        """The id the next new identity gets; it continues across reopenings."""
        return self._next_global_id

    def _check(self, appearance: Appearance) -> None:
        expected = (self.config.vector_size, self.config.num_parts)
        if (appearance.dim, appearance.num_parts) != expected:
            raise GalleryError(
                f"appearance has d={appearance.dim}, K={appearance.num_parts}; the gallery "
                f"{self._backend.location} holds d={expected[0]}, K={expected[1]}"
            )

    def match(self, tracklet: Tracklet) -> Match:
        """Assign ``tracklet`` a global identity and store it; returns once it is acknowledged
        (see ``GalleryConfig.durability``)."""
        return self.match_batch([tracklet])[0]

    def match_batch(self, tracklets: Sequence[Tracklet]) -> list[Match]:
        """`match` for several tracklets in order, acknowledged together (one flush).

        A later tracklet of the batch can match an earlier one: each is stored before the next
        is searched.
        """
        for tracklet in tracklets:
            self._check(tracklet.appearance)
        matches = []
        for tracklet in tracklets:
            stored = self.get(tracklet.camera, tracklet.track, tracklet.run)
            if stored is not None:
                match = Match(stored.global_id, stored.match_score, is_new=False)
                if self.config.relink and self._alone(stored):
                    relinked, _ = self._join(
                        tracklet, own_id=stored.global_id, reentry=self.config.relink_reentry
                    )
                    match = relinked or match
                earlier = stored if stored.t_first < tracklet.t_first else tracklet
                t_first, box_first = earlier.t_first, earlier.box_first
                t_end = stored.t_end if tracklet.t_end is None else tracklet.t_end
            else:
                match = self._decide(tracklet)
                t_first, box_first, t_end = tracklet.t_first, tracklet.box_first, tracklet.t_end
            record = TrackletRecord(
                camera=tracklet.camera,
                track=tracklet.track,
                run=tracklet.run,
                t_first=t_first,
                t_last=tracklet.t_last,
                t_end=t_end,
                box_first=box_first,
                box_last=tracklet.box_last,
                appearance=tracklet.appearance,
                thumbnail=tracklet.thumbnail,
                global_id=match.global_id,
                match_score=match.score,
            )
            self._store([record])
            matches.append(match)
        self._acknowledge()
        return matches

    def end(self, camera: str, track: int, t_end: float, run: str = "") -> TrackletRecord | None:
        """Mark a stored tracklet ended at ``t_end`` (it becomes a re-entry candidate on its
        camera); returns the updated record, or None when it is not stored."""
        stored = self.get(camera, track, run)
        if stored is None:
            return None
        record = replace(stored, t_end=t_end)
        self._store([record])
        self._acknowledge()
        return record

    def add(self, records: Sequence[TrackletRecord]) -> None:
        """Store records with the global ids they carry (an import, e.g. from another gallery);
        the id sequence moves past them."""
        if not records:
            return
        for record in records:
            self._check(record.appearance)
        self._store(records)
        self._acknowledge()
        self._next_global_id = self._id_from(
            max([self._next_global_id, *(r.global_id + 1 for r in records)])
        )

    def _store(self, records: Sequence[TrackletRecord]) -> None:
        self._backend.upsert(
            [(r.point_id, r.appearance.global_vector, r.to_payload()) for r in records]
        )

    def _acknowledge(self) -> None:
        """Make the writes so far as durable as ``config.durability`` promises (a flush now,
        or at most every ``flush_interval_s`` on top of the write-ahead log)."""
        interval = self.config.flush_interval_s
        now = time.monotonic()
        if self.config.durability == "flush" or (
            interval is not None and now - self._flushed_at >= interval
        ):
            self._backend.flush()
            self._flushed_at = now

    def _decide(self, tracklet: Tracklet) -> Match:
        """Join the nearest candidate within the threshold (`_join`), else start a new
        identity."""
        joined, best = self._join(tracklet)
        if joined is not None:
            return joined
        global_id = self._next_global_id
        self._next_global_id = self._id_from(global_id + 1)
        return Match(global_id, best, is_new=True)

    def _join(
        self, tracklet: Tracklet, own_id: int | None = None, reentry: bool = True
    ) -> tuple[Match | None, float | None]:
        """The nearest candidate within the threshold whose identity (not ``own_id``) is not
        already on this camera meanwhile (one person is not in two places of one view at
        once), and the best distance seen. Candidates: other cameras' tracklets, and with
        ``reentry`` this camera's that ended before this one began, within the time window,
        and from whose last box a person could have reached this one's first (`_reachable`)."""
        window = self.config.time_window_s
        candidates = self._ranked(
            tracklet.appearance,
            CandidateFilter(
                exclude_camera=tracklet.camera,
                reentry=(tracklet.t_first, tracklet.t_last) if reentry else None,
                t_last_min=None if window is None else tracklet.t_first - window,
            ),
            limit=self.config.top_n,
            rerank=True,
        )
        best = candidates[0].distance if candidates else None
        for candidate in candidates:
            if candidate.distance > self.config.threshold:
                break
            global_id = candidate.record.global_id
            if (
                global_id != own_id
                and self._reachable(candidate.record, tracklet)
                and not self._on_camera_meanwhile(global_id, tracklet)
            ):
                return Match(global_id, candidate.distance, is_new=False), best
        return None, best

    def _reachable(self, record: TrackletRecord, tracklet: Tracklet) -> bool:
        """Whether a person could have gone from ``record``'s last box to ``tracklet``'s first
        on their shared camera at ``reentry_max_speed`` (other cameras, or boxes unknown:
        True)."""
        speed = self.config.reentry_max_speed
        if (
            speed is None
            or record.camera != tracklet.camera
            or record.box_last is None
            or tracklet.box_first is None
        ):
            return True
        heights = box_distance_in_heights(record.box_last, tracklet.box_first)
        gap = max(0.0, tracklet.t_first - record.t_last)
        return heights is None or heights <= self.config.reentry_slack + speed * gap

    def _alone(self, record: TrackletRecord) -> bool:
        """Whether ``record`` is the only tracklet of its identity (no other joined it)."""
        return len(self._backend.scroll(CandidateFilter(global_id=record.global_id))) == 1

    def _on_camera_meanwhile(self, global_id: int, tracklet: Tracklet) -> bool:
        """Whether identity ``global_id`` has another tracklet on ``tracklet``'s camera whose
        time span overlaps it."""
        overlapping = CandidateFilter(
            camera=tracklet.camera,
            global_id=global_id,
            t_last_min=tracklet.t_first,
            t_first_max=tracklet.t_last,
        )
        return any(p.id != tracklet.point_id for p in self._backend.scroll(overlapping))

    def search(
        self,
        query: Appearance,
        limit: int = 10,
        *,
        exclude_camera: str | None = None,
        camera: str | None = None,
        since: float | None = None,
        until: float | None = None,
        rerank: bool = True,
    ) -> list[GalleryHit]:
        """Stored tracklets nearest to ``query``, nearest first.

        since/until keep tracklets seen at or after / at or before those times. With ``rerank``
        the top ``max(limit, top_n)`` by global cosine are ordered by the occlusion-aware
        distance; without it the distance is the global cosine distance.
        """
        self._check(query)
        where = CandidateFilter(
            exclude_camera=exclude_camera, camera=camera, t_last_min=since, t_first_max=until
        )
        fetch = max(limit, self.config.top_n) if rerank else limit
        return self._ranked(query, where, fetch, rerank)[:limit]

    def _ranked(
        self, query: Appearance, where: CandidateFilter, limit: int, rerank: bool
    ) -> list[GalleryHit]:
        hnsw_ef = None if self.config.exact else self.config.hnsw_ef
        points = self._backend.search(query.global_vector, limit, where, hnsw_ef)
        if not points:
            return []
        records = [_record(p) for p in points]
        if rerank:
            gallery = as_features([r.appearance for r in records])
            with _single_threaded_torch():
                distances = occlusion_aware_distance(
                    as_features([query]), gallery, lam=self.config.lam
                )[0].numpy()
        else:
            distances = np.array([1.0 - p.score for p in points])
        order = np.argsort(distances, kind="stable")
        return [
            GalleryHit(records[i], float(distances[i]), similarity=float(points[i].score))
            for i in order
        ]

    def get(self, camera: str, track: int, run: str = "") -> TrackletRecord | None:
        """The stored tracklet of (run, camera, track), or None."""
        found = self._backend.retrieve([point_id(camera, track, run)])
        return _record(found[0]) if found else None

    def records_of(self, global_id: int) -> list[TrackletRecord]:
        """Every tracklet of one identity, by first sighting: its appearances across cameras."""
        records = [_record(p) for p in self._backend.scroll(CandidateFilter(global_id=global_id))]
        return sorted(records, key=lambda r: (r.t_first, r.camera, r.track))


def _record(point: StoredPoint) -> TrackletRecord:
    return TrackletRecord.from_point(point.payload, point.global_vector)
