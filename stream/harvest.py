"""`stream harvest`: a run's tracklets as a training set of your own people (no labels needed).

A tracklet is a pseudo-identity; tracklets of one person share one. Which ones share is decided
``offline`` (the default) or as the run decided ``online``:
- offline: every kept tracklet's crops are embedded with the run's own model; a tracklet whose
  crops show two people (the tracker swapped them, a detector's box held both) is split by
  clustering its crops the same way; the parts are pooled as the worker pools them, then joined
  by average-linkage clustering of the occlusion-aware distance up to ``link_fraction`` × the
  run's match threshold, never joining two tracklets seen by one camera at the same time. It sees whole tracklets at once, where the worker decided on each
  as it came, on its first crops, against whatever the gallery held then.
- online: the run's final assignments; a link within ``link_fraction`` × the threshold, or the
  tracklet that founded the identity, joins it.
Tracklets linked with less confidence online are left out (``uncertain: drop``: a doubtful
link would teach the model that two people are one, and a person split into two classes
teaches it that one person is two) or kept alone (``own``). Crops that would teach the wrong
thing are filtered: small, cut by the image border, of an implausible shape (a detector's box
around two people), or covered by another person's box.

The crops are re-read from the run's camera sources (file sources: a live stream cannot be
read twice) and written as a folder data set (`trainer.data.folder`):
``OUT/<pseudo-identity>/<camera>/<camera>_t<track>_f<frame>.jpg``, with ``harvest.json``
(settings, counts, and with ``--gt`` the purity and cross-camera links against ground truth)
and ``harvest.jsonl`` (one line per crop). Fine-tune on it with ``trainer train --config
configs/train/finetune_harvest.yaml --init MODEL --data-root OUT``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from stream.mtmc import (
    EvalError,
    Predictions,
    read_assignment_records,
    read_events,
    run_cameras,
)

UNCERTAIN = ("drop", "own")
LINKING = ("offline", "online")


@dataclass(frozen=True)
class HarvestConfig:
    """What makes a crop and a link good enough to learn from."""

    every: int = 2  # take every n-th frame a tracklet was seen in
    max_crops: int = 24  # per tracklet, spread evenly over its kept frames
    min_crops: int = 4  # a tracklet with fewer good crops is left out
    min_height: int = 48  # px
    min_aspect: float = 1.6  # box height / width: wider boxes hold two people or a part
    max_aspect: float = 5.0
    border: int = 2  # px: a box this close to the image edge is a cut person
    max_covered: float = 0.25  # share of a box covered by other boxes of the same frame
    link_fraction: float = 0.85  # × the run's match threshold: a confident link
    max_link_distance: float | None = None  # overrides link_fraction × threshold
    uncertain: Literal["drop", "own"] = "drop"
    linking: Literal["offline", "online"] = "offline"

    def __post_init__(self) -> None:
        if self.every < 1 or self.max_crops < 1 or self.min_crops < 1:
            raise ValueError("harvest: every, max_crops and min_crops must be ≥ 1")
        if self.min_crops > self.max_crops:
            raise ValueError(f"harvest: min_crops {self.min_crops} > max_crops {self.max_crops}")
        if not 0 < self.min_aspect < self.max_aspect:
            raise ValueError("harvest: need 0 < min_aspect < max_aspect")
        if self.uncertain not in UNCERTAIN:
            raise ValueError(f"harvest: uncertain must be one of {UNCERTAIN}")
        if self.linking not in LINKING:
            raise ValueError(f"harvest: linking must be one of {LINKING}")


@dataclass
class Tracklet:
    camera: str
    track: int
    frames: list[int] = field(default_factory=list)  # 0-based source frames, kept boxes only
    boxes: list[np.ndarray] = field(default_factory=list)
    global_id: int | None = None
    link_distance: float | None = None  # of the final assignment; None: it founded its id
    seen: int = 0  # boxes in the run, before filtering
    first_frame: int = -1  # the whole tracklet's span, filtered boxes too
    last_frame: int = -1
    crops: list[np.ndarray] = field(default_factory=list)  # BGR, for `frames` in order


class HarvestError(ValueError):
    """A run that cannot be harvested; the message names the file."""


def covered_share(boxes: np.ndarray) -> np.ndarray:
    """For each box of one frame, the largest share of its area that another box covers."""
    if len(boxes) < 2:
        return np.zeros(len(boxes))
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 1e-6, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 1e-6, None
    )
    share = inter / area[:, None]
    np.fill_diagonal(share, 0.0)
    return share.max(1)


def good_boxes(boxes: np.ndarray, image_size: tuple[int, int], config: HarvestConfig) -> np.ndarray:
    """Which boxes of one frame ([N, 4] xyxy) make good training crops."""
    width, height = image_size
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    aspect = h / np.clip(w, 1e-6, None)
    inside = (
        (boxes[:, 0] >= config.border)
        & (boxes[:, 1] >= config.border)
        & (boxes[:, 2] <= width - config.border)
        & (boxes[:, 3] <= height - config.border)
    )
    return (
        (h >= config.min_height)
        & (aspect >= config.min_aspect)
        & (aspect <= config.max_aspect)
        & inside
        & (covered_share(boxes) <= config.max_covered)
    )


def read_assignments(path: Path) -> dict[tuple[str, int], tuple[int, float | None]]:
    """Per (camera, track): its final global id and that link's distance (None when the
    tracklet founded the identity: the first tracklet to be given it, as new)."""
    final: dict[tuple[str, int], tuple[int, float | None]] = {}
    founders: dict[int, tuple[str, int]] = {}
    try:
        for record in read_assignment_records(path):
            key = (record.camera, record.track)
            if record.is_new:
                founders.setdefault(record.global_id, key)
            founded = founders.get(record.global_id) == key
            final[key] = (record.global_id, None if founded else record.score)
    except EvalError as error:
        raise HarvestError(str(error)) from None
    return final


def run_match_threshold(run: Path) -> float | None:
    """The gallery threshold the run's workers matched with (summary.json's worker stats)."""
    path = run / "summary.json"
    if not path.is_file():
        return None
    try:
        workers = json.loads(path.read_text()).get("workers") or {}
    except json.JSONDecodeError as error:
        raise HarvestError(f"{path}: not JSON: {error}") from None
    values = {w.get("match_threshold") for w in workers.values() if isinstance(w, dict)}
    values.discard(None)
    return float(min(values)) if values else None


def frame_sizes(cameras: dict[str, Any]) -> dict[str, tuple[int, int]]:
    from stream.sources import open_recorded_source, reread_reason

    sizes = {}
    for name, camera in cameras.items():
        reason = reread_reason(camera)
        if reason is not None:
            raise HarvestError(
                f"camera {name}: {reason}; record it to a file and run on the file to harvest"
            )
        source = open_recorded_source(camera)
        sizes[name] = tuple(source.size)
        source.close()
    return sizes


def collect_tracklets(
    predictions: dict[str, Predictions],
    assignments: dict[tuple[str, int], tuple[int, float | None]],
    sizes: dict[str, tuple[int, int]],
    config: HarvestConfig,
) -> dict[tuple[str, int], Tracklet]:
    """Every tracklet's good boxes (``every``-th frame seen, spread to ``max_crops``)."""
    tracklets: dict[tuple[str, int], Tracklet] = {}
    for camera, pred in sorted(predictions.items()):
        if camera not in sizes:
            raise HarvestError(f"camera {camera} of events.jsonl is not in the run's cams.yaml")
        keep = np.zeros(len(pred.frame), dtype=bool)
        for frame in np.unique(pred.frame):
            rows = np.flatnonzero(pred.frame == frame)
            keep[rows] = good_boxes(pred.xyxy[rows], sizes[camera], config)
        for row in range(len(pred.frame)):
            key, frame = (camera, int(pred.track_id[row])), int(pred.frame[row])
            tracklet = tracklets.setdefault(key, Tracklet(camera, key[1], first_frame=frame))
            tracklet.first_frame = min(tracklet.first_frame, frame)
            tracklet.last_frame = max(tracklet.last_frame, frame)
            if tracklet.seen % config.every == 0 and keep[row]:
                tracklet.frames.append(frame)
                tracklet.boxes.append(pred.xyxy[row])
            tracklet.seen += 1
    for key, tracklet in tracklets.items():
        if len(tracklet.frames) > config.max_crops:
            chosen = np.linspace(0, len(tracklet.frames) - 1, config.max_crops).round().astype(int)
            tracklet.frames = [tracklet.frames[i] for i in chosen]
            tracklet.boxes = [tracklet.boxes[i] for i in chosen]
        if key in assignments:
            tracklet.global_id, tracklet.link_distance = assignments[key]
    return {k: t for k, t in tracklets.items() if len(t.frames) >= config.min_crops}


