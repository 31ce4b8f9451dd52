"""The ``cams.yaml`` schema of `stream run` (SPEC §5, issue 7): cameras, detector, tracker, crop
policy, workers, gallery and outputs.

Every model forbids unknown keys. `load_cams_config` reports each problem as
``FILE:LINE: key.path: message``: it composes the YAML into nodes to map a pydantic error location
to the line it came from. Relative paths resolve against the folder of the YAML file. The file
`trainer synth video` writes (cameras with ``source``/``ground_truth``/``fps``, ``detector:
{name: ground_truth}``, ``tracker: {name: bytetrack}``) is valid as it is.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reid_core.config import ConfigPath, deep_merge, read_text_file
from stream.security import CurveConfig

STREAM_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
ZMQ_ENDPOINT = re.compile(r"^(tcp|ipc|inproc)://.+")
YOLO_WEIGHTS_HELP = (
    "this machine cannot download weights: export an ultralytics YOLO model to ONNX (`yolo "
    "export model=yolo11n.pt format=onnx`) on a machine that has it, put the .onnx next to "
    "cams.yaml and name it in `detector: {name: yolo, weights: PATH}`; or use `detector: "
    "{name: background_subtraction}`, which needs no weights"
)

PositiveFloat = Annotated[float, Field(gt=0.0)]
PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Loc = tuple[str | int, ...]


class CamsConfigError(ValueError):
    """A cams.yaml problem; the message names the file, line and key."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _problem(loc: Loc, message: str) -> PydanticCustomError:
    """A validator error that points at ``loc`` (relative to the model being validated)."""
    return PydanticCustomError("cams_config", "{message}", {"message": message, "loc": loc})


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context or {}
    return context.get("base_dir")


def _resolve(path: Path, info: ValidationInfo) -> Path:
    """Relative paths in cams.yaml are relative to the YAML file's folder."""
    path = path.expanduser()
    base = _base_dir(info)
    return path if path.is_absolute() or base is None else (Path(base) / path).resolve()


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


