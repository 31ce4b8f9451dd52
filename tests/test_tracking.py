"""Trackers (stream/tracking.py): the `trackers` library's ByteTrack / BoT-SORT / OC-SORT keep
ground-truth people on consistent ids, report track ends once, and take cams.yaml options."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from stream.config import BoTSORTConfig, ByteTrackConfig, OCSORTConfig
from stream.detectors import GroundTruthDetector, read_mot_file
from stream.mtmc import Predictions, prediction_lines, score_mot
from stream.tracking import TRACKERS, build_tracker, parse_tracker_config


def track_sequence(tracker_spec: str, gt_path: Path, fps: float) -> tuple[dict, list, list]:
    """Track the ground-truth boxes of a sequence; returns its metrics, ended and seen ids."""
    detector = GroundTruthDetector(gt_path)
    truth = read_mot_file(gt_path)
    tracker = build_tracker(tracker_spec, fps)
    frames, ids, boxes, ended, seen = [], [], [], [], set()
    for index in range(int(truth.frame.max())):
        update = tracker.update(
            detector.detect(np.zeros((1, 1, 3), np.uint8), index), None, index / fps
        )
        assert np.all(update.tracked.tracker_id >= 0)  # unconfirmed boxes are left out
        frames += [index] * len(update.tracked)
        ids += update.tracked.tracker_id.tolist()
        boxes += update.tracked.xyxy.tolist()
        seen |= set(update.tracked.tracker_id.tolist())
        ended += update.ended
    ended += tracker.finish()
    pred = Predictions(
        np.array(frames),
        np.array(ids),
        np.array(ids),
        np.array(boxes).reshape(-1, 4),
        np.ones(len(frames)),
    )
    metrics = score_mot(truth.to_mot17_lines(), prediction_lines(pred, pred.track_id))
    return metrics, ended, sorted(seen)


@pytest.mark.parametrize("name", ["bytetrack", "botsort", "ocsort"])
def test_ground_truth_boxes_keep_consistent_ids(scene: Path, name: str) -> None:
    for camera in ("cam1", "cam2"):
        metrics, ended, seen = track_sequence(name, scene / camera / "gt" / "gt.txt", 10.0)
        assert metrics["IDF1"] >= 0.9, (camera, metrics)
        assert metrics["IDSW"] <= 1
        assert sorted(ended) == seen  # every track ends exactly once


def test_tud_campus_ground_truth_boxes(tud_campus: Path) -> None:
    metrics, _, _ = track_sequence("bytetrack", tud_campus / "gt" / "gt.txt", 25.0)
    assert metrics["IDF1"] >= 0.95  # shared/data README: 0.989 with default settings
    assert metrics["MOTA"] >= 0.9


def test_config_fields_become_the_library_parameters() -> None:
    """Every field reaches the library: as itself, or (times in seconds) as its frame count."""
    for config in (ByteTrackConfig, BoTSORTConfig, OCSORTConfig):
        name = config.model_fields["name"].annotation.__args__[0]
        parameters = inspect.signature(TRACKERS[name].__init__).parameters
        options = config(name=name).library_options()
        assert set(options) <= set(parameters), (name, set(options) - set(parameters))
        assert len(options) == len(config.model_fields) - 1  # all but the name


def test_tracker_by_name_and_wrong_name_lists_valid_ones() -> None:
    config = parse_tracker_config({"name": "ocsort", "delta_t": 2})
    assert isinstance(config, OCSORTConfig) and config.delta_t == 2
    tracker = build_tracker(config, 30.0)
    assert tracker._tracker.delta_t == 2
    with pytest.raises(ValueError) as caught:
        parse_tracker_config("deepsort")
    for name in TRACKERS:
        assert f"'{name}'" in str(caught.value)


@pytest.mark.parametrize("fps", [7.0, 10.0, 25.0, 30.0])
def test_tracker_times_hold_at_any_frame_rate(fps: float) -> None:
    """One walker hidden for 0.6 s keeps its track, hidden for 1.6 s gets a new one (lost_track_s
    = 1 s) — at every rate; a track is confirmed after 2 frames of detections."""
    import supervision as sv

    tracker = build_tracker(ByteTrackConfig(name="bytetrack"), fps)
    options = ByteTrackConfig(name="bytetrack").library_options()
    assert options["lost_track_buffer"] == 30  # the library's unit: frames at 30 FPS = 1 s

    def run(seconds: float, visible: bool, t0: float) -> tuple[list[set[int]], float]:
        seen = []
        for i in range(round(seconds * fps)):
            t = t0 + i / fps
            x = 100 + 40 * t  # 40 px/s
            box = np.array([[x, 100, x + 40, 220]], dtype=np.float32)
            detections = sv.Detections(xyxy=box if visible else np.empty((0, 4), np.float32))
            if visible:
                detections.confidence = np.array([0.9], dtype=np.float32)
                detections.class_id = np.array([0])
            else:
                detections.confidence = np.empty(0, np.float32)
                detections.class_id = np.empty(0, int)
            seen.append(set(tracker.update(detections, None, t).tracked.tracker_id.tolist()))
        return seen, t0 + round(seconds * fps) / fps

    first, t = run(2.0, True, 0.0)
    assert next(i for i, ids in enumerate(first) if ids) == 1  # confirmed at its 2nd frame
    track = next(iter(first[-1]))
    _, t = run(0.6, False, t)
    back, t = run(1.0, True, t)
    assert track in set().union(*back)  # a short occlusion: the same track
    _, t = run(1.6, False, t)
    later, t = run(1.0, True, t)
    assert track not in set().union(*later) and set().union(*later)  # too long: a new track