def online_identities(
    tracklets: list[Tracklet], max_link_distance: float, uncertain: str
) -> tuple[list[list[Tracklet]], Counter]:
    """Tracklets grouped as the run's final assignments group them (confident links only),
    and the counts of each kind of decision."""
    groups: dict[Any, list[Tracklet]] = defaultdict(list)
    counts: Counter = Counter()
    for tracklet in tracklets:
        own = ("own", tracklet.camera, tracklet.track)
        if tracklet.global_id is None:
            counts["unassigned"] += 1
            groups[own].append(tracklet)
        elif tracklet.link_distance is None or tracklet.link_distance <= max_link_distance:
            counts["founder" if tracklet.link_distance is None else "linked"] += 1
            groups[("id", tracklet.global_id)].append(tracklet)
        elif uncertain == "own":
            counts["uncertain_kept_alone"] += 1
            groups[own].append(tracklet)
        else:
            counts["uncertain_dropped"] += 1
    return list(groups.values()), counts


def cannot_link(tracklets: list[Tracklet]) -> np.ndarray:
    """[N, N]: the two tracklets were seen by one camera at the same time (two people)."""
    camera = np.array([t.camera for t in tracklets])
    first = np.array([t.first_frame for t in tracklets])
    last = np.array([t.last_frame for t in tracklets])
    overlap = (first[:, None] <= last[None, :]) & (first[None, :] <= last[:, None])
    return (camera[:, None] == camera[None, :]) & overlap


