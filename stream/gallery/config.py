"""`GalleryConfig`: where the identity gallery lives and how tracklets are matched (SPEC §4)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reid_core.config import ConfigPath

IN_PROCESS_SERVER = ":memory:"


class GalleryConfig(BaseModel):
    """One gallery: an embedded Qdrant Edge shard (``path``) or a Qdrant server (``url``).

    ``url=":memory:"`` runs qdrant-client's in-process stand-in, which speaks the server's API:
    tests use it to exercise the server backend without a server.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: ConfigPath | None = Field(None, description="Edge shard folder (embedded default)")
    url: str | None = Field(None, description="Qdrant server URL, or ':memory:'")
    api_key: str | None = Field(
        None, description="Qdrant server API key (default: the QDRANT_API_KEY environment variable)"
    )
    collection: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "tracklets"
    vector_size: Annotated[int, Field(gt=0, description="d of the model's features")] = 512
    num_parts: Annotated[int, Field(gt=0, description="K of the model's part features")] = 10
    top_n: Annotated[int, Field(gt=0, description="candidates re-ranked by part distance")] = 20
    threshold: Annotated[
        float,
        Field(
            gt=0.0,
            description="accept a match at occlusion-aware distance ≤ threshold; calibrate it "
            "for each model on its validation distances (the scale grows with lam)",
        ),
    ] = 0.6
    lam: Annotated[float, Field(ge=0.0, description="λ of SPEC §2.7, the part-term weight")] = 1.0
    time_window_s: Annotated[
        float | None,
        Field(
            gt=0.0,
            description="match only tracklets last seen at most this long before the new "
            "one's first sighting; None matches across all time",
        ),
    ] = None
    relink: bool = Field(
        True,
        description="a tracklet that is still the only one of its identity tries again at each "
        "re-match to join another camera's identity (its id may change once): its first match "
        "came before that camera's tracklet of the same person was stored. On 8 rendered "
        "3-camera scenes it raised the mean cross-camera IDF1 from 0.846 to 0.885, and with "
        "the crop fallback from 0.846 to 0.908 (bench/README.md 'Cross-camera association')",
    )
    relink_reentry: bool = Field(
        False,
        description="relink may also join this camera's tracklets that ended before this one "
        "began (a track the tracker broke). Without reentry_max_speed it joined a person "
        "entering the view to one who had just left it on the other side (TUD-Campus, "
        "ground-truth boxes: global-id IDF1 0.966 -> 0.901; with the speed check 0.966); off "
        "by default as it changed nothing on rendered scenes",
    )
    reentry_max_speed: Annotated[float, Field(gt=0.0)] | None = Field(
        2.0,
        description="body heights per second: this camera's ended tracklet is a re-entry "
        "candidate only if a person could have walked from where it was last seen to where the "
        "new one was first seen in the time between: centre distance in box heights (the "
        "taller of the two boxes) at most reentry_slack + this x the gap. 2 heights/s is a "
        "run (walking is ~0.8). It keeps a person entering the view on the left from joining "
        "a look-alike who has just left it on the right (TUD-Campus: 2.1-2.4 heights apart "
        "within 0.5 s). None: no check; tracklets without boxes are never checked",
    )
    reentry_slack: Annotated[float, Field(ge=0.0)] = Field(
        0.5,
        description="heights of box jitter (occlusion, detector noise) reentry_max_speed allows "
        "at zero gap",
    )
    exact: bool = Field(
        True,
        description="exact (brute-force) search. False searches the HNSW index: a Qdrant "
        "server builds it past its indexing threshold, an Edge shard when `stream index` "
        "builds it (never while a worker serves it). On the shipped model's embeddings "
        "(bench/gallery_ann.py) recall@20 was 0.983-0.990 at 100k tracklets and 1.00 at 1M, "
        "where the exact search costs 322 ms p95 and HNSW 3-13 ms: keep True up to ~100k",
    )
    hnsw_ef: Annotated[int, Field(gt=0, description="HNSW search breadth when exact is False")] = (
        128
    )
    edge_prefilter_factor: int = Field(
        4,
        ge=1,
        description="Edge only: a filtered search first takes the unfiltered top "
        "(top_n x this) and checks the filter on those, falling back to Edge's filtered search "
        "when fewer than top_n pass (same answer; the match p95 at 100k fell from 60 to 29 ms); 1 "
        "always uses the latter",
    )
    id_offset: int = Field(
        0, ge=0, description="new global ids are ≡ id_offset (mod id_stride): set per worker"
    )
    id_stride: int = Field(
        1,
        ge=1,
        description="workers sharing one gallery server each take one residue class of ids, so "
        "two never give the same new id to different people",
    )
    durability: Literal["flush", "wal"] = Field(
        "wal",
        description="when an embedded gallery acknowledges a write: 'wal' once the Edge "
        "write-ahead log holds it (survives the process being killed; a power cut loses what "
        "came after the last flush: see flush_interval_s) — as a Qdrant server acknowledges, "
        "'flush' after the store is flushed to disk (survives losing the machine, but costs an "
        "fsync per match_batch: 20-250 ms on a shared disk, the largest part of the worker's "
        "crop → assignment latency under load, bench/README.md 'Worker latency under load')",
    )
    flush_interval_s: Annotated[float, Field(gt=0.0)] | None = Field(
        5.0,
        description="with durability 'wal': flush to disk at the first write at least this "
        "long after the last flush (and at close), so a power cut loses at most that much of "
        "a busy gallery's writes; None: only at close",
    )

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if (self.path is None) == (self.url is None):
            raise ValueError(
                "gallery config needs exactly one of 'path' (embedded Qdrant Edge shard) or "
                f"'url' (Qdrant server); got path={self.path!r}, url={self.url!r}"
            )
        if self.id_offset >= self.id_stride:
            raise ValueError(
                f"id_offset {self.id_offset} must lie in [0, id_stride={self.id_stride})"
            )
        return self

    @property
    def location(self) -> str:
        """Where the collection lives, for messages."""
        if self.path is not None:
            return str(self.path / self.collection)
        return f"{self.url} collection {self.collection!r}"