def _existing_dir(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if not path.is_dir():
        raise ValueError(f"folder not found: {path}")
    return path


ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
ExistingDir = Annotated[Path, AfterValidator(_existing_dir)]


# --- sources -------------------------------------------------------------------------------


class ReconnectConfig(StrictModel):
    """Exponential back-off for live sources: wait initial, 2×initial, ... up to max_backoff_s."""

    initial_backoff_s: PositiveFloat = 0.5
    max_backoff_s: PositiveFloat = 10.0
    max_attempts: Annotated[int, Field(ge=0)] | None = Field(
        None, description="reconnect attempts in a row before giving up; None retries forever"
    )


class ReplayOptions(StrictModel):
    """How a file source is played: as fast as the stage goes (default), or like a camera."""

    loop: bool = Field(
        False,
        description="play again from the start at the end (frame indices restart with each "
        "pass, timestamps run on): a never-ending source for soak tests and demos",
    )
    pace: PositiveFloat | None = Field(
        None,
        description="deliver frames at their timestamps × 1/pace of real time (1.0 = real "
        "time), as a live camera would; None delivers them as fast as they are read",
    )


class VideoSourceConfig(ReplayOptions):
    type: Literal["video"] = "video"
    path: ExistingFile


class SyntheticSourceConfig(ReplayOptions):
    """A `trainer synth video` camera: its video file and its ground truth (default
    ``gt/gt.txt`` beside the video)."""

    type: Literal["synthetic"]
    path: ExistingFile
    ground_truth: ExistingFile | None = None

    @model_validator(mode="after")
    def _ground_truth_beside_video(self) -> SyntheticSourceConfig:
        if self.ground_truth is None:
            default = self.path.parent / "gt" / "gt.txt"
            if not default.is_file():
                raise _problem(("ground_truth",), f"file not found: {default} (and none given)")
            self.ground_truth = default
        return self


LATEST_ONLY = Field(
    True,
    description="read frames on a thread and process the newest one, dropping (and counting) "
    "those processing could not keep up with, so no lag builds up; false processes every frame",
)


class StreamSourceConfig(StrictModel):
    """An RTSP/HTTP(S)/RTMP stream read with OpenCV's FFmpeg backend."""

    type: Literal["rtsp"]
    url: Annotated[str, Field(pattern=STREAM_URL.pattern)]
    reconnect: ReconnectConfig = ReconnectConfig()
    latest_only: bool = LATEST_ONLY


class WebcamSourceConfig(StrictModel):
    type: Literal["webcam"]
    index: Annotated[int, Field(ge=0)]
    reconnect: ReconnectConfig = ReconnectConfig(max_attempts=3)
    latest_only: bool = LATEST_ONLY


class ImagesSourceConfig(ReplayOptions):
    """A folder of images in name order, or a MOTChallenge sequence folder (``seqinfo.ini`` with
    ``imDir``/``frameRate``/``imExt``), whose frame rate then comes from the ini file."""

    type: Literal["images"]
    path: ExistingDir
    fps: PositiveFloat | None = None

    @model_validator(mode="after")
    def _frame_rate_known(self) -> ImagesSourceConfig:
        if self.fps is None and read_seqinfo(self.path) is None:
            raise _problem(
                ("fps",),
                f"{self.path} has no seqinfo.ini: give the image folder's frame rate as 'fps'",
            )
        return self


def read_seqinfo(folder: Path) -> dict[str, str] | None:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``, or None when absent."""
    ini = folder / "seqinfo.ini"
    if not ini.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(ini)
    except configparser.Error as error:
        raise ValueError(f"{ini}: malformed seqinfo.ini: {error}") from None
    if "Sequence" not in parser:
        raise ValueError(f"{ini}: no [Sequence] section")
    return dict(parser["Sequence"])


def _expand_source_shorthand(value: Any, info: ValidationInfo) -> Any:
    """``source: cam1/video.mp4`` (a video, or an image folder), ``source: rtsp://...`` and
    ``source: 0`` (a webcam) are shorthands for the typed mappings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"type": "webcam", "index": value}
    if not isinstance(value, str):
        return value
    if STREAM_URL.match(value):
        return {"type": "rtsp", "url": value}
    if value.isdigit():
        return {"type": "webcam", "index": int(value)}
    kind = "images" if _resolve(Path(value), info).is_dir() else "video"
    return {"type": kind, "path": value}


SourceConfig = Annotated[
    VideoSourceConfig
    | SyntheticSourceConfig
    | StreamSourceConfig
    | WebcamSourceConfig
    | ImagesSourceConfig,
    Field(discriminator="type"),
    BeforeValidator(_expand_source_shorthand),
]


# --- cameras -------------------------------------------------------------------------------


def _box_to_polygon(value: Any) -> Any:
    """A region of interest is a polygon ``[[x, y], ...]``; a box ``[x1, y1, x2, y2]`` is
    accepted and turned into its four corners."""
    if not isinstance(value, list) or not value:
        return value
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        if len(value) != 4:
            raise ValueError(
                f"roi must be a box [x1, y1, x2, y2] or a polygon [[x, y], ...] of at least 3 "
                f"points, got {len(value)} numbers"
            )
        x1, y1, x2, y2 = value
        if not (x1 < x2 and y1 < y2):
            raise ValueError(f"roi box must have x1 < x2 and y1 < y2, got {value}")
        return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
    return value


class CameraConfig(StrictModel):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    source: SourceConfig
    fps: PositiveFloat | None = Field(None, description="frame-rate cap: drops frames by time")
    roi: (
        Annotated[list[tuple[float, float]], BeforeValidator(_box_to_polygon), Field(min_length=3)]
        | None
    ) = Field(None, description="people whose feet are outside this polygon are ignored")
    ground_truth: ExistingFile | None = Field(None, description="MOTChallenge gt.txt")

    def ground_truth_path(self) -> Path | None:
        """The camera's ground truth: given here, by a synthetic source, or by a MOTChallenge
        sequence folder (``gt/gt.txt``)."""
        if self.ground_truth is not None:
            return self.ground_truth
        if isinstance(self.source, SyntheticSourceConfig):
            return self.source.ground_truth
        if isinstance(self.source, ImagesSourceConfig):
            candidate = self.source.path / "gt" / "gt.txt"
            return candidate if candidate.is_file() else None
        return None


