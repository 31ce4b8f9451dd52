"""`stream eval --run DIR --gt DIR`: how well a run tracked and re-identified people (SPEC §5, §8).

Inputs. ``DIR/events.jsonl`` (one `stream.camera.TrackEvent` per line: camera, frame, time,
track_id, global_id, box [x1, y1, x2, y2] in 0-based pixels, score) and, when present,
``DIR/assignments.jsonl`` (the stage's ``assignment`` messages). Ground truth in MOTChallenge
format (MOT15 or MOT17 layout): ``--gt`` is a folder of camera sequences ``CAMERA/gt/gt.txt``,
one sequence folder ``gt/gt.txt`` (for a one-camera run), or a cams.yaml (each camera's
``ground_truth``). Frames: an event's ``frame`` is the 0-based source frame index, the ground
truth's is 1-based, so event frame k is ground-truth frame k + 1.

Metrics, all from the `trackers.eval` module (TrackEval's definitions, IoU 0.5 for CLEAR and
Identity):

- per camera, HOTA, IDF1 and MOTA of the camera's own track ids against the ground-truth ids;
- cross-camera IDF1 (the headline ``IDF1``): every camera's sequence is laid end to end in one
  sequence (camera c's frames shifted past the previous cameras', so no frame holds two
  cameras); the predicted id of a box is its global id and the ground-truth id is the person's
  global id. A person seen by three cameras is then one ground-truth trajectory, and only a run
  that gave the three tracklets one global id matches it all: IDF1 = 2·IDTP / (2·IDTP + IDFP +
  IDFN) over that sequence is the multi-camera IDF1 of MTMC benchmarks. Ground-truth ids must
  therefore be global across cameras (as `trainer synth video` writes them).

Which global id a box carries: by default a tracklet's final one (the last assignment for that
(camera, track) in assignments.jsonl, else the last non-null global_id in its events) for all
its boxes, as an offline MTMC result is scored; ``--online`` scores the label each box had when
it was emitted. A box without a global id gets one of its own per tracklet (never merged).

Yardstick: the same cross-camera IDF1 with no re-identification at all (every tracklet its own
identity), ``IDF1_without_reid``: re-ID earns its keep only by scoring above it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

FRAME_NOTE = "event frame k (0-based source index) = ground-truth frame k + 1 (MOTChallenge)"
CAMERA_METRICS = ("HOTA", "IDF1", "MOTA", "DetA", "AssA", "IDP", "IDR", "IDSW")


class EvalError(ValueError):
    """Bad run or ground-truth input; the message names the file and line."""


@dataclass
class Predictions:
    """One camera's predicted boxes, in event order."""

    frame: np.ndarray  # 0-based
    track_id: np.ndarray
    global_id: np.ndarray  # −1 where the box carries none
    xyxy: np.ndarray
    score: np.ndarray