def average_linkage(
    distances: np.ndarray, forbidden: np.ndarray, max_distance: float
) -> np.ndarray:
    """Agglomerative clustering (average linkage, UPGMA) that stops at ``max_distance`` and never
    joins clusters holding a forbidden pair → a cluster label per item."""
    n = len(distances)
    linkage = np.where(forbidden, np.inf, distances.astype(np.float64))
    np.fill_diagonal(linkage, np.inf)
    sizes = np.ones(n)
    labels = np.arange(n)
    while n > 1:
        i, j = np.unravel_index(int(np.argmin(linkage)), linkage.shape)
        if not linkage[i, j] <= max_distance:
            break
        merged = (sizes[i] * linkage[i] + sizes[j] * linkage[j]) / (sizes[i] + sizes[j])
        linkage[i], linkage[:, i] = merged, merged  # a forbidden pair stays inf
        linkage[i, i] = np.inf
        linkage[j], linkage[:, j] = np.inf, np.inf
        sizes[i] += sizes[j]
        labels[labels == j] = i
    return np.unique(labels, return_inverse=True)[1]


def split_mixed(
    tracklet: Tracklet, features: Any, max_distance: float, min_crops: int
) -> list[tuple[Tracklet, Any]]:
    """A tracklet whose crops show two people (the tracker swapped them, or a detector's box
    held both) split by clustering its crops as tracklets are clustered: the parts with at
    least ``min_crops`` crops, each with its features; the rest of the crops are dropped."""
    from reid_core import occlusion_aware_distance

    distances = occlusion_aware_distance(features, features).numpy()
    forbidden = np.zeros(distances.shape, dtype=bool)
    labels = average_linkage(distances, forbidden, max_distance)
    parts = []
    for label in np.unique(labels):
        chosen = np.flatnonzero(labels == label)
        if len(chosen) < min_crops:
            continue
        frames = [tracklet.frames[i] for i in chosen]
        part = Tracklet(
            tracklet.camera,
            tracklet.track,
            frames=frames,
            boxes=[tracklet.boxes[i] for i in chosen],
            global_id=tracklet.global_id,
            link_distance=tracklet.link_distance,
            seen=tracklet.seen,
            first_frame=tracklet.first_frame if len(chosen) == len(labels) else min(frames),
            last_frame=tracklet.last_frame if len(chosen) == len(labels) else max(frames),
            crops=[tracklet.crops[i] for i in chosen],
        )
        parts.append((part, features[chosen]))
    return parts