# --- detectors -----------------------------------------------------------------------------


class YoloDetectorConfig(StrictModel):
    """ultralytics YOLO, person class only. ``weights``: a local exported model — ``.onnx``
    (onnxruntime) or ``.torchscript`` — or a bare model-architecture name such as
    ``yolo11n.yaml`` (random weights: finds nothing; only for timing the code path).

    A ``.pt`` file is a pickle: loading it runs whatever code it carries. It is refused unless
    ``allow_pickle: true`` says it comes from a source you trust; better, export it once where
    it came from (`yolo export model=yolo11n.pt format=onnx`) and bring the ``.onnx``."""

    name: Literal["yolo"]
    weights: str
    confidence: Fraction = 0.25
    iou: Fraction = 0.7
    image_size: PositiveInt = 640
    device: str = "cpu"
    allow_pickle: bool = Field(
        False, description="load pickled .pt/.pth weights (they can run code): trusted files only"
    )

    @field_validator("weights")
    @classmethod
    def _weights_file_exists(cls, weights: str, info: ValidationInfo) -> str:
        if is_architecture_name(weights):
            return weights
        path = _resolve(Path(weights), info)
        if not path.is_file():
            raise ValueError(f"YOLO weights file not found: {path}; {YOLO_WEIGHTS_HELP}")
        return str(path)

    @model_validator(mode="after")
    def _no_pickle_unless_allowed(self) -> YoloDetectorConfig:
        if is_pickled_weights(self.weights) and not self.allow_pickle:
            raise _problem(("weights",), pickle_refusal(self.weights))
        return self


PICKLE_SUFFIXES = (".pt", ".pth")


def is_pickled_weights(weights: str) -> bool:
    return Path(weights).suffix.lower() in PICKLE_SUFFIXES


def pickle_refusal(weights: str) -> str:
    return (
        f"{weights} is a pickled PyTorch file: loading it runs any code it carries. Export it "
        "once on the machine you got it from (`yolo export model=FILE.pt format=onnx`, or "
        "format=torchscript) and name the .onnx / .torchscript file, or set 'allow_pickle: "
        "true' if you trust this file"
    )


def is_architecture_name(weights: str) -> bool:
    """``yolo11n.yaml``: an architecture ultralytics builds with random weights, offline."""
    return weights.endswith((".yaml", ".yml")) and "/" not in weights and "\\" not in weights


class BackgroundSubtractionConfig(StrictModel):
    """OpenCV MOG2 foreground → morphology → connected components, kept when person-shaped.

    Defaults were tuned on a `trainer synth video` scene (3 cameras, 8 people, 20 s, 640×360):
    recall 0.76 / precision 0.90 at IoU 0.5 on people at least half visible and 24 px tall.
    """

    name: Literal["background_subtraction"]
    history: PositiveInt = Field(200, description="frames MOG2 remembers")
    var_threshold: PositiveFloat = 16.0
    warmup_frames: Annotated[int, Field(ge=0)] = Field(
        5, description="frames while the background model forms; nothing is reported"
    )
    blur: Annotated[int, Field(ge=0, description="Gaussian kernel (odd px), 0 = none")] = 3
    open_kernel: Annotated[int, Field(ge=1, description="1 = no opening")] = 1
    close_kernel: Annotated[tuple[int, int], Field(description="(width, height) px")] = (3, 9)
    min_height: PositiveInt = 24
    max_height_fraction: Fraction = 0.95
    min_aspect: PositiveFloat = Field(1.2, description="height / width")
    max_aspect: PositiveFloat = 6.0
    min_fill: Fraction = Field(0.25, description="foreground share of the box")
    full_fill: Fraction = Field(
        0.6,
        description="fill that scores confidence 1 (the median fill of people's blobs on the "
        "synthetic scene was 0.57, of false blobs 0.41)",
    )

    @field_validator("blur")
    @classmethod
    def _odd_blur(cls, blur: int) -> int:
        if blur and blur % 2 == 0:
            raise ValueError(f"blur must be 0 or an odd kernel size, got {blur}")
        return blur


