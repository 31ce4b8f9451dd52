"""`WorkerConfig`: the typed `stream worker --config` file (SPEC §4; example in configs/worker/).

Relative paths in the file (``embedder.model``, ``gallery.path``, ``tracklets.thumbnails``)
are resolved against the file's folder, so a config travels with the model it names; a file
may start with ``_base_: other.yaml`` and state only its differences. Every model is
``extra="forbid"``: a misspelt key is an error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reid_core.config import ConfigPath, read_yaml_with_bases
from reid_core.runtime.embedder import EmbedderConfig
from stream.gallery import GalleryConfig
from stream.security import CurveConfig

ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://")
RELATIVE_PATHS = (("embedder", "model"), ("gallery", "path"), ("tracklets", "thumbnails"))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SocketConfig(StrictModel):
    """A ZeroMQ endpoint and whether this worker binds it (the usual case) or connects to it."""

    endpoint: str
    bind: bool = True

    @field_validator("endpoint")
    @classmethod
    def _known_scheme(cls, endpoint: str) -> str:
        if not endpoint.startswith(ENDPOINT_SCHEMES):
            raise ValueError(
                f"endpoint {endpoint!r} must start with one of {', '.join(ENDPOINT_SCHEMES)} "
                "(e.g. tcp://127.0.0.1:5560 or ipc:///tmp/occlureid-crops)"
            )
        return endpoint


class SocketsConfig(StrictModel):
    """PULL for crops and track ends (from camera stages), PUB for assignments and stats.

    Loopback by default; binding any other address needs ``curve`` (CurveZMQ keys, see
    `stream.security` and docs/deploy.md) or an explicit ``curve.allow_insecure``.
    """

    crops: SocketConfig = SocketConfig(endpoint="tcp://127.0.0.1:5560")
    assignments: SocketConfig = SocketConfig(endpoint="tcp://127.0.0.1:5561")
    receive_hwm: Annotated[int, Field(ge=1, description="crops queued in ZeroMQ")] = 1000
    linger_ms: Annotated[int, Field(ge=0, description="time to send what is left at exit")] = 2000
    curve: CurveConfig = CurveConfig()


class BatchingConfig(StrictModel):
    """Dynamic batching: embed when a full batch waits or the oldest crop waited
    ``max_wait_ms``, whichever comes first.

    A full batch is ``max_batch`` crops, or fewer under load: with ``max_batch_ms`` set, as
    many as the embedder is expected to finish in that long (its measured milliseconds per
    crop, a running mean), so no crop waits behind a long batch — on a CPU shared with camera
    stages a crop costs several times what it costs alone, and a batch of 32 then held each of
    its crops back by 170 ms; a GPU's per-crop cost is small enough that batches stay full.
    """

    max_batch: Annotated[int, Field(ge=1)] = 32
    max_wait_ms: Annotated[float, Field(ge=0.0)] = 20.0
    max_batch_ms: Annotated[float, Field(gt=0.0)] | None = 30.0


class TrackletConfig(StrictModel):
    """When a tracklet is matched, and how its crops are pooled (see `stream.worker`).

    min_crops: embedded crops before the first match (a track end matches it sooner).
    rematch_every: after the first match, re-match (refresh the gallery's features; the global
    id stays, unless the tracklet is still alone in its identity: `GalleryConfig.relink`) every
    this many new crops; 0 only at the track's end.
    idle_timeout_s: a tracklet with no crop for this long (worker clock) is finished as if its
    track had ended, so a camera stage that died does not leave state behind.
    outlier_distance: a crop whose global feature is further than this cosine distance from
    the tracklet's running mean gets its weight scaled by (outlier_distance / distance)².
    thumbnails: folder for each matched tracklet's best crop (JPEG), stored in the gallery for
    `stream search`; None keeps none.
    max_open: tracklets pooled at once; past it the one seen longest ago is finished early
    (matched with what it has), so a flood of short tracks cannot grow the worker's memory.
    """

    min_crops: Annotated[int, Field(ge=1)] = 4
    rematch_every: Annotated[int, Field(ge=0)] = 16
    idle_timeout_s: Annotated[float, Field(gt=0.0)] = 60.0
    outlier_distance: Annotated[float, Field(gt=0.0, le=2.0)] = 0.3
    thumbnails: ConfigPath | None = None
    max_open: Annotated[int, Field(ge=1)] = 4096


class WorkerConfig(StrictModel):
    """One feature worker. Several workers share a crop stream by tracklet (`stream.routing`):
    give each its ``worker_index`` in [0, num_workers) and its own endpoints; they must share
    a gallery server (``gallery.url``), and each hands out new global ids ≡ worker_index
    (mod num_workers) so two workers never give the same id to different people."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "worker-0"  # logs, stats
    worker_index: Annotated[int, Field(ge=0)] = 0
    num_workers: Annotated[int, Field(ge=1)] = 1
    sockets: SocketsConfig = SocketsConfig()
    embedder: EmbedderConfig = EmbedderConfig()  # no model named: the shipped default model
    batching: BatchingConfig = BatchingConfig()
    tracklets: TrackletConfig = TrackletConfig()
    gallery: GalleryConfig
    stats_interval_s: Annotated[float, Field(gt=0.0)] = 5.0

    @model_validator(mode="after")
    def _workers_can_share(self) -> Self:
        if self.worker_index >= self.num_workers:
            raise ValueError(
                f"worker_index {self.worker_index} must be < num_workers {self.num_workers}"
            )
        if self.num_workers > 1 and self.gallery.path is not None:
            raise ValueError(
                f"num_workers {self.num_workers} needs a shared gallery server (gallery.url): a "
                "Qdrant Edge folder (gallery.path) opens in one process only"
            )
        return self


def _describe(source: str, error: ValidationError, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        field = prefix + ".".join(str(part) for part in item["loc"]) or "<root>"
        got = "" if item["type"] == "missing" else f" (got {item['input']!r:.80})"
        lines.append(f"  {field}: {item['msg']}{got}")
    return f"{source}: invalid worker config:\n" + "\n".join(lines)


def parse_worker_config(
    data: dict[str, Any], source: str = "<dict>", field_prefix: str = ""
) -> WorkerConfig:
    """Validate a config mapping; errors name ``source`` and every bad field (after
    ``field_prefix``, e.g. ``worker.`` for the section of a cams.yaml)."""
    try:
        return WorkerConfig.model_validate(data)
    except ValidationError as error:
        raise ValueError(_describe(source, error, field_prefix)) from None


def load_worker_config(path: str | Path) -> WorkerConfig:
    """Read a worker config YAML (``_base_: other.yaml`` merges it over another one)."""
    data = read_yaml_with_bases(Path(path), "worker config", relative_paths=RELATIVE_PATHS)
    config = parse_worker_config(data, str(path))
    curve = config.sockets.curve.resolve(Path(path).resolve().parent)
    return config.model_copy(update={"sockets": config.sockets.model_copy(update={"curve": curve})})
