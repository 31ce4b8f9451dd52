"""The embedded default backend: a Qdrant Edge shard in a folder (SPEC §4, NOTES "Qdrant").

Durability, as measured with qdrant-edge-py 0.9 on this machine: every ``update`` goes to the
shard's write-ahead log first, and a process killed with SIGKILL right after an update reopens
with it (the WAL pages sit in the OS page cache). ``flush()`` writes and fsyncs the segments and
payload indexes, which also survives losing the machine; it costs ~8 ms with no payload index
and ~20 ms with this gallery's four on a quiet disk, 100–250 ms while other processes load the
shared disk. `GalleryConfig.durability` picks which of the two acknowledges a write.

Edge locks its WAL: a second open of the same folder fails (reported as "open elsewhere").

Speed (bench/gallery_speed.py): at 100k tracklets an exact search costs ~11 ms unfiltered but
43–48 ms with the matcher's filter (other camera, last seen in the window, passing half): Edge
checks the filter point by point, and principal/tenant/integer indexes and optimised segments
did not change that (measured side by side). So a filtered search is planned here: unless
Edge's estimate says the filter is selective (then its filtered search walks the index and is
quick), first an unfiltered exact top-(limit × prefilter_factor) whose payloads are checked in
Python; when at least ``limit`` of them pass (or the collection held no more) those are the
answer, exactly the filtered search's (a passing point nearer than the limit-th survivor is
nearer than the others too, so it was among the top fetched), else the filtered search runs.

"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import numpy as np
import qdrant_edge as qe

from stream.gallery.backend import (
    PAYLOAD_INDEXES,
    Backend,
    CandidateFilter,
    GalleryError,
    StoredPoint,
)
from stream.gallery.records import GLOBAL_VECTOR

EDGE_FILTER_MODELS = SimpleNamespace(
    Filter=qe.Filter,
    FieldCondition=qe.FieldCondition,
    MatchValue=qe.MatchValue,
    Range=qe.RangeFloat,
)
# Edge's default placement (Cold) drops written files from the page cache, so after a reopen
# the first read of each tracklet went to disk: 20 payloads took 9.9 ms against 0.14 ms with
# Cached (kept in the page cache, filled at load: +0.2 s to open 10k tracklets).
CACHED = qe.Memory.Cached
EDGE_INDEX_SCHEMAS = {
    "keyword": qe.KeywordIndexParams(memory=CACHED),
    "float": qe.FloatIndexParams(memory=CACHED),
    "integer": qe.IntegerIndexParams(lookup=True, range=True, memory=CACHED),
}
# what `CandidateFilter.admits` reads: a planned search fetches only these for its candidates
FILTERED_FIELDS = qe.PayloadSelector.Include(["camera", "global_id", "t_first", "t_last", "t_end"])
T = TypeVar("T")
CONFIG_FILE = "edge_config.json"  # written by Edge beside its segments (Qdrant Edge docs)
SCROLL_PAGE = 1024


class EdgeBackend(Backend):
    """A Qdrant Edge shard at ``folder``; loaded when it exists, created by `create`."""

    def __init__(self, folder: Path, prefilter_factor: int = 4) -> None:
        self.folder = folder
        self.prefilter_factor = prefilter_factor
        self.location = str(folder)
        self._shard: qe.EdgeShard | None = None
        if (folder / CONFIG_FILE).is_file():
            self._shard = self._call("open", lambda: qe.EdgeShard.load(str(folder)))

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        """Run an Edge call, turning its bare exceptions into errors that name the gallery."""
        try:
            return fn()
        except Exception as error:  # Edge raises plain Exception with a Rust message
            text = str(error)
            if "WouldBlock" in text:
                text = "it is open elsewhere (another process or Gallery holds its write-ahead log)"
            raise GalleryError(
                f"cannot {action} the Qdrant Edge gallery {self.location}: {text}"
            ) from None

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise GalleryError(f"the Qdrant Edge gallery {self.location} is closed or not created")
        return self._shard

    def stored_vector_size(self) -> int | None:
        config_file = self.folder / CONFIG_FILE
        if not config_file.is_file():
            return None
        try:
            vectors = json.loads(config_file.read_text())["vectors"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise GalleryError(f"{config_file}: unreadable Qdrant Edge config ({error})") from None
        if GLOBAL_VECTOR not in vectors:
            raise GalleryError(
                f"{self.location} is a Qdrant Edge shard without a {GLOBAL_VECTOR!r} vector "
                f"(it has {sorted(vectors)}): not an OccluReID gallery"
            )
        return int(vectors[GLOBAL_VECTOR]["size"])

    def create(self, vector_size: int) -> None:
        vector = qe.EdgeVectorParams(
            size=vector_size,
            distance=qe.Distance.Cosine,
            datatype=qe.VectorStorageDatatype.Float16,  # why: stream.gallery.records
            memory=CACHED,
        )
        config = qe.EdgeConfig(vectors={GLOBAL_VECTOR: vector}, payload_memory=CACHED)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._shard = self._call("create", lambda: qe.EdgeShard.create(str(self.folder), config))
        for field, kind in PAYLOAD_INDEXES.items():
            operation = qe.UpdateOperation.create_field_index(field, EDGE_INDEX_SCHEMAS[kind])
            self._call("index", lambda op=operation: self.shard.update(op))
        self.flush()

    def upsert(self, points: list[tuple[str, np.ndarray, dict]]) -> None:
        edge_points = [
            qe.Point(pid, {GLOBAL_VECTOR: vector.tolist()}, payload)
            for pid, vector, payload in points
        ]
        self._call(
            "write", lambda: self.shard.update(qe.UpdateOperation.upsert_points(edge_points))
        )

    def flush(self) -> None:
        self._call("flush", self.shard.flush)

    def search(
        self, vector: np.ndarray, limit: int, where: CandidateFilter, hnsw_ef: int | None
    ) -> list[StoredPoint]:
        """Nearest ids first, then payloads and vectors by id: on a reopened shard, Edge 0.9
        answered a 20-hit filtered query with payloads in 4.5–9.5 ms p50 and the same two steps
        in 1.7–2.9 ms (2k–5k tracklets, measured side by side). Filters are planned (above)."""
        fetch = limit * self.prefilter_factor
        if (
            where.build(EDGE_FILTER_MODELS) is None
            or fetch <= limit
            or fetch * self._pass_fraction(where) < limit
        ):
            return self._points(self._nearest(vector, limit, where, hnsw_ef))
        hits = self._nearest(vector, fetch, CandidateFilter(), hnsw_ef)
        ids = [hit.id for hit in hits]
        fields = self._call("read", lambda: self.shard.retrieve(ids, FILTERED_FIELDS, False))
        payloads = {str(r.id): r.payload for r in fields}
        passing = [hit for hit in hits if where.admits(payloads[str(hit.id)])][:limit]
        if len(passing) == limit or len(hits) < fetch:
            return self._points(passing)
        return self._points(self._nearest(vector, limit, where, hnsw_ef))

    def _pass_fraction(self, where: CandidateFilter) -> float:
        """Edge's estimate of the share of points passing ``where`` (from its payload indexes,
        ~0.05 ms at 100k; it can overestimate a time window ~2×). A filter expected to leave
        fewer than the limit among the unfiltered candidates goes to Edge's filtered search
        directly: for a selective filter that search is quick (it walks the index)."""
        estimate = qe.CountRequest(exact=False, filter=where.build(EDGE_FILTER_MODELS))
        passing = self._call("count", lambda: self.shard.count(estimate))
        # not self.count(): an exact count walks the points (~2 ms at 20k), the estimate does not
        total = self._call("count", lambda: self.shard.count(qe.CountRequest(exact=False)))
        return passing / max(total, 1)

    def _nearest(
        self, vector: np.ndarray, limit: int, where: CandidateFilter, hnsw_ef: int | None
    ) -> list[qe.ScoredPoint]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector.tolist(), using=GLOBAL_VECTOR),
            filter=where.build(EDGE_FILTER_MODELS),
            with_vector=False,
            with_payload=False,
            params=qe.SearchParams(exact=hnsw_ef is None, hnsw_ef=hnsw_ef),
        )
        return self._call("search", lambda: self.shard.query(request))

    def _points(self, hits: list[qe.ScoredPoint]) -> list[StoredPoint]:
        """The hits with their payloads and global vectors, in the hits' order."""
        ids = [hit.id for hit in hits]
        records = self._call("read", lambda: self.shard.retrieve(ids, True, [GLOBAL_VECTOR]))
        by_id = {str(r.id): r for r in records}
        return [StoredPoint.of(by_id[str(hit.id)], hit.score) for hit in hits]

    def retrieve(self, ids: list[str]) -> list[StoredPoint]:
        records = self._call("read", lambda: self.shard.retrieve(ids, True, [GLOBAL_VECTOR]))
        return [StoredPoint.of(r) for r in records]

    def scroll(self, where: CandidateFilter) -> list[StoredPoint]:
        points, offset = [], None
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=SCROLL_PAGE,
                filter=where.build(EDGE_FILTER_MODELS),
                with_payload=True,
                with_vector=[GLOBAL_VECTOR],
            )
            page, offset = self._call("read", lambda r=request: self.shard.scroll(r))
            points.extend(StoredPoint.of(r) for r in page)
            if offset is None:
                return points

    def max_global_id(self) -> int:
        request = qe.ScrollRequest(
            limit=1,
            order_by=qe.OrderBy("global_id", direction=qe.Direction.Desc),
            with_payload=qe.PayloadSelector.Include(["global_id"]),
            with_vector=False,
        )
        records, _ = self._call("read", lambda: self.shard.scroll(request))
        return int(records[0].payload["global_id"]) if records else 0

    def count(self) -> int:
        return self._call("count", lambda: self.shard.count(qe.CountRequest(exact=True)))

    def build_index(self) -> None:
        """Merge the segments and build their HNSW index (`stream index`): 10 s at 100k, 33 min
        at 1M tracklets with their payloads on 2 cores (bench/gallery_speed.py --index), so
        never in a serving worker."""
        self._call("index", self.shard.optimize)
        self.flush()

    def indexed_share(self) -> float:
        """The share of the stored vectors an HNSW index covers."""
        info = self._call("read", self.shard.info)
        return info.indexed_vectors_count / max(info.points_count, 1)

    def close(self) -> None:
        if self._shard is not None:
            self.flush()
            self._shard.close()
            self._shard = None
