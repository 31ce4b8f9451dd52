"""Product 1: a re-ID crop set in Market-1501 layout with an Occluded-Duke-style query split.

SPEC §6 / §8 (`trainer synth reid`). Layout: `bounding_box_train/`, `bounding_box_test/`,
`query/`, `occluded_query/`, names `{pid:04d}_c{cam}s{seq}_{frame:06d}_{idx:02d}.jpg`, pid 0000
distractors and pid -1 junk in the gallery, `manifest.jsonl` with what the renderer knows about
each crop (joints, occlusion ratio, hidden parts, view, the path of its part label map) and
`meta.json`. Each crop's part label map (SPEC §6: the person's body-part label per visible
pixel, 0 elsewhere; labels named by meta.json's `body_part_names`) is a lossless 8-bit grey PNG
at `part_maps/<split folder>/<crop stem>.png`, the same size as the crop.

The whole set is *planned* first in the parent process (identities, cameras, splits, names,
occlusion targets; every identity from its own generator seeded by (seed, pid)), then crops are
rendered in worker processes, each crop from its own seed: the files do not depend on the
number of workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from trainer.synth.cameras import encode_jpeg
from trainer.synth.crop_render import (
    DISTRACTOR,
    IDENTITY,
    JUNK,
    OCCLUDED_QUERY_MIN,
    RENDER,
    CropCamera,
    CropSpec,
    CropWorld,
    crop_camera,
    render_crop,
)
from trainer.synth.figure import BODY_PART_NAMES, JOINT_NAMES, PART_NAMES
from trainer.synth.occluders import OBJECT_KINDS
from trainer.synth.output import GENERATOR_VERSION, JOINT_FORMAT, prepare_output
from trainer.synth.parallel import run_in_processes
from trainer.synth.photos import photo_library
from trainer.synth.progress import progress_bar
from trainer.synth.seeding import derive_seed, generator

SPLIT_DIRS = {
    "train": "bounding_box_train",
    "gallery": "bounding_box_test",
    "query": "query",
    "occluded_query": "occluded_query",
}
PART_MAP_DIR = "part_maps"
_FRAMES_PER_SEQUENCE = 1_000_000  # Market's six frame digits: 9 M frames a camera


@dataclass(frozen=True)
class ReidSetConfig:
    """What to render; validated so a bad value names itself."""

    identities: int
    cameras: int
    seed: int = 0
    images_per_camera: tuple[int, int] = (4, 8)
    occluded_fraction: float = 0.3
    size: tuple[int, int] = (128, 256)  # width, height
    distractor_fraction: float = 0.1
    junk_fraction: float = 0.03
    test_identities: int | None = None  # None: half (Market); a big training set keeps fewer
    photo_textures: float = 0.0  # world v2: each garment's chance of a photo texture
    photo_backgrounds: float = 0.0  # world v2: each crop's chance of a photo background
    lookalikes: float = 0.0  # world v2: each identity's chance of dressing like an earlier one

    @property
    def train_identities(self) -> int:
        """Identities 1..this are train, the rest test."""
        test = self.identities // 2 if self.test_identities is None else self.test_identities
        return self.identities - test

    def world(self) -> CropWorld:
        return CropWorld(
            self.seed,
            self.size,
            self.photo_textures,
            self.photo_backgrounds,
            self.lookalikes,
            self.train_identities,
        )

    def __post_init__(self) -> None:
        if self.identities < 2:
            raise ValueError(
                f"identities must be >= 2 (train and test halves), got {self.identities}"
            )
        if not 2 <= self.cameras <= 9:
            raise ValueError(
                f"cameras must be in 2..9 (Market names use one digit), got {self.cameras}"
            )
        if self.test_identities is not None and not 1 <= self.test_identities < self.identities:
            raise ValueError(
                f"test_identities must be in [1, identities), got {self.test_identities} of "
                f"{self.identities}"
            )
        lo, hi = self.images_per_camera
        if not 2 <= lo <= hi:
            raise ValueError(
                f"images_per_camera must be MIN-MAX with 2 <= MIN <= MAX (a query and at least one "
                f"gallery image per camera), got {lo}-{hi}"
            )
        fractions = (
            "occluded_fraction",
            "distractor_fraction",
            "junk_fraction",
            "photo_textures",
            "photo_backgrounds",
            "lookalikes",
        )
        for name in fractions:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        w, h = self.size
        if w < 32 or h < 64:
            raise ValueError(f"size must be at least 32x64 (WxH), got {w}x{h}")


# ------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Timeline:
    """Per-camera frame counters: every crop gets a unique (camera, sequence, frame)."""

    counters: dict[int, int] = field(default_factory=dict)

    def advance(self, camid: int, gap: int) -> tuple[int, int]:
        frame = self.counters.get(camid, 0) + gap
        self.counters[camid] = frame
        seq, frame_in_seq = divmod(frame, _FRAMES_PER_SEQUENCE)
        if seq + 1 > 9:
            raise ValueError(
                f"camera {camid} has too many crops for Market names (sequence > 9); "
                "use more cameras or fewer identities"
            )
        return seq + 1, frame_in_seq


def crop_name(pid: int, camid: int, seq: int, frame: int, idx: int) -> str:
    """Market-1501 file name; junk keeps Market's `-1` prefix."""
    prefix = "-1" if pid == -1 else f"{pid:04d}"
    return f"{prefix}_c{camid}s{seq}_{frame:06d}_{idx:02d}.jpg"