def read_events(path: Path) -> dict[str, Predictions]:
    """``events.jsonl`` grouped by camera; a bad line is an error naming file and line."""
    from pydantic import ValidationError

    from stream.camera import TrackEvent

    if not path.is_file():
        raise EvalError(f"events file not found: {path} (written by `stream run --out DIR`)")
    rows: dict[str, list[TrackEvent]] = defaultdict(list)
    with open(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = TrackEvent.model_validate_json(line)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                raise EvalError(f"{path}:{number}: {where}: {first['msg']}") from None
            rows[event.camera].append(event)
    return {
        camera: Predictions(
            frame=np.array([e.frame for e in events], dtype=int),
            track_id=np.array([e.track_id for e in events], dtype=int),
            global_id=np.array(
                [e.global_id if e.global_id is not None else -1 for e in events], dtype=int
            ),
            xyxy=np.array([e.box for e in events], dtype=np.float64).reshape(-1, 4),
            score=np.array([e.score for e in events], dtype=np.float64),
        )
        for camera, events in rows.items()
    }


def assignment_record(message: Any, **extra: Any) -> dict[str, Any]:
    """One line of ``assignments.jsonl`` from a wire `AssignmentMessage` (what
    `read_final_assignments` reads back); ``extra`` adds context such as the frame."""
    return {
        "camera": message.camera,
        "track_id": message.track,
        "global_id": message.global_id,
        "score": message.score,
        "is_new": message.is_new,
        "run": message.run,
        **extra,
    }


@dataclass(frozen=True)
class AssignmentRecord:
    """One line of ``assignments.jsonl`` as the readers need it."""

    camera: str
    track: int
    global_id: int
    score: float | None
    is_new: bool


def read_assignment_records(path: Path) -> Iterator[AssignmentRecord]:
    """``assignments.jsonl`` line by line (none when the file is absent); a bad line is an
    `EvalError` naming the file and line."""
    if not path.is_file():
        return
    with open(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                score = record.get("score")
                yield AssignmentRecord(
                    str(record["camera"]),
                    int(record["track_id"]),
                    int(record["global_id"]),
                    None if score is None else float(score),
                    bool(record.get("is_new", False)),
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise EvalError(f"{path}:{number}: not an assignment record: {error}") from None


def read_final_assignments(path: Path) -> dict[tuple[str, int], int]:
    """The last global id assigned to each (camera, track) in ``assignments.jsonl``."""
    return {(r.camera, r.track): r.global_id for r in read_assignment_records(path)}


def run_cameras(run: Path) -> dict[str, Any]:
    """The cams.yaml cameras of the run (its last segment's cams.yaml), by id."""
    from stream.config import load_cams_config

    path = run / "run.json"
    if not path.is_file():
        raise EvalError(f"{path} not found: not a `stream run --out` folder")
    try:
        segments = json.loads(path.read_text())["runs"]
        cams_yaml = Path(segments[-1]["cameras_yaml"])
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as error:
        raise EvalError(f"{path}: no cameras_yaml of the run: {error}") from None
    return {camera.id: camera for camera in load_cams_config(cams_yaml).cameras}


def label_boxes(
    predictions: dict[str, Predictions],
    assignments: dict[tuple[str, int], int],
    online: bool,
) -> dict[str, np.ndarray]:
    """The global id each box is scored with (see the module docstring)."""
    next_free = 1 + max(
        [0, *assignments.values(), *(int(p.global_id.max(initial=0)) for p in predictions.values())]
    )
    unlabelled: dict[tuple[str, int], int] = {}

    def own_id(camera: str, track: int) -> int:
        nonlocal next_free
        if (camera, track) not in unlabelled:
            unlabelled[(camera, track)] = next_free
            next_free += 1
        return unlabelled[(camera, track)]

    labels = {}
    for camera, pred in sorted(predictions.items()):
        final: dict[int, int] = {}
        if not online:
            for track, global_id in zip(pred.track_id, pred.global_id, strict=True):
                if global_id >= 0:
                    final[int(track)] = int(global_id)
            final.update({t: g for (c, t), g in assignments.items() if c == camera})
        ids = np.empty(len(pred.frame), dtype=int)
        for row, (track, global_id) in enumerate(zip(pred.track_id, pred.global_id, strict=True)):
            track = int(track)
            if online:
                ids[row] = global_id if global_id >= 0 else own_id(camera, track)
            else:
                ids[row] = final.get(track, -1)
                if ids[row] < 0:
                    ids[row] = own_id(camera, track)
        labels[camera] = ids
    return labels


def tracklet_labels(predictions: dict[str, Predictions]) -> dict[str, np.ndarray]:
    """Every (camera, track) its own id: the labels of a run without re-identification."""
    ids: dict[tuple[str, int], int] = {}
    return {
        camera: np.array(
            [ids.setdefault((camera, int(t)), len(ids) + 1) for t in pred.track_id], dtype=int
        )
        for camera, pred in sorted(predictions.items())
    }


def ground_truth_files(gt: Path, cameras: Iterable[str]) -> dict[str, Path]:
    """Each camera's MOTChallenge gt.txt from ``--gt`` (folder of sequences, one sequence
    folder, or a cams.yaml)."""
    cameras = sorted(cameras)
    if gt.is_file() and gt.suffix in (".yaml", ".yml"):
        from stream.config import load_cams_config

        config = load_cams_config(gt)
        files = {c.id: c.ground_truth_path() for c in config.cameras}
        missing = [camera for camera, path in files.items() if path is None]
        if missing:
            raise EvalError(f"{gt}: no ground_truth for camera(s) {', '.join(missing)}")
        return {camera: path for camera, path in files.items() if path is not None}
    if (gt / "gt" / "gt.txt").is_file():
        if len(cameras) != 1:
            raise EvalError(
                f"{gt} is one MOTChallenge sequence but the run has cameras "
                f"{', '.join(cameras) or '(none)'}; give a folder of CAMERA/gt/gt.txt"
            )
        return {cameras[0]: gt / "gt" / "gt.txt"}
    if not gt.is_dir():
        raise EvalError(f"ground truth not found: {gt}")
    files = {p.parent.parent.name: p for p in sorted(gt.glob("*/gt/gt.txt"))}
    if not files:
        raise EvalError(f"{gt}: no CAMERA/gt/gt.txt sequences (MOTChallenge layout)")
    return files


def _zero_metrics(note: str) -> dict[str, Any]:
    return {**{name: 0.0 for name in CAMERA_METRICS}, "IDSW": 0, "note": note}


def score_mot(gt_lines: list[str], pred_lines: list[str]) -> dict[str, Any]:
    """HOTA / Identity / CLEAR metrics of MOTChallenge tracker rows against ground-truth rows,
    by `trackers.eval.evaluate_mot_sequence` (which reads files: they live in a scratch dir)."""
    from trackers.eval import evaluate_mot_sequence

    with tempfile.TemporaryDirectory(prefix="mtmc-") as scratch:
        gt_path, pred_path = Path(scratch) / "gt.txt", Path(scratch) / "pred.txt"
        gt_path.write_text("\n".join(gt_lines) + "\n")
        pred_path.write_text("\n".join(pred_lines) + "\n")
        result = evaluate_mot_sequence(gt_path, pred_path, metrics=["CLEAR", "HOTA", "Identity"])
    return {
        "HOTA": result.HOTA.HOTA,
        "DetA": result.HOTA.DetA,
        "AssA": result.HOTA.AssA,
        "IDF1": result.Identity.IDF1,
        "IDP": result.Identity.IDP,
        "IDR": result.Identity.IDR,
        "IDTP": int(result.Identity.IDTP),
        "IDFP": int(result.Identity.IDFP),
        "IDFN": int(result.Identity.IDFN),
        "MOTA": result.CLEAR.MOTA,
        "IDSW": int(result.CLEAR.IDSW),
    }


def prediction_lines(pred: Predictions, ids: np.ndarray, frame_offset: int = 0) -> list[str]:
    """MOTChallenge tracker rows: frame (1-based, + offset), id, x, y, w, h (1-based), score."""
    x, y = pred.xyxy[:, 0] + 1, pred.xyxy[:, 1] + 1
    w, h = pred.xyxy[:, 2] - pred.xyxy[:, 0], pred.xyxy[:, 3] - pred.xyxy[:, 1]
    return [
        f"{frame + 1 + frame_offset},{i},{a:.2f},{b:.2f},{c:.2f},{d:.2f},{s:.4f},-1,-1,-1"
        for frame, i, a, b, c, d, s in zip(pred.frame, ids, x, y, w, h, pred.score, strict=True)
    ]


@dataclass(frozen=True)
class JoinedTruth:
    """Every camera's ground truth as one sequence, as the cross-camera scores see it: cameras
    in name order, each shifted past the frames of those before it (its ground truth's or its
    events' length, whichever is longer)."""

    lines: list[str]
    offsets: dict[str, int]  # camera → its first frame in the sequence, in camera order

    def prediction_lines(self, predictions: dict[str, Predictions], labels: dict) -> list[str]:
        """The cameras' boxes with ``labels`` (per camera, one id per box) in this sequence."""
        return [
            line
            for camera, offset in self.offsets.items()
            if camera in predictions
            for line in prediction_lines(predictions[camera], labels[camera], offset)
        ]


def join_ground_truth(truths: dict[str, Any], predictions: dict[str, Predictions]) -> JoinedTruth:
    """``truths`` (camera → `read_mot_file` rows) joined into one sequence (`JoinedTruth`)."""
    lines: list[str] = []
    offsets: dict[str, int] = {}
    offset = 0
    for camera, truth in sorted(truths.items()):
        pred = predictions.get(camera)
        last_event_frame = int(pred.frame.max(initial=-1)) + 1 if pred is not None else 0
        offsets[camera] = offset
        lines += replace(truth, frame=truth.frame + offset).to_mot17_lines()
        offset += max(int(truth.frame.max(initial=0)), last_event_frame)
    return JoinedTruth(lines, offsets)


@dataclass(frozen=True)
class LabelledRun:
    """A run's boxes per camera and the final global id of each (`label_boxes`)."""

    predictions: dict[str, Predictions]
    labels: dict[str, np.ndarray]


def final_labels(run_dir: Path) -> LabelledRun:
    """Read a run's events and final assignments once, for every end-of-run output."""
    predictions = read_events(run_dir / "events.jsonl")
    assignments = read_final_assignments(run_dir / "assignments.jsonl")
    return LabelledRun(predictions, label_boxes(predictions, assignments, online=False))


def write_result_files(run_dir: Path, run: LabelledRun) -> list[Path]:
    """The run's boxes with their final global ids in the formats other tools read:
    ``results/mot/CAMERA.txt`` (MOTChallenge: frame, id, x, y, w, h, score, -1, -1, -1; 1-based
    frames and pixels) and ``results/aicity_mtmc.txt`` (AI City MTMC: camera number, global id,
    frame, x, y, w, h, -1, -1; cameras numbered 1.. in name order, listed in
    ``results/aicity_cameras.json``)."""
    predictions, labels = run.predictions, run.labels
    folder = run_dir / "results"
    (folder / "mot").mkdir(parents=True, exist_ok=True)
    numbers = {camera: number for number, camera in enumerate(sorted(predictions), start=1)}
    written, aicity = [], []
    for camera, pred in sorted(predictions.items()):
        lines = prediction_lines(pred, labels[camera])
        path = folder / "mot" / f"{camera}.txt"
        path.write_text("".join(f"{line}\n" for line in lines))
        written.append(path)
        for line in lines:
            frame, global_id, x, y, w, h = line.split(",")[:6]
            aicity.append(f"{numbers[camera]} {global_id} {frame} {x} {y} {w} {h} -1 -1")
    (folder / "aicity_mtmc.txt").write_text("".join(f"{line}\n" for line in aicity))
    (folder / "aicity_cameras.json").write_text(json.dumps(numbers, indent=2) + "\n")
    sheet = identity_sheet(run_dir, folder / "identities.png")
    return [*written, folder / "aicity_mtmc.txt", *([sheet] if sheet else [])]


def identity_sheet(run_dir: Path, out: Path, max_rows: int = 40, height: int = 96) -> Path | None:
    """Who was seen where: a row per global id (those seen by the most cameras first), a column
    per camera, each cell the identity's longest tracklet's thumbnail there (``tracklets.jsonl``
    thumbnails, final ids from ``assignments.jsonl``). None when the run kept no thumbnails."""
    import cv2

    tracklets_path = run_dir / "tracklets.jsonl"
    if not tracklets_path.is_file():
        return None
    final = read_final_assignments(run_dir / "assignments.jsonl")
    best: dict[tuple[int, str], tuple[int, str]] = {}  # (id, camera) -> (frames, thumbnail)
    cameras: set[str] = set()
    for line in tracklets_path.read_text().splitlines():
        record = json.loads(line)
        global_id = final.get((record["camera"], record["track_id"]), record.get("global_id"))
        if global_id is None or not record.get("thumbnail"):
            continue
        cameras.add(record["camera"])
        key = (int(global_id), record["camera"])
        if record["frames"] > best.get(key, (-1, ""))[0]:
            best[key] = (record["frames"], record["thumbnail"])
    if not best:
        return None
    columns = sorted(cameras)
    seen_on: dict[int, int] = defaultdict(int)
    for global_id, _ in best:
        seen_on[global_id] += 1
    rows = sorted(seen_on, key=lambda g: (-seen_on[g], g))[:max_rows]
    width, label = height // 2, 56
    sheet = np.full(
        (24 + len(rows) * (height + 4), label + len(columns) * (width + 4), 3), 255, np.uint8
    )
    for c, camera in enumerate(columns):
        cv2.putText(
            sheet,
            camera[:8],
            (label + c * (width + 4), 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (0, 0, 0),
            1,
        )
    for r, global_id in enumerate(rows):
        top = 24 + r * (height + 4)
        cv2.putText(
            sheet,
            f"G{global_id}",
            (4, top + height // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
        )
        for c, camera in enumerate(columns):
            entry = best.get((global_id, camera))
            image = cv2.imread(entry[1]) if entry else None
            if image is None:
                continue
            left = label + c * (width + 4)
            sheet[top : top + height, left : left + width] = cv2.resize(image, (width, height))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    return out


def evaluate_run(run_dir: Path, gt: Path, online: bool = False) -> dict[str, Any]:
    """Per-camera and cross-camera metrics of a run; also written to ``run_dir/mtmc.json``."""
    from stream.detectors import DetectorError, read_mot_file

    predictions = read_events(run_dir / "events.jsonl")
    assignments = read_final_assignments(run_dir / "assignments.jsonl")
    gt_files = ground_truth_files(gt, predictions)
    unknown = sorted(set(predictions) - set(gt_files))
    if unknown:
        raise EvalError(
            f"cameras {', '.join(unknown)} of the run have no ground truth in {gt} "
            f"(it has: {', '.join(sorted(gt_files))})"
        )
    truths = {}
    for camera, gt_path in sorted(gt_files.items()):
        try:
            truths[camera] = read_mot_file(gt_path)
        except DetectorError as error:
            raise EvalError(str(error)) from None
    cameras: dict[str, dict[str, Any]] = {}
    for camera, truth in truths.items():
        pred = predictions.get(camera)
        if len(truth.scored()) == 0:
            cameras[camera] = _zero_metrics(f"no ground-truth people in {gt_files[camera]}")
        elif pred is None:
            cameras[camera] = _zero_metrics("no events from this camera")
        else:
            cameras[camera] = score_mot(
                truth.to_mot17_lines(), prediction_lines(pred, pred.track_id)
            )
    joined = join_ground_truth(truths, predictions)
    all_pred = joined.prediction_lines(predictions, label_boxes(predictions, assignments, online))
    all_alone = joined.prediction_lines(predictions, tracklet_labels(predictions))
    cross = score_mot(joined.lines, all_pred) if all_pred else _zero_metrics("no events")
    without_reid = score_mot(joined.lines, all_alone) if all_alone else _zero_metrics("no events")
    summary = {
        "IDF1": cross["IDF1"],
        "IDF1_without_reid": without_reid["IDF1"],
        "labels": "online" if online else "final",
        "frames": FRAME_NOTE,
        "cross_camera": cross,
        "cameras": cameras,
        "run": str(run_dir),
        "ground_truth": {camera: str(path) for camera, path in sorted(gt_files.items())},
    }
    (run_dir / "mtmc.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_metrics(summary, run_dir / "mtmc.png")
    return summary


def plot_metrics(summary: dict[str, Any], path: Path) -> None:
    """Grouped bars: HOTA / IDF1 / MOTA per camera, and the cross-camera IDF1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*summary["cameras"], "cross-camera"]
    rows = [*summary["cameras"].values(), summary["cross_camera"]]
    metrics = ("HOTA", "IDF1", "MOTA")
    positions = np.arange(len(names))
    width = 0.8 / len(metrics)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.4 * len(names) + 2), 3.6))
    for k, metric in enumerate(metrics):
        values = [row[metric] for row in rows]
        bars = axis.bar(positions + (k - 1) * width, values, width, label=metric)
        axis.bar_label(bars, fmt="%.2f", fontsize=7)
    axis.set_xticks(positions, names)
    axis.set_ylim(min(0.0, *(row["MOTA"] for row in rows)), 1.22)
    axis.set_title(
        f"stream eval: cross-camera IDF1 {summary['IDF1']:.3f} ({summary['labels']} ids)"
    )
    axis.legend(loc="upper center", ncols=len(metrics), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"stream eval — {summary['run']} ({summary['labels']} global ids)")
    table.add_column("camera")
    for name in CAMERA_METRICS:
        table.add_column(name, justify="right")
    rows = [*summary["cameras"].items(), ("cross-camera (global ids)", summary["cross_camera"])]
    for camera, metrics in rows:
        table.add_row(
            camera,
            *(
                str(metrics[name]) if name == "IDSW" else f"{metrics[name]:.3f}"
                for name in CAMERA_METRICS
            ),
        )
    console = Console()
    console.print(table)
    console.print(
        f"cross-camera IDF1: [bold]{summary['IDF1']:.3f}[/] (without re-ID, every tracklet its "
        f"own identity: {summary['IDF1_without_reid']:.3f})   ({summary['frames']})"
    )


def _handle(args: argparse.Namespace) -> int:
    summary = evaluate_run(args.run, args.gt, online=args.online)
    print_table(summary)
    print(f"wrote {args.run / 'mtmc.json'} and {args.run / 'mtmc.png'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a run's tracks and global ids against MOTChallenge ground truth",
        description="Per-camera HOTA / IDF1 / MOTA (track ids) and cross-camera IDF1 (global "
        "ids) of DIR/events.jsonl; writes DIR/mtmc.json and DIR/mtmc.png.",
    )
    parser.add_argument("--run", type=Path, required=True, help="run folder with events.jsonl")
    parser.add_argument(
        "--gt",
        type=Path,
        required=True,
        help="folder of CAMERA/gt/gt.txt, one sequence folder, or a cams.yaml",
    )
    parser.add_argument(
        "--online",
        action="store_true",
        help="score each box's global id as emitted (default: each tracklet's final id)",
    )
    parser.set_defaults(handler=_handle)
