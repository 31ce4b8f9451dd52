"""cams.yaml schema (stream/config.py): the synthetic file loads, and every bad input names the
file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.config import (
    CamsConfigError,
    GroundTruthDetectorConfig,
    ImagesSourceConfig,
    SsdliteDetectorConfig,
    StreamSourceConfig,
    VideoSourceConfig,
    WebcamSourceConfig,
    load_cams_config,
)
from stream.gallery import GalleryConfig

CAMS_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "cams"


def write(folder: Path, text: str) -> Path:
    path = folder / "cams.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(CamsConfigError) as caught:
        load_cams_config(path)
    return str(caught.value)


def test_synthetic_cams_yaml_loads_with_paths_next_to_it(scene: Path) -> None:
    config = load_cams_config(scene / "cams.yaml")
    assert [c.id for c in config.cameras] == ["cam1", "cam2"]
    first = config.cameras[0]
    assert isinstance(first.source, VideoSourceConfig)
    assert first.source.path == scene.resolve() / "cam1" / "video.mp4"
    assert first.ground_truth_path() == scene.resolve() / "cam1" / "gt" / "gt.txt"
    assert first.fps == 10
    assert isinstance(config.detector, GroundTruthDetectorConfig)
    assert config.tracker.name == "bytetrack"
    assert config.workers.num_workers == 1


def test_unknown_key_and_wrong_type_name_key_and_line(scene: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"cameras:\n"
        f"  - id: cam1\n"
        f"    source: {scene}/cam1/video.mp4\n"
        f"    fps: fast\n"
        f"    colour: red\n"
        f"tracker:\n"
        f"  name: bytetrack\n"
        f"  track_activation: 0.2\n",
    )
    message = error_of(path)
    assert f"{path}:4: cameras[0].fps" in message and "'fast'" in message
    assert f"{path}:5: cameras[0].colour: unknown key 'colour'" in message
    assert f"{path}:8: tracker.track_activation: unknown key" in message


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cameras:\n  - id: cam1\n    source: [unclosed\n  detector: x\n")
    message = error_of(path)
    assert message.startswith(f"{path}:")
    line = int(message.split(":")[1])
    assert 3 <= line <= 5
    assert "malformed YAML" in message


def test_missing_video_is_named(scene: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"cameras:\n  - id: cam1\n    source: {{type: video, path: {scene}/cam9/video.mp4}}\n",
    )
    message = error_of(path)
    assert f"{path}:3: cameras[0].source.path: file not found: {scene}/cam9/video.mp4" in message


def test_source_shorthands_and_wrong_source_type(scene: Path, tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    path = write(
        tmp_path,
        "cameras:\n"
        "  - {id: web, source: 0}\n"
        "  - {id: street, source: 'rtsp://10.0.0.2/stream1'}\n"
        "  - id: folder\n"
        "    source: {type: images, path: frames, fps: 5}\n"
        f"  - {{id: file, source: {scene}/cam2/video.mp4, roi: [0, 0, 100, 50]}}\n",
    )
    config = load_cams_config(path)
    web, street, folder, file = (c.source for c in config.cameras)
    assert isinstance(web, WebcamSourceConfig) and web.index == 0
    assert isinstance(street, StreamSourceConfig) and street.url.startswith("rtsp://")
    assert isinstance(folder, ImagesSourceConfig) and folder.path == tmp_path / "frames"
    assert isinstance(file, VideoSourceConfig)
    assert config.cameras[3].roi == [(0, 0), (100, 0), (100, 50), (0, 50)]
    assert isinstance(config.detector, SsdliteDetectorConfig)  # the default: real footage

    bad = write(tmp_path, "cameras:\n  - id: cam1\n    source: {type: ftp, path: x}\n")
    message = error_of(bad)
    assert f"{bad}:3: cameras[0].source" in message
    for valid in ("'video'", "'rtsp'", "'webcam'", "'images'", "'synthetic'"):
        assert valid in message


def test_ground_truth_detector_needs_a_ground_truth(scene: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"cameras:\n  - id: cam1\n    source: {scene}/cam1/video.mp4\n"
        f"  - id: cam1\n    source: {scene}/cam2/video.mp4\n"
        "detector: {name: ground_truth}\n",
    )
    message = error_of(path)
    assert f"{path}:2: cameras[0].ground_truth:" in message
    assert "needs a MOTChallenge gt.txt" in message


def test_duplicate_camera_ids_are_refused(scene: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"cameras:\n  - id: cam1\n    source: {scene}/cam1/video.mp4\n"
        f"  - id: cam1\n    source: {scene}/cam2/video.mp4\n",
    )
    assert f"{path}:4: cameras[1].id: camera id 'cam1' is used twice" in error_of(path)


def test_gallery_is_a_gallery_config_and_workers_are_checked(scene: Path, tmp_path: Path) -> None:
    head = f"cameras:\n  - id: cam1\n    source: {scene}/cam1/video.mp4\n"
    path = write(tmp_path, head + "gallery:\n  path: gallery\n  threshold: 0.4\n")
    gallery = load_cams_config(path).gallery_config()
    assert isinstance(gallery, GalleryConfig)
    assert gallery.path == tmp_path / "gallery"
    assert gallery.threshold == 0.4

    # matching settings without a location (`--set gallery.threshold=0.5` on a cams.yaml that
    # names no gallery): the run keeps its gallery in the run folder
    bare = load_cams_config(write(tmp_path, head), {"gallery": {"threshold": 0.5}})
    assert bare.gallery == {"threshold": 0.5} and bare.gallery_config() is None
    bad_gallery = write(tmp_path, head + "gallery:\n  path: g\n  vectors: 3\n")
    assert f"{bad_gallery}:6: gallery.vectors: unknown key" in error_of(bad_gallery)

    bad_workers = write(
        tmp_path, head + "workers:\n  count: 2\n  crop_endpoints: ['tcp://127.0.0.1:5560']\n"
    )
    message = error_of(bad_workers)
    assert "workers.assignment_endpoints" in message
    assert "need both crop_endpoints and assignment_endpoints" in message


def test_yolo_weights_missing_says_how_to_provide_them(scene: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"cameras:\n  - id: cam1\n    source: {scene}/cam1/video.mp4\n"
        "detector:\n  name: yolo\n  weights: models/yolo11n.pt\n",
    )
    message = error_of(path)
    assert f"{path}:6: detector.weights: YOLO weights file not found" in message
    assert str(tmp_path / "models" / "yolo11n.pt") in message
    assert "cannot download" in message and "background_subtraction" in message


def test_shipped_reference_cams_config_loads() -> None:
    reference = load_cams_config(CAMS_CONFIGS / "reference.yaml")
    assert [c.id for c in reference.cameras] == ["entrance", "lobby", "desk"]
    assert reference.camera_nice == 10
    assert reference.gallery_config().path == (CAMS_CONFIGS / "../../runs/gallery").resolve()
    try:
        demo = load_cams_config(CAMS_CONFIGS / "synthetic_demo.yaml")
    except CamsConfigError as error:  # `stream demo` has not rendered its scene here
        assert "file not found" in str(error) and "runs/demo/scene/cam1/video.mp4" in str(error)
    else:
        assert [c.id for c in demo.cameras] == ["cam1", "cam2", "cam3"]


def test_shipped_tud_campus_cams_config_loads(tud_campus: Path) -> None:
    tud = load_cams_config(CAMS_CONFIGS / "tud_campus.yaml")
    assert tud.cameras[0].ground_truth_path() == (tud_campus / "gt" / "gt.txt").resolve()


def test_the_default_detector_suits_the_sources(tmp_path: Path) -> None:
    """Real sources get the shipped SSDLite; rendered synthetic scenes background subtraction
    (SSDLite finds 19 % of their people); a named detector always wins."""
    (tmp_path / "cam1.mp4").write_bytes(b"")
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "gt.txt").write_text("1,1,0,0,10,20,1,1,1\n")
    real = "cameras:\n  - id: a\n    source: cam1.mp4\n"
    synthetic = "cameras:\n  - id: a\n    source: {type: synthetic, path: cam1.mp4}\n"
    assert load_cams_config(write(tmp_path, real)).detector.name == "ssdlite"
    assert load_cams_config(write(tmp_path, synthetic)).detector.name == "background_subtraction"
    named = synthetic + "detector: {name: ssdlite}\n"
    assert load_cams_config(write(tmp_path, named)).detector.name == "ssdlite"


def test_set_overrides_a_cams_yaml_value_by_its_dotted_path(tmp_path: Path) -> None:
    from reid_core.config import parse_overrides

    (tmp_path / "cam1.mp4").write_bytes(b"")
    path = write(tmp_path, "cameras:\n  - id: a\n    source: cam1.mp4\ncrops: {min_width: 20}\n")
    config = load_cams_config(
        path, parse_overrides(["crops.every_n_frames=3", "tracker.name=ocsort"])
    )
    assert config.crops.every_n_frames == 3 and config.crops.min_width == 20  # merged, not replaced
    assert config.tracker.name == "ocsort"
    with pytest.raises(CamsConfigError, match=r"cams.yaml with --set:\d+: crops.every_n_frames"):
        load_cams_config(path, parse_overrides(["crops.every_n_frames=-1"]))
    # a detector setting tunes the default detector the file does not name
    tuned = load_cams_config(path, parse_overrides(["detector.score_threshold=0.3"]))
    assert tuned.detector.name == "ssdlite" and tuned.detector.score_threshold == 0.3