def part_map_path(crop_path: str) -> str:
    """Where a crop's part label map goes, relative to the set's root (as the manifest says)."""
    crop = Path(crop_path)
    return (Path(PART_MAP_DIR) / crop.parent / f"{crop.stem}.png").as_posix()


def encode_part_map(part_map: np.ndarray) -> bytes:
    """Lossless 8-bit grey PNG bytes of a part label map."""
    ok, data = cv2.imencode(".png", part_map)
    if not ok:
        raise RuntimeError(f"OpenCV could not PNG-encode a part map of shape {part_map.shape}")
    return data.tobytes()


def _view_for_visit(rng: np.random.Generator, camera: CropCamera) -> float:
    kind = int(rng.choice(3, p=np.asarray(camera.view_weights)))
    if kind == 0:
        return float(rng.normal(0.0, 20.0))
    if kind == 1:
        return float(180.0 + rng.normal(0.0, 20.0))
    return float((90.0 if rng.random() < 0.5 else -90.0) + rng.normal(0.0, 18.0))


def _occlusion_plan(rng: np.random.Generator, role: str, cfg: ReidSetConfig) -> tuple[str, float]:
    """Planned occluder kind and target ratio for a crop of this role.

    Occluded queries hide 33-65 % (Occluded-Duke keeps >= 30 %); queries are holistic but for
    15 % light (5-15 %) occlusions; junk is mostly cut off by the crop border; train and gallery
    crops are occluded with probability `occluded_fraction`, by an object, a person or the
    border, up to 60 % in train and 30 % in the (lightly occluded) gallery.
    """
    if role == "occluded_query":
        return ("object" if rng.random() < 0.7 else "person"), float(rng.uniform(0.33, 0.65))
    if role == "junk":
        return "border", float(rng.uniform(0.6, 0.9))
    if role == "query":
        if rng.random() < 0.15:
            return ("object" if rng.random() < 0.6 else "person"), float(rng.uniform(0.05, 0.15))
        return "none", 0.0
    if rng.random() >= cfg.occluded_fraction:
        return "none", 0.0
    kind = str(rng.choice(["object", "person", "border"], p=[0.6, 0.25, 0.15]))
    upper = 0.6 if role == "train" else 0.3
    return kind, float(rng.uniform(0.08, upper))


@dataclass(frozen=True)
class _Visit:
    """One person's passage through one camera: its crops share the view and the scale."""

    pid: int
    person: tuple[int, int]
    camid: int
    view: float
    stature: float


