"""The ZeroMQ wire format: round trips, prefix subscriptions and every malformed case named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zmq

from stream.wire import (
    AssignmentMessage,
    CropMessage,
    StatsMessage,
    TrackEndMessage,
    WireError,
    decode,
)


def _crop_image(height: int = 64, width: int = 32) -> np.ndarray:
    """A smooth BGR gradient: JPEG keeps it to within a few grey levels."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([ys * 255 // height, xs * 255 // width, (ys + xs) % 256], axis=-1).astype(
        np.uint8
    )


def _crop(**overrides: object) -> CropMessage:
    fields = dict(
        camera="cam-1",
        track=7,
        frame=120,
        t=4.8,
        box=[10.0, 20.0, 42.0, 84.0],
        score=0.91,
        image=_crop_image(),
    )
    return CropMessage(**{**fields, **overrides})


def _header(frames: list[bytes]) -> dict:
    return json.loads(frames[0])


def test_crop_round_trip_keeps_fields_and_pixels() -> None:
    sent = _crop()
    frames = sent.encode()
    assert len(frames) == 2 and frames[1][:2] == b"\xff\xd8"
    assert _header(frames)["v"] == 1 and _header(frames)["width"] == 32

    got = CropMessage.decode(frames)
    assert (got.camera, got.track, got.frame, got.t, got.box, got.score) == (
        "cam-1",
        7,
        120,
        4.8,
        [10.0, 20.0, 42.0, 84.0],
        0.91,
    )
    assert got.image.shape == (64, 32, 3) and got.image.dtype == np.uint8
    assert np.abs(got.image.astype(int) - sent.image.astype(int)).mean() < 3.0


@pytest.mark.parametrize(
    "message",
    [
        TrackEndMessage(camera="cam-1", track=3, t=9.5),
        AssignmentMessage(camera="cam-2", track=3, global_id=12, score=0.21, is_new=False, t=9.5),
        AssignmentMessage(camera="cam-2", track=4, global_id=13, score=None, is_new=True, t=9.6),
        StatsMessage(
            worker="w0", t=10.0, counters={"crops": 120, "malformed": 2}, gauges={"fps": 31.5}
        ),
    ],
)
def test_json_messages_round_trip(message) -> None:
    frames = message.encode()
    assert len(frames) == 1
    assert decode(frames) == message
    assert type(message).decode(frames) == message


def test_decode_through_a_real_zmq_socket_pair() -> None:
    context = zmq.Context.instance()
    push, pull = context.socket(zmq.PUSH), context.socket(zmq.PULL)
    try:
        pull.bind("inproc://wire-test")
        push.connect("inproc://wire-test")
        push.send_multipart(_crop().encode())
        got = decode(pull.recv_multipart(copy=False))  # zero-copy zmq.Frame objects
        assert isinstance(got, CropMessage) and got.track == 7
    finally:
        push.close(linger=0)
        pull.close(linger=0)


def test_subscription_prefix_selects_one_camera_and_type() -> None:
    cam1 = AssignmentMessage.subscription("cam1")
    one = AssignmentMessage(camera="cam1", track=1, global_id=1, score=None, is_new=True, t=0.0)
    ten = AssignmentMessage(camera="cam10", track=1, global_id=2, score=None, is_new=True, t=0.0)
    stats = StatsMessage(worker="cam1", t=0.0, counters={}, gauges={})
    assert one.encode()[0].startswith(cam1)
    assert not ten.encode()[0].startswith(cam1)
    assert not stats.encode()[0].startswith(AssignmentMessage.subscription())
    assert stats.encode()[0].startswith(StatsMessage.subscription())


def _with_header(frames: list[bytes], **changes: object) -> list[bytes]:
    header = _header(frames)
    for key, value in changes.items():
        if value is ...:
            header.pop(key)
        else:
            header[key] = value
    return [json.dumps(header).encode(), *frames[1:]]


@pytest.fixture
def crop_frames() -> list[bytes]:
    return _crop().encode()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: [b"{not json", f[1]], "frame 0 is not a JSON header"),
        (lambda f: [b"[1, 2]", f[1]], "must be a JSON object"),
        (lambda f: _with_header(f, v=2), "unsupported wire version v=2"),
        (lambda f: _with_header(f, v=True), "unsupported wire version v=True"),
        (lambda f: _with_header(f, v=...), "'v' (wire version) is missing"),
        (lambda f: _with_header(f, type="frame"), "'type' is 'frame'"),
        (lambda f: _with_header(f, track=...), "field 'track' is missing"),
        (lambda f: _with_header(f, track="7"), "field 'track'"),
        (lambda f: _with_header(f, track=7.0), "field 'track'"),
        (lambda f: _with_header(f, track=-1), "field 'track'"),
        (lambda f: _with_header(f, camera=""), "field 'camera'"),
        (lambda f: _with_header(f, t="now"), "field 't'"),
        (lambda f: _with_header(f, box=[1, 2, 3]), "field 'box'"),
        (lambda f: _with_header(f, box=[5, 2, 3, 4]), "x1 <= x2"),
        (lambda f: _with_header(f, score=1.5), "field 'score'"),
        (lambda f: _with_header(f, width=...), "field 'width' is missing"),
        (lambda f: _with_header(f, width=0), "the crop is empty (0×64 px)"),
        (lambda f: _with_header(f, height=65), "the header says 32×65"),
        (lambda f: [f[0]], "a crop message has 2 frame(s) (JSON header + JPEG crop), got 1"),
        (lambda f: [*f, b"extra"], "got 3"),
        (lambda f: [], "0 frames"),
        (lambda f: [f[0], b""], "frame 1 (JPEG crop) is empty"),
        (lambda f: [f[0], b"\x89PNG...."], "frame 1 is not a JPEG"),
        (lambda f: [f[0], f[1][: len(f[1]) // 2]], "truncated"),
        (lambda f: [f[0], b"\xff\xd8garbage\xff\xd9"], "cannot be decoded"),
    ],
)
def test_malformed_crop_messages_say_what_is_wrong(crop_frames, mutate, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        decode(mutate(crop_frames))
    assert reason in caught.value.reason


def test_wrong_message_type_for_the_socket_is_named() -> None:
    frames = TrackEndMessage(camera="c", track=1, t=0.0).encode()
    with pytest.raises(WireError, match="expected a 'crop' message, got a 'track_end' message"):
        CropMessage.decode(frames)


def test_senders_cannot_build_malformed_messages() -> None:
    with pytest.raises(WireError, match="crop image is empty"):
        _crop(image=np.zeros((0, 32, 3), np.uint8))
    with pytest.raises(WireError, match="uint8 H×W×3"):
        _crop(image=np.zeros((8, 8), np.uint8))
    with pytest.raises(WireError, match="field 'global_id'"):
        AssignmentMessage(camera="c", track=1, global_id=0, score=None, is_new=True, t=0.0)
    with pytest.raises(WireError, match="field 'gauges.fps'.*finite"):
        StatsMessage(worker="w", t=0.0, counters={}, gauges={"fps": float("nan")})


def test_unknown_header_fields_are_a_compatible_addition(crop_frames) -> None:
    got = decode(_with_header(crop_frames, quality=0.7))
    assert isinstance(got, CropMessage) and got.track == 7


def test_decoded_crop_is_bgr_as_opencv_reads_it() -> None:
    red = np.zeros((16, 8, 3), np.uint8)
    red[..., 2] = 255  # BGR: channel 2 is red
    got = CropMessage.decode(_crop(image=red).encode()).image
    assert got[..., 2].mean() > 240 and got[..., 0].mean() < 15