class SsdliteDetectorConfig(StrictModel):
    """SSDLite-MobileNetV2 (COCO) person detector, the shipped ONNX
    ``models/detectors/ssdlite-person.onnx`` (MIT; converted by scripts/convert_ssdlite.py)
    run with onnxruntime: no weights to bring, ~20 ms a frame on one CPU core."""

    name: Literal["ssdlite"]
    model: ConfigPath | None = Field(
        None, description="an ONNX of the same graph; default: the shipped, digest-checked file"
    )
    score_threshold: Fraction = Field(0.4, description="keep detections scoring at least this")
    input_size: PositiveInt = Field(
        300, description="square side frames are resized to (the graph was trained at 300)"
    )
    classes: list[Annotated[int, Field(ge=1)]] = Field(
        [1], min_length=1, description="COCO class ids kept (1 = person)"
    )
    threads: PositiveInt = Field(1, description="onnxruntime intra-op threads per camera")


class GroundTruthDetectorConfig(StrictModel):
    """Boxes from the camera's MOTChallenge ground truth, to judge the re-ID part alone."""

    name: Literal["ground_truth"]
    min_visibility: Fraction = Field(
        0.0, description="drop rows whose visibility column (MOT17) is below this"
    )


DetectorConfig = Annotated[
    YoloDetectorConfig
    | SsdliteDetectorConfig
    | BackgroundSubtractionConfig
    | GroundTruthDetectorConfig,
    Field(discriminator="name"),
]


# --- trackers (parameters of the `trackers` library's classes, same names) ---------------


LIBRARY_FPS = 30.0  # the `trackers` library counts its lost-track buffer in frames at 30 FPS


class _TrackerCommon(StrictModel):
    """How long a lost track waits is a time (``lost_track_s``), so one setting holds at any
    frame rate: a person walking at 1–1.5 m/s crosses behind another in 0.3–1 s, and past a
    second the motion model's guess drifts more than a box width — hence 1 s, whether the clip
    runs at 7 or 30 FPS. Confirmation stays a frame count (``minimum_consecutive_frames``): it
    rejects a detector's flicker, which lasts a frame at any rate; counted in seconds it cut
    the first 0.2 s of every real track at 25 FPS (TUD-Campus with ground-truth boxes: IDF1
    0.989 -> 0.953, bench/README.md)."""

    lost_track_s: Annotated[float, Field(ge=0.0)] = Field(
        1.0, description="seconds a lost track waits to be re-associated"
    )
    minimum_consecutive_frames: PositiveInt = Field(
        2, description="frames of consecutive detections before a track is confirmed"
    )
    high_conf_det_threshold: Fraction = 0.6

    def library_options(self) -> dict[str, Any]:
        """The `trackers` library's keyword arguments (its buffer counts frames at 30 FPS and
        is turned back into seconds with the frames' timestamps)."""
        options = self.model_dump(exclude={"name", "lost_track_s"})
        options["lost_track_buffer"] = round(self.lost_track_s * LIBRARY_FPS)
        return options


class ByteTrackConfig(_TrackerCommon):
    name: Literal["bytetrack"]
    track_activation_threshold: Fraction = 0.5
    minimum_iou_threshold: Fraction = 0.1


class BoTSORTConfig(_TrackerCommon):
    name: Literal["botsort"]
    track_activation_threshold: Fraction = 0.5
    minimum_iou_threshold_first_assoc: Fraction = 0.2
    minimum_iou_threshold_second_assoc: Fraction = 0.5
    minimum_iou_threshold_unconfirmed_assoc: Fraction = 0.3
    enable_cmc: bool = Field(False, description="camera-motion compensation (moving cameras)")


class OCSORTConfig(_TrackerCommon):
    name: Literal["ocsort"]
    minimum_consecutive_frames: PositiveInt = 3
    minimum_iou_threshold: Fraction = 0.3
    direction_consistency_weight: Annotated[float, Field(ge=0.0)] = 0.2
    delta_t: PositiveInt = 3