def offline_identities(
    tracklets: list[Tracklet], embedder: Any, max_link_distance: float, min_crops: int = 1
) -> tuple[list[list[Tracklet]], Counter]:
    """Tracklets embedded, pooled (as the worker pools) and clustered (module docstring)."""
    from reid_core import ReIDFeatures, occlusion_aware_distance
    from stream.calibration import pool_tracklets
    from stream.gallery.records import as_features

    counts: Counter = Counter()
    features, owners, parts = [], [], []
    for tracklet in tracklets:
        pieces = split_mixed(tracklet, embedder.embed(tracklet.crops), max_link_distance, min_crops)
        counts["split"] += len(pieces) > 1
        counts["crops_dropped_as_mixed"] += len(tracklet.crops) - sum(
            len(part.crops) for part, _ in pieces
        )
        for part, part_features in pieces:
            parts.append(part)
            features.append(part_features)
            owners += [len(parts)] * len(part.crops)
    tracklets = parts
    # owners 1..N in order, one camera: the pools come back in tracklet order
    pooled, _, _ = pool_tracklets(ReIDFeatures.cat(features), owners, [0] * len(owners))
    pooled_features = as_features(pooled)
    distances = occlusion_aware_distance(pooled_features, pooled_features).numpy()
    labels = average_linkage(distances, cannot_link(tracklets), max_link_distance)
    groups = [
        [t for t, label in zip(tracklets, labels, strict=True) if label == c]
        for c in range(int(labels.max()) + 1)
    ]
    counts["joined"] = sum(len(g) for g in groups if len(g) > 1)
    counts["alone"] = sum(1 for g in groups if len(g) == 1)
    return groups, counts