class _Planner:
    """Collects crop specs, numbering frames on each camera's timeline."""

    def __init__(self, cfg: ReidSetConfig) -> None:
        self.cfg = cfg
        self.timeline = _Timeline()
        self.specs: list[CropSpec] = []

    def add(self, rng: np.random.Generator, role: str, visit: _Visit, gap: int) -> None:
        seq, frame = self.timeline.advance(visit.camid, gap)
        split = "gallery" if role == "junk" else role
        occluder, target = _occlusion_plan(rng, role, self.cfg)
        walking = rng.random() < 0.85
        name = crop_name(visit.pid, visit.camid, seq, frame, int(rng.integers(1, 6)))
        render_seed = derive_seed(self.cfg.seed, RENDER, *visit.person, visit.camid, seq, frame)
        self.specs.append(
            CropSpec(
                path=f"{SPLIT_DIRS[split]}/{name}",
                split=split,
                pid=visit.pid,
                camid=visit.camid,
                person=visit.person,
                view_angle=float(visit.view + rng.normal(0.0, 10.0)),
                phase=float(rng.uniform(0.0, 2 * np.pi)),
                gait=1.0 if walking else float(rng.uniform(0.0, 0.5)),
                stature=float(np.clip(visit.stature + rng.normal(0.0, 0.02), 0.7, 0.93)),
                occluder=occluder,
                target_occlusion=target,
                render_seed=render_seed,
            )
        )


def plan_crops(cfg: ReidSetConfig) -> list[CropSpec]:
    """Every crop of the set, in a fixed order, with Market-like statistics.

    Identities 1..`train_identities` (ceil(N/2) by default) are train, the rest test. Each visits 2..C cameras (about 3.8 of 6,
    like Market) with `images_per_camera` crops per camera; a test identity's first crop in
    each camera is its query, the rest gallery, plus one or two occluded queries. Distractors
    (pid 0) and junk (pid -1) are added to the gallery as fractions of its size.
    """
    planner = _Planner(cfg)
    n_train = cfg.train_identities
    lo, hi = cfg.images_per_camera
    for pid in range(1, cfg.identities + 1):
        rng = generator(cfg.seed, IDENTITY, pid)
        n_cams = 2 + int(rng.binomial(cfg.cameras - 2, 0.45))
        cams = sorted(int(c) + 1 for c in rng.choice(cfg.cameras, n_cams, replace=False))
        visits = []
        for camid in cams:
            view = _view_for_visit(rng, crop_camera(cfg.seed, camid))
            visit = _Visit(pid, (IDENTITY, pid), camid, view, float(rng.uniform(0.8, 0.9)))
            visits.append(visit)
            count = int(rng.integers(lo, hi + 1))
            roles = ["train"] * count if pid <= n_train else ["query"] + ["gallery"] * (count - 1)
            for k, role in enumerate(roles):
                gap = int(rng.integers(20, 400)) if k == 0 else int(rng.integers(3, 30))
                planner.add(rng, role, visit, gap)
        if pid > n_train:
            for _ in range(1 + int(rng.random() < 0.35)):
                visit = visits[int(rng.integers(len(visits)))]
                planner.add(rng, "occluded_query", visit, int(rng.integers(3, 30)))
    n_gallery = sum(spec.split == "gallery" for spec in planner.specs)
    for namespace, role, pid, fraction in (
        (DISTRACTOR, "gallery", 0, cfg.distractor_fraction),
        (JUNK, "junk", -1, cfg.junk_fraction),
    ):
        rng = generator(cfg.seed, namespace)
        for number in range(round(fraction * n_gallery)):
            camid = int(rng.integers(1, cfg.cameras + 1))
            view = _view_for_visit(rng, crop_camera(cfg.seed, camid))
            visit = _Visit(pid, (namespace, number), camid, view, float(rng.uniform(0.78, 0.9)))
            planner.add(rng, role, visit, int(rng.integers(20, 200)))
    return planner.specs


# ------------------------------------------------------------------------------------------
# Writing


_WORLD: CropWorld | None = None


def _init_worker(cfg: ReidSetConfig) -> None:
    global _WORLD
    cv2.setNumThreads(1)
    _WORLD = cfg.world()


def _render_group(job: tuple[Path, Sequence[tuple[int, CropSpec]]]) -> list[tuple[int, dict]]:
    root, numbered = job
    assert _WORLD is not None, "worker not initialised"
    return [(index, _render_and_write(_WORLD, root, spec)) for index, spec in numbered]