TrackerConfig = Annotated[
    ByteTrackConfig | BoTSORTConfig | OCSORTConfig, Field(discriminator="name")
]


# --- crop policy, workers, outputs -------------------------------------------------------


class CropPolicy(StrictModel):
    """Which tracked boxes become crops for the worker (SPEC §7: embed per tracklet)."""

    min_width: PositiveInt = 16
    min_height: PositiveInt = 32
    border_margin: Annotated[int, Field(ge=0, description="px; closer = cut by the border")] = 2
    min_score: Fraction = 0.3
    min_visibility: Fraction = Field(
        0.5,
        description="boxes a detector reports as mostly hidden (the ground truth's visibility "
        "column) are not sent: their crop shows the occluder",
    )
    every_n_frames: PositiveInt = Field(5, description="per track, in processed frames")
    max_per_track: PositiveInt = 16
    fallback_every_n_frames: PositiveInt | None = Field(
        20,
        description="a track none of whose boxes has passed the size / visibility / border "
        "rules yet sends its best box (uncut first, then area × score × visibility) of every "
        "this many processed frames, and of the last stretch at its end, so a far-away, "
        "edge-standing or mostly hidden person still gets an identity; its first passing box "
        "ends this. None: such tracks send nothing and keep their own id",
    )
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 90
    thumbnail_height: PositiveInt = 128
    thumbnail_quality: Annotated[int, Field(ge=1, le=100)] = 85


class WorkersConfig(StrictModel):
    """How camera stages reach the feature worker(s). Without endpoints `stream run` starts
    ``count`` embedded workers; with them, the workers are external processes."""

    count: PositiveInt | None = None
    crop_endpoints: list[Annotated[str, Field(pattern=ZMQ_ENDPOINT.pattern)]] = []
    assignment_endpoints: list[Annotated[str, Field(pattern=ZMQ_ENDPOINT.pattern)]] = []
    queue_size: PositiveInt = Field(256, description="crops waiting per worker; oldest dropped")
    send_hwm: PositiveInt = Field(8, description="ZeroMQ send high-water mark per socket")
    flush_timeout_s: Annotated[float, Field(ge=0.0)] = Field(
        2.0, description="at the end of a source, how long to wait for the queue to drain"
    )
    curve: CurveConfig = Field(
        CurveConfig(), description="CurveZMQ client keys of the camera stages (stream.security)"
    )
    restart_limit: Annotated[int, Field(ge=0)] = Field(
        5, description="embedded workers: how often `stream run` restarts one that died"
    )
    restart_backoff_s: Annotated[float, Field(ge=0.0)] = Field(
        1.0,
        description="embedded workers: wait before the first restart, doubled after each "
        "(at most 30 s), so a worker that dies at once does not spin",
    )

    @field_validator("curve")
    @classmethod
    def _resolve_key_paths(cls, curve: CurveConfig, info: ValidationInfo) -> CurveConfig:
        base = _base_dir(info)
        return curve if base is None else curve.resolve(Path(base))

    @model_validator(mode="after")
    def _endpoints_agree(self) -> WorkersConfig:
        if bool(self.crop_endpoints) != bool(self.assignment_endpoints):
            raise _problem(
                ("assignment_endpoints" if self.crop_endpoints else "crop_endpoints",),
                "external workers need both crop_endpoints and assignment_endpoints",
            )
        if self.crop_endpoints and self.count not in (None, len(self.crop_endpoints)):
            raise _problem(
                ("count",),
                f"count is {self.count} but {len(self.crop_endpoints)} crop_endpoints are given",
            )
        return self

    @property
    def num_workers(self) -> int:
        return len(self.crop_endpoints) or self.count or 1


class OutputsConfig(StrictModel):
    """What a run writes. ``relabel_video``: at the end, draw each file camera's video again
    with every box's final global id and a ``trail_s`` trail (`stream.relabel`)."""

    video: bool = True
    relabel_video: bool = True
    trail_s: Annotated[float, Field(ge=0.0)] = 2.0
    thumbnails: bool = True
    events: bool = True
    video_fourcc: Annotated[str, Field(min_length=4, max_length=4)] = "mp4v"


