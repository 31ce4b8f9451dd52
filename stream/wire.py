"""The ZeroMQ wire format between camera stages and feature workers (SPEC §1, §4), version 1.

Every message is a ZeroMQ multipart message whose frame 0 is a UTF-8 JSON object, the header.
The header always starts with ``"v"`` (the format version, an integer) and ``"type"``; the
serialiser writes the keys in the order listed below, without spaces, so a SUB socket can
subscribe by byte prefix (`WireMessage.subscription`).

======================  =========================  ========  =====================================
type                    direction, socket          frames    header fields after v, type
======================  =========================  ========  =====================================
``crop``                camera stage → worker,     2         camera: str, track: int ≥ 0,
                        PUSH → PULL                          frame: int ≥ 0, t: float (seconds),
                                                             box: [x1, y1, x2, y2] (pixels of the
                                                             source frame), score: float in [0, 1],
                                                             width: int > 0, height: int > 0
``track_end``           camera stage → worker,     1         camera: str, track: int ≥ 0,
                        PUSH → PULL                          t: float — the tracker dropped the
                                                             track; the worker may finish it
``assignment``          worker → camera stages,    1         camera: str, track: int ≥ 0,
                        PUB → SUB                            global_id: int ≥ 1, score: float |
                                                             null, is_new: bool, t: float
``stats``               worker → anyone, PUB       1         worker: str, t: float,
                                                             counters: {str: int},
                                                             gauges: {str: float}
======================  =========================  ========  =====================================

``run`` names the `stream run` that sent the tracklet: track ids restart at 1 in every run, so a
tracklet is (run, camera, track); ``""`` (the default, for senders that predate it) is a run of
its own. ``t`` is seconds on the run's clock: wall-clock seconds (Unix time) for live sources,
the run's start plus the frame's timestamp for files, so times of different runs never mix.

Frame 1 of a ``crop`` message is the crop as JPEG bytes (BGR order once decoded, as OpenCV
reads it); ``width``/``height`` repeat its size so a frame pairing mix-up is caught. The
``assignment`` score is the occlusion-aware distance (SPEC §2.7, lower = more alike) to the
gallery tracklet it was matched with, or to the best rejected one for a new identity; null when
the gallery had no candidate.

Rules: integers are JSON integers (``true`` or ``3.0`` are not integers), numbers are finite,
strings are non-empty. Unknown header fields are ignored, so adding a field is a compatible
change; changing the meaning of one bumps ``v``. A receiver raises `WireError` — naming the
field, frame or value — for bad JSON, a missing or wrong-typed field, another version, an unknown
type, a wrong number of frames, a truncated or undecodable JPEG and an empty (0 px) crop; the
worker counts and drops such a message (SPEC §4).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Self

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

WIRE_VERSION = 1
JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
# Bounds a receiver checks before any work that grows with the input (hostile senders): the
# JSON header's bytes, a crop's side and area (checked on the header *and* on the JPEG's own
# header, before decoding), and a whole message (the worker's ZeroMQ MAXMSGSIZE).
MAX_HEADER_BYTES = 4096
MAX_CROP_SIDE = 4096
MAX_CROP_PIXELS = 4096 * 2048
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

NonEmptyStr = Annotated[str, Field(min_length=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
RunId = Annotated[str, Field(max_length=64)]
Box = Annotated[list[float], Field(min_length=4, max_length=4)]


class WireError(ValueError):
    """A message that does not follow this module's format; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _dumps(header: dict[str, Any]) -> bytes:
    """The one serialiser: fixed key order and separators make headers prefix-subscribable."""
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "header"
        if item["type"] == "missing":
            parts.append(f"field {field!r} is missing")
        else:
            parts.append(f"field {field!r}: {item['msg']} (got {item['input']!r:.60})")
    return "; ".join(parts)


