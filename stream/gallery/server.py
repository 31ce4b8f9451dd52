"""The server backend: a Qdrant server through qdrant-client (SPEC §4).

Writes use ``wait=True``: the server answers once the points are in its write-ahead log, so an
upsert that returned is acknowledged and `flush` has nothing left to do. ``url=":memory:"`` is
qdrant-client's in-process stand-in (same API; payload indexes and search params have no effect
there and it warns so), used by the tests.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from qdrant_client import QdrantClient, models

from stream.gallery.backend import (
    PAYLOAD_INDEXES,
    Backend,
    CandidateFilter,
    GalleryError,
    StoredPoint,
)
from stream.gallery.config import IN_PROCESS_SERVER
from stream.gallery.records import GLOBAL_VECTOR

SERVER_FILTER_MODELS = SimpleNamespace(
    Filter=models.Filter,
    FieldCondition=models.FieldCondition,
    MatchValue=models.MatchValue,
    Range=models.Range,
)
SERVER_INDEX_SCHEMAS = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "float": models.PayloadSchemaType.FLOAT,
    "integer": models.IntegerIndexParams(
        type=models.IntegerIndexType.INTEGER, lookup=True, range=True
    ),
}
SCROLL_PAGE = 1024


class ServerBackend(Backend):
    """The collection ``collection`` on the Qdrant server at ``url``."""

    def __init__(self, url: str, api_key: str | None, collection: str) -> None:
        self.collection = collection
        self.location = f"{url} collection {collection!r}"
        if url == IN_PROCESS_SERVER:
            self.client = QdrantClient(location=IN_PROCESS_SERVER)
        else:
            self.client = QdrantClient(url=url, api_key=api_key)

    def stored_vector_size(self) -> int | None:
        if not self.client.collection_exists(self.collection):
            return None
        vectors = self.client.get_collection(self.collection).config.params.vectors
        if not isinstance(vectors, dict) or GLOBAL_VECTOR not in vectors:
            raise GalleryError(
                f"{self.location} has no named {GLOBAL_VECTOR!r} vector: not an OccluReID gallery"
            )
        return vectors[GLOBAL_VECTOR].size

    def create(self, vector_size: int) -> None:
        self.client.create_collection(
            self.collection,
            vectors_config={
                GLOBAL_VECTOR: models.VectorParams(
                    size=vector_size,
                    distance=models.Distance.COSINE,
                    datatype=models.Datatype.FLOAT16,  # why: stream.gallery.records
                )
            },
        )
        for field, kind in PAYLOAD_INDEXES.items():
            self.client.create_payload_index(
                self.collection, field, SERVER_INDEX_SCHEMAS[kind], wait=True
            )

    def upsert(self, points: list[tuple[str, np.ndarray, dict]]) -> None:
        structs = [
            models.PointStruct(id=pid, vector={GLOBAL_VECTOR: vector.tolist()}, payload=payload)
            for pid, vector, payload in points
        ]
        self.client.upsert(self.collection, points=structs, wait=True)

    def build_index(self) -> None:
        """Nothing to do: a server indexes a collection itself past its indexing threshold."""

    def flush(self) -> None:
        """Nothing to do: ``wait=True`` upserts return once the server's WAL holds them."""

    def search(
        self, vector: np.ndarray, limit: int, where: CandidateFilter, hnsw_ef: int | None
    ) -> list[StoredPoint]:
        response = self.client.query_points(
            self.collection,
            query=vector.tolist(),
            using=GLOBAL_VECTOR,
            query_filter=where.build(SERVER_FILTER_MODELS),
            search_params=models.SearchParams(exact=hnsw_ef is None, hnsw_ef=hnsw_ef),
            limit=limit,
            with_payload=True,
            with_vectors=[GLOBAL_VECTOR],
        )
        return [StoredPoint.of(p, p.score) for p in response.points]

    def retrieve(self, ids: list[str]) -> list[StoredPoint]:
        points = self.client.retrieve(
            self.collection, ids=ids, with_payload=True, with_vectors=[GLOBAL_VECTOR]
        )
        return [StoredPoint.of(p) for p in points]

    def scroll(self, where: CandidateFilter) -> list[StoredPoint]:
        points, offset = [], None
        while True:
            page, offset = self.client.scroll(
                self.collection,
                scroll_filter=where.build(SERVER_FILTER_MODELS),
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=[GLOBAL_VECTOR],
            )
            points.extend(StoredPoint.of(p) for p in page)
            if offset is None:
                return points

    def max_global_id(self) -> int:
        page, _ = self.client.scroll(
            self.collection,
            limit=1,
            order_by=models.OrderBy(key="global_id", direction=models.Direction.DESC),
            with_payload=["global_id"],
            with_vectors=False,
        )
        return int(page[0].payload["global_id"]) if page else 0

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count

    def close(self) -> None:
        self.client.close()