def names_gallery_location(gallery: dict[str, Any]) -> bool:
    """Whether a gallery mapping says where the gallery lives (an Edge ``path`` or a server
    ``url``); one that does not holds matching settings for the run folder's own shard."""
    return gallery.get("path") is not None or gallery.get("url") is not None


class CamsConfig(StrictModel):
    """The whole ``cams.yaml``. ``worker`` is passed as it is to the worker's own config model
    (`stream.worker_config.WorkerConfig`); ``gallery`` is checked by, and `gallery_config`
    returns, a `stream.gallery.GalleryConfig`."""

    cameras: Annotated[list[CameraConfig], Field(min_length=1)]
    detector: DetectorConfig = Field(
        SsdliteDetectorConfig(name="ssdlite"),
        description="default: the shipped SSDLite person detector (real footage, no weights to "
        "bring), or background_subtraction when every camera is a rendered (synthetic) scene, "
        "whose people SSDLite mostly misses (recall 0.19); ground_truth judges re-ID alone",
    )
    tracker: TrackerConfig = ByteTrackConfig(name="bytetrack")
    crops: CropPolicy = CropPolicy()
    workers: WorkersConfig = WorkersConfig()
    camera_nice: Annotated[int, Field(ge=0, le=19)] = Field(
        10,
        description="niceness added to each camera process of `stream run`: when the CPU is "
        "oversubscribed the feature worker, whose backlog is identity latency, runs first, and "
        "a camera that falls behind a live source drops stale frames instead (0: equal "
        "priority; bench/README.md 'Worker latency under load')",
    )
    worker: dict[str, Any] = {}
    gallery: dict[str, Any] | None = Field(
        None, description="a stream.gallery.GalleryConfig mapping, validated by that model"
    )
    outputs: OutputsConfig = OutputsConfig()

    @field_validator("gallery")
    @classmethod
    def _valid_gallery(cls, value: dict[str, Any] | None, info: ValidationInfo) -> Any:
        """Checked with `GalleryConfig` but kept as a mapping: importing the gallery package
        loads torch, which camera-stage processes (that unpickle this config) do not need."""
        if value is None:
            return None
        from stream.gallery.config import GalleryConfig

        if isinstance(value.get("path"), str):
            try:
                value = {**value, "path": str(_resolve(Path(value["path"]), info))}
            except (ValueError, OSError) as error:  # e.g. a NUL byte in the path
                raise _problem(("path",), f"not a usable path: {error}") from None
        # matching settings alone (e.g. `--set gallery.threshold=0.5`): `stream run` keeps the
        # gallery in its run folder (stream.pipeline.worker_configs), which is checked there
        located = names_gallery_location(value)
        try:
            GalleryConfig.model_validate(value if located else {**value, "path": "."})
        except ValidationError as error:
            problems = error.errors()
            raise _problem(
                tuple(problems[0]["loc"]),
                "; ".join(
                    ("" if i == 0 else ".".join(map(str, p["loc"])) + ": ") + _message_of(p)
                    for i, p in enumerate(problems)
                ),
            ) from None
        return value

    def gallery_config(self) -> Any:
        """The `stream.gallery.GalleryConfig`, or None when cams.yaml names no gallery location
        (`stream run` then keeps one in its run folder)."""
        if self.gallery is None or not names_gallery_location(self.gallery):
            return None
        from stream.gallery.config import GalleryConfig

        return GalleryConfig.model_validate(self.gallery)

    @model_validator(mode="after")
    def _cameras_consistent(self) -> CamsConfig:
        if "detector" not in self.model_fields_set and all(
            isinstance(camera.source, SyntheticSourceConfig) for camera in self.cameras
        ):
            self.detector = BackgroundSubtractionConfig(name="background_subtraction")
        seen: dict[str, int] = {}
        for index, camera in enumerate(self.cameras):
            if camera.id in seen:
                raise _problem(
                    ("cameras", index, "id"),
                    f"camera id {camera.id!r} is used twice (cameras {seen[camera.id]} and "
                    f"{index})",
                )
            seen[camera.id] = index
            if self.detector.name == "ground_truth" and camera.ground_truth_path() is None:
                raise _problem(
                    ("cameras", index, "ground_truth"),
                    f"the ground_truth detector needs a MOTChallenge gt.txt for camera "
                    f"{camera.id!r}: add 'ground_truth: PATH'",
                )
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        known = ", ".join(c.id for c in self.cameras)
        raise KeyError(f"no camera {camera_id!r} in the config (cameras: {known})")