def cut_crops(tracklets: list[Tracklet], cameras: dict[str, Any]) -> None:
    """Fill each tracklet's ``crops`` from its camera's source (read once, in order)."""
    from stream.sources import open_recorded_source

    wanted: dict[str, dict[int, list[tuple[Tracklet, np.ndarray]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for tracklet in tracklets:
        for frame, box in zip(tracklet.frames, tracklet.boxes, strict=True):
            wanted[tracklet.camera][frame].append((tracklet, box))
    for camera, frames in sorted(wanted.items()):
        source = open_recorded_source(cameras[camera])
        last = max(frames)
        try:
            for item in source.frames():
                if item.index > last:
                    break
                for tracklet, box in frames.get(item.index, ()):
                    x1, y1, x2, y2 = (int(round(v)) for v in box)
                    tracklet.crops.append(item.image[max(y1, 0) : y2, max(x1, 0) : x2].copy())
        finally:
            source.close()
    for tracklet in tracklets:
        if len(tracklet.crops) != len(tracklet.frames):
            raise HarvestError(
                f"camera {tracklet.camera}: its source ended before frame "
                f"{tracklet.frames[len(tracklet.crops)]} of track {tracklet.track} (another "
                "file than the run read?)"
            )


def write_crops(groups: list[list[Tracklet]], out: Path) -> list[dict[str, Any]]:
    """Write every crop of every pseudo-identity; one manifest row per crop."""
    rows: list[dict[str, Any]] = []
    for person, group in enumerate(groups, start=1):
        for tracklet in group:
            folder = out / f"{person:05d}" / tracklet.camera
            folder.mkdir(parents=True, exist_ok=True)
            for frame, box, crop in zip(
                tracklet.frames, tracklet.boxes, tracklet.crops, strict=True
            ):
                path = folder / f"{tracklet.camera}_t{tracklet.track}_f{frame:06d}.jpg"
                cv2.imwrite(str(path), crop)
                rows.append(
                    {
                        "path": str(path.relative_to(out)),
                        "person": person,
                        "camera": tracklet.camera,
                        "track": tracklet.track,
                        "frame": frame,
                        "box": [float(v) for v in box],
                    }
                )
    return rows


def run_embedder(run: Path) -> Any:
    """The embedder the run's workers used (their model and runtime), read as a worker reads
    its config."""
    from stream.worker_config import load_worker_config

    configs = sorted((run / "workers").glob("*.yaml"))
    if not configs:
        raise HarvestError(
            f"{run / 'workers'}: no worker config (linking offline embeds with the run's "
            "model): use --linking online"
        )
    try:
        return load_worker_config(configs[0]).embedder.resolved().open()
    except (ValueError, FileNotFoundError) as error:
        raise HarvestError(f"{configs[0]}: {error}") from None


def score_against_truth(
    rows: list[dict[str, Any]], gt_files: dict[str, Path], min_iou: float = 0.5
) -> dict[str, Any]:
    """Purity of the pseudo-identities (crop-weighted share of each one's majority person) and
    the cross-camera links recovered: a (person, camera pair) counts as recovered when one
    pseudo-identity holds crops of the person from both cameras. ``link_recall`` is over the
    links the harvested crops allow (the person has crops from both cameras), what linking
    decides; ``link_recall_of_all_truth`` over every pair of cameras whose ground truth has the
    person, which the crop filters also limit."""
    from scipy.optimize import linear_sum_assignment
    from trackers.eval import box_iou

    from stream.detectors import read_mot_file

    truth = {camera: read_mot_file(path).scored() for camera, path in gt_files.items()}
    by_frame: dict[tuple[str, int], list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_frame[(row["camera"], row["frame"])].append(index)
    person_of = np.full(len(rows), -1)
    for (camera, frame), indices in by_frame.items():
        gt = truth[camera]
        in_frame = gt.frame == frame + 1  # MOT frames are 1-based
        if not in_frame.any():
            continue
        boxes = np.array([rows[i]["box"] for i in indices])
        iou = box_iou(gt.xyxy[in_frame], boxes, box_format="xyxy")
        gt_rows, found = linear_sum_assignment(-iou)
        for g, f in zip(gt_rows, found, strict=True):
            if iou[g, f] >= min_iou:
                person_of[indices[f]] = int(gt.ids[in_frame][g])
    matched = person_of >= 0
    members: dict[int, Counter] = defaultdict(Counter)
    seen_in: dict[int, set[tuple[int, str]]] = defaultdict(set)  # pseudo-id → (person, camera)
    for row, person in zip(rows, person_of, strict=True):
        if person >= 0:
            members[row["person"]][int(person)] += 1
            seen_in[row["person"]].add((int(person), row["camera"]))
    majority = sum(c.most_common(1)[0][1] for c in members.values())
    cameras_of: dict[int, set[str]] = defaultdict(set)
    for camera, gt in truth.items():
        for person in np.unique(gt.ids):
            cameras_of[int(person)].add(camera)
    truth_links = {
        (person, a, b)
        for person, cams in cameras_of.items()
        for a in sorted(cams)
        for b in sorted(cams)
        if a < b
    }
    harvested: dict[int, set[str]] = defaultdict(set)  # person → cameras with crops of them
    for row, person in zip(rows, person_of, strict=True):
        if person >= 0:
            harvested[int(person)].add(row["camera"])
    harvested_links = {link for link in truth_links if {link[1], link[2]} <= harvested[link[0]]}
    recovered = set()
    for pairs in seen_in.values():
        by_person: dict[int, set[str]] = defaultdict(set)
        for person, camera in pairs:
            by_person[person].add(camera)
        for person, cams in by_person.items():
            recovered |= {(person, a, b) for a in cams for b in cams if a < b}
    return {
        "crops_matched_to_truth": int(matched.sum()),
        "crops_unmatched": int((~matched).sum()),
        "purity": majority / max(int(matched.sum()), 1),
        "truth_cross_camera_links": len(truth_links),
        "harvested_cross_camera_links": len(harvested_links),
        "links_recovered": len(recovered & truth_links),
        "link_recall": len(recovered & harvested_links) / max(len(harvested_links), 1),
        "link_recall_of_all_truth": len(recovered & truth_links) / max(len(truth_links), 1),
        "persons_in_truth": len(cameras_of),
        "persons_harvested": len({p for c in members.values() for p in c}),
    }


def harvest(
    run: Path,
    out: Path,
    config: HarvestConfig | None = None,
    gt: Path | None = None,
    embedder: Any = None,
) -> dict[str, Any]:
    """Turn the run in ``run`` into a folder data set in ``out`` (new or empty); returns (and
    writes) the summary. ``embedder``: for offline linking (default: the run's own)."""
    from stream.mtmc import ground_truth_files

    config = config or HarvestConfig()
    if out.exists() and any(out.iterdir()):
        raise HarvestError(f"--out {out} is not empty: harvest writes a new data set")
    try:
        predictions = read_events(run / "events.jsonl")
    except EvalError as error:
        raise HarvestError(str(error)) from None
    try:
        cameras = run_cameras(run)
    except EvalError as error:
        raise HarvestError(str(error)) from None
    threshold = run_match_threshold(run)
    max_link = config.max_link_distance
    if max_link is None:
        if threshold is None:
            raise HarvestError(
                f"{run / 'summary.json'} records no match threshold (a run of an older version "
                "or one that did not finish): give --max-link-distance"
            )
        max_link = config.link_fraction * threshold
    assignments = read_assignments(run / "assignments.jsonl")
    kept = collect_tracklets(predictions, assignments, frame_sizes(cameras), config)
    tracklets = [kept[key] for key in sorted(kept)]
    cut_crops(tracklets, cameras)
    if config.linking == "offline":
        groups, decisions = offline_identities(
            tracklets, embedder or run_embedder(run), max_link, config.min_crops
        )
    else:
        groups, decisions = online_identities(tracklets, max_link, config.uncertain)
    out.mkdir(parents=True, exist_ok=True)
    rows = write_crops(groups, out)
    people = len(groups)
    multi_camera = sum(1 for g in groups if len({t.camera for t in g}) > 1)
    summary: dict[str, Any] = {
        "run": str(run),
        "config": asdict(config),
        "match_threshold": threshold,
        "max_link_distance": max_link,
        "tracklets_in_run": int(sum(len(np.unique(p.track_id)) for p in predictions.values())),
        "tracklets_kept": len({(t.camera, t.track) for g in groups for t in g}),
        "decisions": dict(decisions),
        "pseudo_identities": people,
        "pseudo_identities_multi_camera": multi_camera,
        "crops": len(rows),
        "cameras": sorted(cameras),
    }
    if gt is not None:
        summary["truth"] = score_against_truth(rows, ground_truth_files(gt, list(cameras)))
    with open(out / "harvest.jsonl", "w") as manifest:
        for row in rows:
            manifest.write(json.dumps(row) + "\n")
    (out / "harvest.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "harvest",
        help="turn a run's tracklets into a training set of your own people",
        description=__doc__.split("\n\n")[0],
    )
    defaults = HarvestConfig()
    parser.add_argument("--run", type=Path, required=True, help="a `stream run --out` folder")
    parser.add_argument("--out", type=Path, required=True, help="the data set folder to write")
    parser.add_argument(
        "--gt",
        type=Path,
        help="ground truth (as `stream eval --gt`): report "
        "purity and recovered cross-camera links; never used to harvest",
    )
    parser.add_argument("--every", type=int, default=defaults.every)
    parser.add_argument("--max-crops", type=int, default=defaults.max_crops)
    parser.add_argument("--min-crops", type=int, default=defaults.min_crops)
    parser.add_argument("--min-height", type=int, default=defaults.min_height)
    parser.add_argument(
        "--link-fraction",
        type=float,
        default=defaults.link_fraction,
        help="a confident link: distance ≤ this × the run's match threshold",
    )
    parser.add_argument("--max-link-distance", type=float, help="instead of --link-fraction")
    parser.add_argument(
        "--uncertain",
        choices=UNCERTAIN,
        default=defaults.uncertain,
        help="online linking: what becomes of a tracklet linked with doubt",
    )
    parser.add_argument("--linking", choices=LINKING, default=defaults.linking)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    config = HarvestConfig(
        every=args.every,
        max_crops=args.max_crops,
        min_crops=args.min_crops,
        min_height=args.min_height,
        link_fraction=args.link_fraction,
        max_link_distance=args.max_link_distance,
        uncertain=args.uncertain,
        linking=args.linking,
    )
    summary = harvest(args.run, args.out, config, args.gt)
    print(
        f"{summary['pseudo_identities']} pseudo-identities "
        f"({summary['pseudo_identities_multi_camera']} across cameras), {summary['crops']} crops "
        f"from {summary['tracklets_kept']} of {summary['tracklets_in_run']} tracklets → {args.out}"
    )
    if "truth" in summary:
        truth = summary["truth"]
        print(
            f"against ground truth: purity {truth['purity']:.3f}, cross-camera links recovered "
            f"{truth['link_recall']:.3f} of those the crops allow "
            f"({truth['harvested_cross_camera_links']}), {truth['links_recovered']} of all "
            f"{truth['truth_cross_camera_links']}"
        )
    print(
        f"fine-tune: trainer train --config configs/train/finetune_harvest.yaml "
        f"--init MODEL --data-root {args.out} --out RUN"
    )
    return 0