def _render_and_write(world: CropWorld, root: Path, spec: CropSpec) -> dict:
    render = render_crop(spec, world)
    quality = crop_camera(world.seed, spec.camid).look.jpeg_quality
    (root / spec.path).write_bytes(encode_jpeg(render.image, quality))
    record = render.record(spec)
    record["part_map"] = part_map_path(spec.path)
    (root / record["part_map"]).write_bytes(encode_part_map(render.part_map))
    return record


def _groups(specs: list[CropSpec], min_group: int = 12) -> list[list[tuple[int, CropSpec]]]:
    """Numbered crops, one person's together (its appearance is then built once per worker)."""
    by_person: dict[tuple[int, int], list[tuple[int, CropSpec]]] = {}
    for index, spec in enumerate(specs):
        by_person.setdefault(spec.person, []).append((index, spec))
    groups: list[list[tuple[int, CropSpec]]] = [[]]
    for members in by_person.values():
        if len(groups[-1]) >= min_group:
            groups.append([])
        groups[-1].extend(members)
    return groups


def write_reid_set(
    cfg: ReidSetConfig,
    out: Path,
    workers: int | None = None,
    show_progress: bool = True,
    args: dict | None = None,
) -> dict:
    """Render the whole set into `out`; returns the metadata also written to `meta.json`."""
    out = Path(out)
    prepare_output(out)
    for folder in SPLIT_DIRS.values():
        (out / folder).mkdir()
        (out / PART_MAP_DIR / folder).mkdir(parents=True)
    specs = plan_crops(cfg)
    records: list[dict | None] = [None] * len(specs)
    workers = max(1, min(workers or os.cpu_count() or 1, len(specs)))
    with progress_bar(show_progress) as progress:
        task = progress.add_task("rendering crops", total=len(specs))
        if workers == 1:
            world = cfg.world()
            for index, spec in enumerate(specs):
                records[index] = _render_and_write(world, out, spec)
                progress.advance(task)
        else:

            def collect(results: list[tuple[int, dict]]) -> None:
                for index, record in results:
                    records[index] = record
                progress.advance(task, len(results))

            jobs = [(out, group) for group in _groups(specs)]
            run_in_processes(_render_group, jobs, workers, _init_worker, (cfg,), collect)
    with open(out / "manifest.jsonl", "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    meta = _meta(cfg, specs, args)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _photo_credits(cfg: ReidSetConfig) -> list[dict[str, str]]:
    """The shipped photos this set used, with their licences (none for a world-v1 set)."""
    if cfg.photo_textures <= 0.0 and cfg.photo_backgrounds <= 0.0:
        return []
    return [
        {"file": f"{photo.package}/{photo.path}", "licence": photo.licence}
        for photo in photo_library().sources
    ]


def _meta(cfg: ReidSetConfig, specs: list[CropSpec], args: dict | None) -> dict:
    n_train = cfg.train_identities
    counts = {split: sum(s.split == split for s in specs) for split in SPLIT_DIRS}
    cameras = []
    for camid in range(1, cfg.cameras + 1):
        camera = crop_camera(cfg.seed, camid)
        cameras.append(
            {
                "camid": camid,
                "view_weights": dict(
                    zip(("front", "back", "side"), camera.view_weights, strict=True)
                ),
                "object_weights": dict(zip(OBJECT_KINDS, camera.object_weights, strict=True)),
                "look": asdict(camera.look),
            }
        )
    return {
        "generator": GENERATOR_VERSION,
        "seed": cfg.seed,
        "joint_names": list(JOINT_NAMES),
        "part_names": list(PART_NAMES),
        "body_part_names": list(BODY_PART_NAMES),
        "joint_format": JOINT_FORMAT,
        "image_size": list(cfg.size),
        "counts": counts,
        "identities": {
            "train": n_train,
            "test": cfg.identities - n_train,
            "distractor_images": sum(s.pid == 0 for s in specs),
            "junk_images": sum(s.pid == -1 for s in specs),
        },
        "occluded_query_min_occlusion": OCCLUDED_QUERY_MIN,
        "cameras": cameras,
        "world": {
            "photo_textures": cfg.photo_textures,
            "photo_backgrounds": cfg.photo_backgrounds,
            "lookalikes": cfg.lookalikes,
            "photos": _photo_credits(cfg),
        },
        "args": args if args is not None else {**asdict(cfg)},
    }