# --- loading with line numbers ------------------------------------------------------------


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(node that marks the line, node to descend into) for one step of an error location."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part], node.value[part]
    return None


def locate(root: yaml.Node | None, loc: Loc) -> tuple[str, int]:
    """The key path as written in the YAML and its 1-based line for a pydantic location.

    Steps that are not in the YAML are union tags pydantic adds (``cameras.0.source.video.path``
    for a source of type video) and are skipped, except the last one: a missing key, reported
    at the line of the mapping that lacks it.
    """
    parts: list[str] = []
    line = 1
    node = root
    for position, part in enumerate(loc):
        step = _child(node, part) if node is not None else None
        if step is None:
            if position == len(loc) - 1:
                parts.append(str(part))
            continue
        marker, node = step
        line = marker.start_mark.line + 1
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "["), line


def _message_of(item: Any) -> str:
    """A pydantic error in this module's words."""
    kind = item["type"]
    if kind == "cams_config":
        return item["ctx"]["message"]
    if kind == "extra_forbidden":
        return f"unknown key {item['loc'][-1]!r}"
    if kind == "value_error":
        return str(item["ctx"]["error"])
    if kind == "missing":
        return item["msg"]
    return f"{item['msg']} (got {item['input']!r:.80})"


def describe_errors(error: ValidationError, root: yaml.Node | None, source: str) -> str:
    """One ``FILE:LINE: key: message`` line per problem."""
    lines = []
    for item in error.errors():
        loc: Loc = tuple(item["loc"])
        if item["type"] == "cams_config":
            loc = loc + tuple(item["ctx"]["loc"])
        key, line = locate(root, loc)
        lines.append(f"{source}:{line}: {key or '<top>'}: {_message_of(item)}")
    return "\n".join(lines)


def parse_cams_config(text: str, source: str, base_dir: Path | None) -> CamsConfig:
    """Validate cams.yaml ``text``; `CamsConfigError` names ``source``, the line and the key."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error)
        raise CamsConfigError(f"{where}: malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise CamsConfigError(f"{source}:1: a cams.yaml must be a mapping, got {got}")
    try:
        return CamsConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        raise CamsConfigError(
            f"invalid cams config:\n{describe_errors(error, root, source)}"
        ) from None


def load_cams_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CamsConfig:
    """Read and validate ``cams.yaml``; paths in it are relative to its folder. ``overrides``
    (`reid_core.config.parse_overrides` of ``--set key=value``) are deep-merged over its
    mappings first; errors then name the file "with --set"."""
    path = Path(path)
    if not path.exists():
        raise CamsConfigError(f"cams config not found: {path}")
    try:
        text = read_text_file(path, "cams config")
    except ValueError as error:
        raise CamsConfigError(str(error)) from None
    source = str(path)
    if overrides:
        own = parse_cams_config(text, source, path.resolve().parent)  # its errors, by line
        data = yaml.safe_load(text)
        changes_detector = isinstance(overrides.get("detector"), dict)
        if changes_detector and "name" not in overrides["detector"]:
            # `--set detector.score_threshold=0.3` tunes the detector the file runs, also the
            # default one it does not name
            detector = data.get("detector") or {}
            data["detector"] = {"name": own.detector.name, **detector}
        text = yaml.safe_dump(deep_merge(data, overrides), sort_keys=False)
        source = f"{path} with --set"
    return parse_cams_config(text, source, path.resolve().parent)