class WireMessage(BaseModel):
    """A typed wire message: the JSON header's fields, plus binary frames in subclasses."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)

    TYPE: ClassVar[str]
    FRAME_NAMES: ClassVar[tuple[str, ...]] = ("JSON header",)

    def __init__(self, **fields: Any) -> None:
        """Validate like a receiver does, so a sender cannot put a malformed message on the wire."""
        try:
            super().__init__(**fields)
        except ValidationError as error:
            raise WireError(f"{self.TYPE} message: {_describe(error)}") from None

    def header(self) -> dict[str, Any]:
        return {"v": WIRE_VERSION, "type": self.TYPE, **self.model_dump(exclude={"image"})}

    def encode(self) -> list[bytes]:
        return [_dumps(self.header())]

    @classmethod
    def decode(cls, frames: Sequence[bytes]) -> Self:
        """Decode ``frames`` and insist that they hold this message type."""
        message = decode(frames)
        if not isinstance(message, cls):
            raise WireError(f"expected a {cls.TYPE!r} message, got a {message.TYPE!r} message")
        return message

    @classmethod
    def _from_frames(cls, header: dict[str, Any], frames: Sequence[bytes]) -> Self:
        return cls._from_header(header)

    @classmethod
    def _from_header(cls, fields: dict[str, Any]) -> Self:
        """Validate received fields. Unknown keys are dropped first (a compatible addition),
        so one named like a Python argument (``self``) cannot reach ``__init__``."""
        known = {name: value for name, value in fields.items() if name in cls.model_fields}
        try:
            return cls.model_validate(known)
        except ValidationError as error:
            raise WireError(f"{cls.TYPE} message: {_describe(error)}") from None

    @classmethod
    def subscription(cls, key: str | None = None) -> bytes:
        """The SUB prefix for this type, narrowed to one value of its first field (e.g. a camera).

        The value is closed by the following ``,`` so "cam1" does not also match "cam10".
        """
        prefix = _dumps({"v": WIRE_VERSION, "type": cls.TYPE})[:-1]
        if key is None:
            return prefix
        first_field = next(iter(cls.model_fields))
        return prefix + b"," + _dumps({first_field: key})[1:-1] + b","


class CropMessage(WireMessage):
    """One person crop chosen by a camera stage for embedding (frame 1: JPEG)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    TYPE: ClassVar[str] = "crop"
    FRAME_NAMES: ClassVar[tuple[str, ...]] = ("JSON header", "JPEG crop")

    camera: NonEmptyStr
    track: NonNegativeInt
    frame: NonNegativeInt
    t: float
    box: Box
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    image: np.ndarray = Field(repr=False)
    run: RunId = ""

    @field_validator("box")
    @classmethod
    def _box_is_ordered(cls, box: list[float]) -> list[float]:
        x1, y1, x2, y2 = box
        if not (x1 <= x2 and y1 <= y2):
            raise ValueError(f"box must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2, got {box}")
        return box

    @field_validator("image")
    @classmethod
    def _image_is_bgr(cls, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"crop image must be a uint8 H×W×3 BGR array, got {image.dtype} {image.shape}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"crop image is empty ({image.shape[1]}×{image.shape[0]} px)")
        return image

    def header(self) -> dict[str, Any]:
        height, width = self.image.shape[:2]
        return {**super().header(), "width": width, "height": height}

    def encode(self, jpeg_quality: int = 90) -> list[bytes]:
        ok, jpeg = cv2.imencode(".jpg", self.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise WireError(f"crop camera={self.camera!r} track={self.track}: JPEG encoding failed")
        return [_dumps(self.header()), jpeg.tobytes()]

    @classmethod
    def _from_frames(cls, header: dict[str, Any], frames: Sequence[bytes]) -> Self:
        width, height = (header.pop(name, None) for name in ("width", "height"))
        for name, value in (("width", width), ("height", height)):
            if value is None:
                raise WireError(f"crop message: field {name!r} is missing")
            if type(value) is not int or value < 0:
                raise WireError(
                    f"crop message: field {name!r} must be an integer ≥ 0, got {value!r}"
                )
        if width == 0 or height == 0:
            raise WireError(f"crop message: the crop is empty ({width}×{height} px)")
        _check_crop_size(width, height, "the header says")
        image = _decode_jpeg(frames[1])
        if image.shape[:2] != (height, width):
            raise WireError(
                f"crop message: the JPEG in frame 1 is {image.shape[1]}×{image.shape[0]} px, "
                f"the header says {width}×{height}"
            )
        return cls._from_header({**header, "image": image})


class TrackEndMessage(WireMessage):
    """The camera's tracker dropped a track: its tracklet will get no more crops."""

    TYPE: ClassVar[str] = "track_end"

    camera: NonEmptyStr
    track: NonNegativeInt
    t: float
    run: RunId = ""


class AssignmentMessage(WireMessage):
    """The worker's answer for a tracklet: its cross-camera global identity."""

    TYPE: ClassVar[str] = "assignment"

    camera: NonEmptyStr
    track: NonNegativeInt
    global_id: Annotated[int, Field(ge=1)]
    score: float | None
    is_new: bool
    t: float
    run: RunId = ""


class StatsMessage(WireMessage):
    """A worker's periodic counters (crops, batches, malformed messages...) and gauges."""

    TYPE: ClassVar[str] = "stats"

    worker: NonEmptyStr
    t: float
    counters: dict[str, Annotated[int, Field(ge=0)]]
    gauges: dict[str, float]


MESSAGE_TYPES: dict[str, type[WireMessage]] = {
    cls.TYPE: cls for cls in (CropMessage, TrackEndMessage, AssignmentMessage, StatsMessage)
}


def _check_crop_size(width: int, height: int, source: str) -> None:
    if max(width, height) > MAX_CROP_SIDE or width * height > MAX_CROP_PIXELS:
        raise WireError(
            f"crop message: {source} {width}×{height} px, above the limit of "
            f"{MAX_CROP_SIDE} px a side and {MAX_CROP_PIXELS} pixels"
        )


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG's frame header, without decoding its pixels."""
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as image:
            return image.size
    except Exception:  # PIL raises many types for a broken header
        raise WireError(
            f"crop message: the JPEG in frame 1 cannot be decoded: no readable frame header "
            f"({len(data)} bytes)"
        ) from None


def _decode_jpeg(data: bytes) -> np.ndarray:
    if len(data) == 0:
        raise WireError("crop message: frame 1 (JPEG crop) is empty (0 bytes)")
    if not data.startswith(JPEG_START):
        raise WireError(f"crop message: frame 1 is not a JPEG (starts with {bytes(data[:4])!r})")
    # OpenCV only answers None for a cut-off JPEG; the missing end marker says why.
    if not data.endswith(JPEG_END):
        raise WireError(f"crop message: the JPEG in frame 1 is truncated ({len(data)} bytes)")
    _check_crop_size(*_jpeg_size(data), "the JPEG in frame 1 is")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise WireError(f"crop message: the JPEG in frame 1 cannot be decoded ({len(data)} bytes)")
    return image


def decode(frames: Sequence[bytes]) -> WireMessage:
    """Decode one multipart message into its typed message; `WireError` says what is wrong."""
    if len(frames) == 0:
        raise WireError("empty multipart message (0 frames)")
    frames = [bytes(frame) for frame in frames]  # zmq.Frame / memoryview from zero-copy receives
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise WireError(
            f"frame 0 (JSON header) is {len(frames[0])} bytes, above the limit of "
            f"{MAX_HEADER_BYTES}"
        )
    try:
        header = json.loads(frames[0])
    except RecursionError:
        raise WireError("frame 0 is a JSON header nested too deeply") from None
    except ValueError as error:  # bad JSON, bad UTF-8, an integer of too many digits
        raise WireError(
            f"frame 0 is not a JSON header: {error} (starts {frames[0][:40]!r})"
        ) from None
    if not isinstance(header, dict):
        raise WireError(f"frame 0 must be a JSON object, got {type(header).__name__}")
    version = header.pop("v", None)
    if version is None:
        raise WireError("header field 'v' (wire version) is missing")
    if version != WIRE_VERSION or type(version) is not int:
        raise WireError(
            f"unsupported wire version v={version!r} (this build speaks v={WIRE_VERSION})"
        )
    kind = header.pop("type", None)
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        known = ", ".join(sorted(MESSAGE_TYPES))
        raise WireError(f"header field 'type' is {kind!r}; expected one of: {known}")
    cls = MESSAGE_TYPES[kind]
    if len(frames) != len(cls.FRAME_NAMES):
        expected = " + ".join(cls.FRAME_NAMES)
        raise WireError(
            f"a {kind} message has {len(cls.FRAME_NAMES)} frame(s) ({expected}), got {len(frames)}"
        )
    return cls._from_frames(header, frames)
