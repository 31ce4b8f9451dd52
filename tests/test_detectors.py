"""Detectors (stream/detectors.py): MOTChallenge ground-truth rows, background subtraction on a
synthetic video (recall measured against its ground truth), YOLO kept offline, the shipped
SSDLite on real footage."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from reid_core.zoo import file_sha256
from stream.config import BackgroundSubtractionConfig, SsdliteDetectorConfig, YoloDetectorConfig
from stream.detectors import (
    PERSON_CLASS_ID,
    VISIBILITY,
    BackgroundSubtractionDetector,
    DetectorError,
    GroundTruthDetector,
    SsdliteDetector,
    YoloDetector,
    matched_boxes,
    prepare_offline_ultralytics,
    read_mot_file,
    shipped_detector_path,
)
from stream.sources import VideoFileSource
from trainer.synth.video import VideoConfig, write_videos


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 640×360 cameras, 4 people walking, 4 s: people big enough to segment."""
    out = tmp_path_factory.mktemp("detectors") / "synth"
    write_videos(VideoConfig(cameras=2, people=4, seconds=4), out, workers=1, show_progress=False)
    return out


def test_ground_truth_rows_mot17(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text(
        "1,7,11,21,10,30,1,1,1.0\n"  # kept: x,y are 1-based → xyxy (10, 20, 20, 50)
        "1,8,50,60,5,5,0,1,1.0\n"  # conf 0: ignored
        "1,9,70,80,5,5,1,7,1.0\n"  # class 7 (static person): not a pedestrian
        "2,7,12,21,10,30,1,1,0.2\n"  # kept, poorly visible
    )
    detector = GroundTruthDetector(gt)
    first = detector.detect(np.zeros((100, 100, 3), np.uint8), 0)
    assert first.xyxy.tolist() == [[10, 20, 20, 50]]
    assert first.confidence.tolist() == [1.0] and first.class_id.tolist() == [PERSON_CLASS_ID]
    second = detector.detect(np.zeros((1, 1, 3), np.uint8), 1)
    assert second.data[VISIBILITY].tolist() == pytest.approx([0.2])
    assert len(detector.detect(np.zeros((1, 1, 3), np.uint8), 5)) == 0
    visible_only = GroundTruthDetector(gt, min_visibility=0.5)
    assert len(visible_only.detect(np.zeros((1, 1, 3), np.uint8), 1)) == 0


def test_ground_truth_rows_mot15_and_bad_rows(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,399,182,121,229,1,-1,-1,-1\n1,2,282,201,92,184,1,-1,-1,-1\n")
    rows = read_mot_file(gt)
    assert rows.layout == "mot15" and rows.classes.tolist() == [1, 1]  # world x is not a class
    assert len(GroundTruthDetector(gt).detect(np.zeros((1, 1, 3), np.uint8), 0)) == 2
    assert rows.to_mot17_lines()[0].startswith("1,1,399.00,182.00,121.00,229.00,1,1,")
    gt.write_text("1,1,399,182,121,229,1,1,1\n2,1,4OO,182,121,229,1,1,1\n")
    with pytest.raises(DetectorError, match=r"gt.txt:2: not a row of numbers"):
        read_mot_file(gt)


def test_ground_truth_detector_matches_the_synthetic_gt_file(scene: Path) -> None:
    gt_path = scene / "cam1" / "gt" / "gt.txt"
    first_rows = [line.split(",") for line in gt_path.read_text().splitlines() if line[:2] == "1,"]
    found = GroundTruthDetector(gt_path).detect(np.zeros((360, 640, 3), np.uint8), 0)
    expected = sorted(
        [
            float(r[2]) - 1,
            float(r[3]) - 1,
            float(r[2]) - 1 + float(r[4]),
            float(r[3]) - 1 + float(r[5]),
        ]
        for r in first_rows
    )
    assert sorted(found.xyxy.tolist()) == expected


def detection_scores(scene: Path, config: BackgroundSubtractionConfig) -> tuple[float, float]:
    """Recall and precision at IoU 0.5 over people at least half visible and min_height tall
    (after the warm-up), with one-to-one matching per frame."""
    hits = truths = found = 0
    for camera in ("cam1", "cam2"):
        gt = read_mot_file(scene / camera / "gt" / "gt.txt").scored()
        detector = BackgroundSubtractionDetector(config)
        source = VideoFileSource(scene / camera / "video.mp4")
        for frame in source.frames():
            detections = detector.detect(frame.image, frame.index)
            if frame.index < config.warmup_frames:
                assert len(detections) == 0
                continue
            height = gt.xyxy[:, 3] - gt.xyxy[:, 1]
            mask = (gt.frame == frame.index + 1) & (gt.visibility >= 0.5)
            truth = gt.xyxy[mask & (height >= config.min_height)]
            hits += matched_boxes(truth, detections.xyxy)
            truths += len(truth)
            found += len(detections)
        source.close()
    assert truths > 100
    return hits / truths, hits / found


def test_background_subtraction_finds_the_walking_people(scene: Path) -> None:
    config = BackgroundSubtractionConfig(name="background_subtraction")
    recall, precision = detection_scores(scene, config)
    # measured on this scene: recall 0.86, precision 0.89
    assert recall >= 0.7
    assert precision >= 0.7


def test_yolo_missing_weights_is_a_clear_error_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a missing weights file must not reach for the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    config = YoloDetectorConfig.model_construct(
        name="yolo",
        weights=str(tmp_path / "yolo11n.onnx"),
        confidence=0.25,
        iou=0.7,
        image_size=640,
        device="cpu",
        allow_pickle=False,
    )
    with pytest.raises(DetectorError) as caught:
        YoloDetector(config, tmp_path / "ultralytics")
    message = str(caught.value)
    assert str(tmp_path / "yolo11n.onnx") in message
    assert "cannot download" in message and "format=onnx" in message


def test_yolo_random_architecture_runs_the_code_path(tmp_path: Path) -> None:
    config = YoloDetectorConfig(name="yolo", weights="yolo11n.yaml", image_size=160)
    detector = YoloDetector(config, tmp_path / "ultralytics")
    found = detector.detect(np.full((120, 160, 3), 127, np.uint8), 0)
    assert found.xyxy.shape[1] == 4
    assert len(found.confidence) == len(found) == len(found.class_id)
    assert set(found.class_id.tolist()) <= {PERSON_CLASS_ID}


def test_pickled_yolo_weights_need_allow_pickle(tmp_path: Path) -> None:
    """A .pt file runs code when unpickled: refused unless the config says it is trusted."""
    weights = tmp_path / "yolo11n.pt"
    weights.write_bytes(b"a pickle would run code here")
    with pytest.raises(ValueError, match=r"weights.*pickled PyTorch file.*format=onnx"):
        YoloDetectorConfig(name="yolo", weights=str(weights))
    trusted = YoloDetectorConfig(name="yolo", weights=str(weights), allow_pickle=True)
    assert trusted.allow_pickle
    built_in_code = YoloDetectorConfig.model_construct(
        name="yolo", weights=str(weights), allow_pickle=False
    )
    with pytest.raises(DetectorError, match="allow_pickle"):
        YoloDetector(built_in_code, tmp_path / "ultralytics")


@pytest.mark.parametrize("export_format", ["onnx", "torchscript"])
def test_exported_yolo_models_run_as_detectors(
    tmp_path: Path, export_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented way to bring YOLO weights: an exported file, no pickle loaded. (Random
    weights named like COCO's classes: the export carries the names, as a real one does.)"""
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)  # ultralytics exports beside the working directory
    prepare_offline_ultralytics(tmp_path / "ultralytics")
    model = YOLO("yolo11n.yaml")
    model.model.names = {0: "person", **{i: f"class{i}" for i in range(1, 80)}}
    options = {"simplify": False} if export_format == "onnx" else {}  # onnxslim: not offline
    path = Path(model.export(format=export_format, imgsz=160, **options))
    config = YoloDetectorConfig(name="yolo", weights=str(path), image_size=160)
    detector = YoloDetector(config, tmp_path / "ultralytics")
    assert detector.person_class == PERSON_CLASS_ID  # from the export's class names
    found = detector.detect(np.full((120, 160, 3), 127, np.uint8), 0)
    assert found.xyxy.shape[1] == 4 and set(found.class_id.tolist()) <= {PERSON_CLASS_ID}


def test_the_shipped_ssdlite_finds_the_people_of_a_real_street(tud_campus: Path) -> None:
    """TUD-Campus (MOT15, real footage): at IoU 0.5 the bundled detector finds ≥ 60 % of the
    people the ground truth lists on three frames, and most of what it reports is a person."""
    detector = SsdliteDetector(SsdliteDetectorConfig(name="ssdlite"))
    gt = read_mot_file(tud_campus / "gt" / "gt.txt")
    hits = truths = found = 0
    for frame in VideoFileSource(tud_campus / "TUD-Campus.mp4").frames():
        if frame.index not in (0, 35, 70):
            continue
        truth = gt.xyxy[gt.frame == frame.index + 1]
        detections = detector.detect(frame.image, frame.index)
        assert set(detections.class_id.tolist()) <= {PERSON_CLASS_ID}
        hits += matched_boxes(truth, detections.xyxy)
        truths, found = truths + len(truth), found + len(detections)
    assert truths >= 15
    assert hits / truths >= 0.6 and hits / found >= 0.7, (hits, truths, found)


def test_the_shipped_ssdlite_is_digest_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = shipped_detector_path()
    card = json.loads(shipped.with_suffix(".json").read_text())
    assert card["sha256"] == file_sha256(shipped) and "MIT" in card["licence"]
    assert (shipped.parent / "ssdlite-person.LICENSE").is_file()
    altered = tmp_path / "detectors"
    altered.mkdir()
    (altered / "ssdlite-person.json").write_text(json.dumps(card))
    (altered / "ssdlite-person.onnx").write_bytes(shipped.read_bytes()[:-1] + b"\0")
    monkeypatch.setenv("OCCLUREID_MODELS", str(tmp_path))
    with pytest.raises(DetectorError, match="does not match its card"):
        SsdliteDetector(SsdliteDetectorConfig(name="ssdlite"))


def test_matched_boxes_is_one_to_one_at_iou_half() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=np.float32)
    found = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 24, 10]], dtype=np.float32)
    assert matched_boxes(truth, found) == 1  # two boxes on one person count once; IoU 0.4: no
    assert matched_boxes(truth, found, min_iou=0.4) == 2
    assert matched_boxes(truth, found[:0]) == 0
