"""Person detectors of a camera stage (SPEC §5): ultralytics YOLO (weights from a path, kept
offline), OpenCV background subtraction (no weights, fixed cameras) and MOTChallenge ground
truth (the synthetic videos' own, or a real sequence's, to judge the re-ID part alone).

Every detector answers `supervision.Detections` with ``xyxy`` (0-based pixel corners, float),
``confidence`` in [0, 1] and ``class_id`` = `PERSON_CLASS_ID`. A detector that knows how much of
each person is visible (only ground truth does) adds ``data[VISIBILITY]``; the camera stage then
sends no crop of a mostly hidden person (`stream.config.CropPolicy.min_visibility`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict

from stream.config import (
    YOLO_WEIGHTS_HELP,
    BackgroundSubtractionConfig,
    CameraConfig,
    DetectorConfig,
    SsdliteDetectorConfig,
    YoloDetectorConfig,
    is_architecture_name,
    is_pickled_weights,
    pickle_refusal,
)

PERSON_CLASS_ID = 0
VISIBILITY = "visibility"
COCO_PERSON_CLASS = 0  # ultralytics' architecture files lay classes out as COCO does
MOT_PEDESTRIAN_CLASS = 1


class DetectorError(RuntimeError):
    """A detector that cannot be built or run; the message names the file or option."""


class Detector(Protocol):
    def detect(self, image: np.ndarray, index: int) -> sv.Detections:
        """People in ``image``, frame ``index`` (0-based) of its source."""
        ...


def person_detections(
    xyxy: np.ndarray, confidence: np.ndarray, visibility: np.ndarray | None = None
) -> sv.Detections:
    """The one way detectors build their answer."""
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    data = {} if visibility is None else {VISIBILITY: np.asarray(visibility, dtype=np.float32)}
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.clip(np.asarray(confidence, dtype=np.float32), 0.0, 1.0),
        class_id=np.full(len(xyxy), PERSON_CLASS_ID, dtype=int),
        data=data,
    )


# --- MOTChallenge files --------------------------------------------------------------------


@dataclass(frozen=True)
class MotRows:
    """The rows of a MOTChallenge file. ``frame`` is MOT's 1-based frame; ``xyxy`` is 0-based
    (MOT's ``x, y`` are 1-based: x1 = x − 1). ``layout`` is ``mot17`` (9 columns: class and
    visibility) or ``mot15`` (10 columns: world x, y, z; every row is a pedestrian)."""

    frame: np.ndarray
    ids: np.ndarray
    xyxy: np.ndarray
    confidence: np.ndarray
    classes: np.ndarray
    visibility: np.ndarray
    layout: str

    def scored(self) -> MotRows:
        """The rows MOTChallenge scores: conf ≠ 0 and the pedestrian class."""
        return self.select((self.confidence != 0) & (self.classes == MOT_PEDESTRIAN_CLASS))

    def select(self, mask: np.ndarray) -> MotRows:
        return MotRows(
            self.frame[mask],
            self.ids[mask],
            self.xyxy[mask],
            self.confidence[mask],
            self.classes[mask],
            self.visibility[mask],
            self.layout,
        )

    def __len__(self) -> int:
        return len(self.frame)

    def to_mot17_lines(self) -> list[str]:
        """MOT17 rows (``frame,id,x,y,w,h,conf,class,visibility``) for `trackers.eval`."""
        x, y = self.xyxy[:, 0] + 1, self.xyxy[:, 1] + 1
        w, h = self.xyxy[:, 2] - self.xyxy[:, 0], self.xyxy[:, 3] - self.xyxy[:, 1]
        return [
            f"{f},{i},{a:.2f},{b:.2f},{c:.2f},{d:.2f},{conf:g},{cls},{vis:.4f}"
            for f, i, a, b, c, d, conf, cls, vis in zip(
                self.frame,
                self.ids,
                x,
                y,
                w,
                h,
                self.confidence,
                self.classes,
                self.visibility,
                strict=True,
            )
        ]


def _bad_row(path: Path, lines: list[str]) -> str:
    """Name the first row that numpy could not read, for the error message."""
    width = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        try:
            [float(f) for f in fields]
        except ValueError:
            return f"{path}:{number}: not a row of numbers: {line.strip()!r}"
        if width is not None and len(fields) != width:
            return f"{path}:{number}: {len(fields)} columns, earlier rows have {width}"
        width = len(fields)
    return f"{path}: unreadable"


def read_mot_file(path: str | Path) -> MotRows:
    """Read a MOTChallenge ``gt.txt`` (MOT15 or MOT17 layout) or a tracker result file."""
    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"MOTChallenge file not found: {path}")
    text = path.read_text()
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        empty = np.zeros(0)
        return MotRows(
            empty.astype(int),
            empty.astype(int),
            np.zeros((0, 4)),
            empty,
            empty.astype(int),
            empty,
            "mot17",
        )
    try:
        data = np.loadtxt(lines, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:
        raise DetectorError(_bad_row(path, lines)) from None
    columns = data.shape[1]
    if columns < 6:
        raise DetectorError(
            f"{path}: {columns} columns; a MOTChallenge row is frame,id,x,y,w,h[,conf,...]"
        )
    if np.any(data[:, 4:6] < 0):
        line = int(np.argmax(np.any(data[:, 4:6] < 0, axis=1))) + 1
        raise DetectorError(f"{path}: row {line} has a negative width or height")
    layout = "mot15" if columns == 10 else "mot17"
    ones = np.ones(len(data))
    confidence = data[:, 6] if columns > 6 else ones
    if layout == "mot17" and columns > 7:
        classes = data[:, 7].astype(int)
    else:
        classes = np.full(len(data), MOT_PEDESTRIAN_CLASS)
    visibility = data[:, 8] if layout == "mot17" and columns > 8 else ones
    x1, y1 = data[:, 2] - 1, data[:, 3] - 1
    xyxy = np.stack([x1, y1, x1 + data[:, 4], y1 + data[:, 5]], axis=1)
    return MotRows(
        data[:, 0].astype(int),
        data[:, 1].astype(int),
        xyxy,
        confidence,
        classes,
        visibility,
        layout,
    )


# --- ground truth --------------------------------------------------------------------------


class GroundTruthDetector:
    """Boxes of a MOTChallenge ground truth (class 1, conf ≠ 0 rows) as detections of score 1,
    with the visibility column (MOT17; 1 in MOT15) as ``data[VISIBILITY]``: video frame
    ``index`` is MOT frame ``index + 1``."""

    def __init__(self, path: str | Path, min_visibility: float = 0.0) -> None:
        rows = read_mot_file(path).scored()
        rows = rows.select(rows.visibility >= min_visibility)
        order = np.argsort(rows.frame, kind="stable")
        frames = rows.frame[order]
        self._rows: dict[int, np.ndarray] = {}  # frame index → rows of the sorted table
        for frame in np.unique(frames):
            start, stop = np.searchsorted(frames, [frame, frame + 1])
            self._rows[int(frame) - 1] = order[start:stop]
        self.table = rows

    def detect(self, image: np.ndarray, index: int) -> sv.Detections:
        rows = self._rows.get(index, np.zeros(0, dtype=int))
        return person_detections(
            self.table.xyxy[rows], np.ones(len(rows)), self.table.visibility[rows]
        )


# --- background subtraction ----------------------------------------------------------------


class BackgroundSubtractionDetector:
    """MOG2 foreground (shadows dropped) → closing that joins a person's limbs → connected
    components kept when person-shaped: tall enough, height/width in range, dense enough.
    Confidence = fill / full_fill (capped at 1). For fixed cameras; needs no weights."""

    def __init__(self, config: BackgroundSubtractionConfig) -> None:
        self.config = config
        self._model = cv2.createBackgroundSubtractorMOG2(
            history=config.history, varThreshold=config.var_threshold, detectShadows=True
        )
        self._open = (
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (config.open_kernel,) * 2)
            if config.open_kernel > 1
            else None
        )
        self._close = cv2.getStructuringElement(cv2.MORPH_RECT, config.close_kernel)
        self._frames_seen = 0

    def foreground(self, image: np.ndarray) -> np.ndarray:
        """The cleaned foreground mask (uint8 0/255), after updating the background model."""
        blur = self.config.blur
        smoothed = cv2.GaussianBlur(image, (blur, blur), 0) if blur else image
        mask = self._model.apply(smoothed)
        _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)  # shadows are 127
        if self._open is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)

    def detect(self, image: np.ndarray, index: int) -> sv.Detections:
        mask = self.foreground(image)
        self._frames_seen += 1
        if self._frames_seen <= self.config.warmup_frames:
            return person_detections(np.zeros((0, 4)), np.zeros(0))
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        x, y, w, h, area = (stats[1:, k].astype(np.float64) for k in range(5))
        cfg = self.config
        aspect = h / np.maximum(w, 1)
        fill = area / np.maximum(w * h, 1)
        keep = (
            (h >= cfg.min_height)
            & (h <= cfg.max_height_fraction * image.shape[0])
            & (aspect >= cfg.min_aspect)
            & (aspect <= cfg.max_aspect)
            & (fill >= cfg.min_fill)
        )
        xyxy = np.stack([x, y, x + w, y + h], axis=1)[keep]
        return person_detections(xyxy, np.minimum(1.0, fill[keep] / cfg.full_fill))


def matched_boxes(truth: np.ndarray, found: np.ndarray, min_iou: float = 0.5) -> int:
    """How many ground-truth boxes a detector found: one-to-one matching (Hungarian, by IoU)
    with IoU ≥ ``min_iou`` — recall = matched / len(truth), precision = matched / len(found)."""
    if len(truth) == 0 or len(found) == 0:
        return 0
    from scipy.optimize import linear_sum_assignment
    from trackers.eval import box_iou

    iou = box_iou(truth, found, box_format="xyxy")
    rows, cols = linear_sum_assignment(-iou)
    return int((iou[rows, cols] >= min_iou).sum())


# --- YOLO ----------------------------------------------------------------------------------


def prepare_offline_ultralytics(config_dir: Path) -> None:
    """Keep ultralytics off the network (NOTES: it probes DNS, syncs settings and pip-installs
    at will). Must run before ultralytics is first imported."""
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync", True):
        SETTINGS.update(sync=False)


class YoloDetector:
    """ultralytics YOLO restricted to the person class. A missing weights file is an error
    that says how to provide one; nothing is downloaded."""

    def __init__(self, config: YoloDetectorConfig, config_dir: Path) -> None:
        if not is_architecture_name(config.weights) and not Path(config.weights).is_file():
            raise DetectorError(
                f"YOLO weights file not found: {config.weights}; {YOLO_WEIGHTS_HELP}"
            )
        if is_pickled_weights(config.weights) and not config.allow_pickle:
            raise DetectorError(pickle_refusal(config.weights))  # also when built in code
        prepare_offline_ultralytics(config_dir)
        from ultralytics import YOLO

        self.config = config
        self.model = YOLO(config.weights)
        names = {str(name).lower(): int(k) for k, name in self.model.names.items()}
        if is_architecture_name(config.weights):
            names.setdefault("person", COCO_PERSON_CLASS)  # untrained: classes are numbers
        if "person" not in names:
            raise DetectorError(
                f"YOLO weights {config.weights} have no 'person' class "
                f"(classes: {', '.join(sorted(names))[:200]})"
            )
        self.person_class = names["person"]

    def detect(self, image: np.ndarray, index: int) -> sv.Detections:
        result = self.model.predict(
            image,
            classes=[self.person_class],
            conf=self.config.confidence,
            iou=self.config.iou,
            imgsz=self.config.image_size,
            device=self.config.device,
            verbose=False,
        )[0]
        found = sv.Detections.from_ultralytics(result)
        confidence = found.confidence if found.confidence is not None else np.ones(len(found))
        return person_detections(found.xyxy, confidence)


# --- SSDLite (shipped ONNX) ----------------------------------------------------------------

SSDLITE = "ssdlite-person"


class DetectorCard(BaseModel):
    """The card of a shipped detector (``models/detectors/<name>.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    file: str
    sha256: str
    bytes: int
    source: str
    licence: str
    conversion: str
    input: str
    outputs: str


def shipped_detector_path(name: str = SSDLITE) -> Path:
    """The shipped detector's ONNX, checked against its card's SHA-256."""
    from reid_core.zoo import carded_file, models_dir

    card_path = models_dir() / "detectors" / f"{name}.json"
    if not card_path.is_file():
        raise DetectorError(f"no shipped detector {name!r}: {card_path} does not exist")
    card = DetectorCard.model_validate_json(card_path.read_text())
    try:
        return carded_file(card_path, card.file, card.sha256)
    except (FileNotFoundError, ValueError) as error:
        raise DetectorError(str(error)) from None


class SsdliteDetector:
    """SSDLite person detector (TF object-detection graph as ONNX): the frame, resized to
    ``input_size``² RGB, in; boxes (normalised y1, x1, y2, x2), scores and COCO classes out,
    non-maximum suppression done inside the graph."""

    def __init__(self, config: SsdliteDetectorConfig) -> None:
        import onnxruntime as ort

        self.config = config
        path = Path(config.model) if config.model is not None else shipped_detector_path()
        if not path.is_file():
            raise DetectorError(f"ssdlite model not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own types for a bad file
            raise DetectorError(
                f"onnxruntime cannot load the ssdlite model {path}: {error}"
            ) from None
        self.input_name = self.session.get_inputs()[0].name
        self.classes = np.asarray(config.classes, dtype=np.float32)

    def detect(self, image: np.ndarray, index: int) -> sv.Detections:
        height, width = image.shape[:2]
        side = self.config.input_size
        rgb = cv2.cvtColor(cv2.resize(image, (side, side)), cv2.COLOR_BGR2RGB)
        count, scores, boxes, classes = self.session.run(None, {self.input_name: rgb[None]})
        n = int(count[0])
        scores, boxes, classes = scores[0, :n], boxes[0, :n], classes[0, :n]
        keep = (scores >= self.config.score_threshold) & np.isin(classes, self.classes)
        y1, x1, y2, x2 = (boxes[keep] * [height, width, height, width]).T
        xyxy = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32).reshape(-1, 4)
        return person_detections(xyxy, scores[keep].astype(np.float32))


# --- registry ------------------------------------------------------------------------------


def _ground_truth(config: Any, camera: CameraConfig, _: Path) -> Detector:
    path = camera.ground_truth_path()
    if path is None:
        raise DetectorError(f"camera {camera.id!r}: the ground_truth detector needs a gt.txt")
    return GroundTruthDetector(path, config.min_visibility)


DETECTORS: dict[str, Callable[[Any, CameraConfig, Path], Detector]] = {
    "yolo": lambda config, camera, work_dir: YoloDetector(config, work_dir / "ultralytics"),
    "ssdlite": lambda config, camera, work_dir: SsdliteDetector(config),
    "background_subtraction": lambda config, camera, work_dir: BackgroundSubtractionDetector(
        config
    ),
    "ground_truth": _ground_truth,
}


def build_detector(config: DetectorConfig, camera: CameraConfig, work_dir: Path) -> Detector:
    """The detector named in cams.yaml for one camera; ``work_dir`` holds run-local state
    (ultralytics' settings folder)."""
    factory = DETECTORS.get(config.name)
    if factory is None:
        raise DetectorError(
            f"unknown detector {config.name!r}; valid detectors: {', '.join(DETECTORS)}"
        )
    return factory(config, camera, work_dir)
