"""The worker never dies of input (issue "identities that survive the real world", item 3): the
known crashers, a JPEG bomb and ≥ 1,000 seeded random and mutated messages fed to a live worker:
no exception escapes, every bad message is counted, every valid crop is embedded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_worker import ColourEmbedder, crop_frames, end_frames, person_crop, worker_config

from stream import worker as worker_module
from stream.wire import (
    MAX_CROP_SIDE,
    MAX_HEADER_BYTES,
    CropMessage,
    TrackEndMessage,
    WireError,
    decode,
)
from stream.worker import Worker

PERSON = ((40, 40, 200), (180, 60, 40))


def _valid(rng: np.random.Generator, track: int, frame: int) -> list[bytes]:
    return crop_frames("cam1", track, frame, person_crop(PERSON, rng))


def jpeg_bomb() -> list[bytes]:
    """A real 32×16 JPEG whose frame header (SOF0) claims 60,000×60,000 px, under a header that
    tells the truth about neither."""
    ok, data = cv2.imencode(".jpg", np.zeros((32, 16, 3), np.uint8))
    assert ok
    data = bytearray(data.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    header = json.loads(_valid(np.random.default_rng(0), 1, 0)[0])
    return [json.dumps({**header, "width": 16, "height": 32}).encode(), bytes(data)]


def crashers() -> dict[str, list[bytes]]:
    """Messages that escaped the decoder before (issue #17; a key named ``self`` is the test
    below: now an ignored unknown field) and the oversized ones."""
    header = json.loads(_valid(np.random.default_rng(0), 1, 0)[0])
    jpeg = _valid(np.random.default_rng(0), 1, 0)[1]
    big = {**header, "width": MAX_CROP_SIDE + 1, "height": 8}
    return {
        "deep nesting": [b"[" * 100_000, jpeg],
        "a 5,000-digit integer": [b'{"v": 1, "type": "crop", "track": ' + b"9" * 5000 + b"}"],
        "a list as type": [json.dumps({**header, "type": []}).encode(), jpeg],
        "a dict as version": [json.dumps({**header, "v": {}}).encode(), jpeg],
        "a huge header": [b'{"v": 1, "pad": "' + b"x" * MAX_HEADER_BYTES + b'"}', jpeg],
        "a huge declared crop": [json.dumps(big).encode(), jpeg],
        "a JPEG bomb": jpeg_bomb(),
    }


@pytest.mark.parametrize("name", list(crashers()))
def test_every_known_crasher_is_a_wire_error(name: str) -> None:
    with pytest.raises(WireError):
        decode(crashers()[name])


def test_a_message_with_a_key_named_self_still_validates_its_fields() -> None:
    frames = _valid(np.random.default_rng(0), 3, 0)
    header = json.loads(frames[0])
    message = decode([json.dumps({**header, "self": 1, "cls": 2}).encode(), frames[1]])
    assert isinstance(message, CropMessage) and message.track == 3  # unknown keys ignored


def mutations(rng: np.random.Generator, count: int) -> list[list[bytes]]:
    """Seeded hostile traffic: valid crops and track ends, byte flips and cuts in either frame,
    headers with fields of random JSON types, random bytes, wrong frame counts, the crashers."""
    known = list(crashers().values())
    junk_values = [None, True, -1, 2**70, 1e308, "", "x" * 50, [], {}, [1, [2]], {"a": {}}]
    messages: list[list[bytes]] = []
    for index in range(count):
        base = _valid(rng, int(rng.integers(1, 6)), index)
        kind = int(rng.integers(9))
        if kind == 0:
            messages.append(base)
        elif kind == 1:
            messages.append(end_frames("cam1", int(rng.integers(1, 6)), float(index)))
        elif kind == 2:  # flip bytes in one frame
            frame = int(rng.integers(2))
            data = bytearray(base[frame])
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
            base[frame] = bytes(data)
            messages.append(base)
        elif kind == 3:  # cut a frame short
            frame = int(rng.integers(2))
            base[frame] = base[frame][: int(rng.integers(len(base[frame])))]
            messages.append(base)
        elif kind == 4:  # one header field of a random JSON type
            header = json.loads(base[0])
            field = str(rng.choice(list(header) + ["self", "type", "v"]))
            header[field] = junk_values[int(rng.integers(len(junk_values)))]
            messages.append([json.dumps(header).encode(), base[1]])
        elif kind == 5:  # random bytes
            messages.append([rng.bytes(int(rng.integers(0, 200))) for _ in range(2)])
        elif kind == 6:  # wrong number of frames
            messages.append(base[: int(rng.integers(1))] + [b""] * int(rng.integers(0, 3) * 2))
        elif kind == 7:
            messages.append(known[int(rng.integers(len(known)))])
        else:  # a valid header with another message's JPEG (size disagrees or not)
            other = _valid(rng, 1, index)
            messages.append([base[0], other[1]])
    return messages


def test_a_live_worker_survives_a_thousand_hostile_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    traffic = mutations(np.random.default_rng(17), 1200)
    expected_valid_crops = expected_bad = 0
    for frames in traffic:  # the oracle: what the decoder itself accepts
        try:
            message = decode(frames)
        except WireError:
            expected_bad += 1
            continue
        expected_valid_crops += isinstance(message, CropMessage)
        assert isinstance(message, CropMessage | TrackEndMessage)
    assert expected_bad >= 500 and expected_valid_crops >= 100
    config = worker_config(
        tmp_path, batching={"max_batch": 8, "max_wait_ms": 1000}, tracklets={"min_crops": 2}
    )
    worker = Worker.from_config(config, publish=lambda message: None, embedder=ColourEmbedder())
    with caplog.at_level(logging.WARNING, logger="stream.worker"):
        for frames in traffic:
            worker.handle(frames)  # nothing may escape
            worker.step()
        worker.drain()
    worker.close()
    assert worker.counters["received"] == len(traffic)
    assert worker.counters["dropped_malformed"] == expected_bad
    assert worker.counters["embedded"] == expected_valid_crops
    # a flood of bad messages is a trickle of log lines (at most one per interval)
    assert 1 <= len(caplog.records) < expected_bad / 10
    assert worker_module.MALFORMED_LOG_INTERVAL_S > 0


def test_malformed_log_lines_are_throttled_and_say_how_many_were_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [100.0]
    worker = Worker.from_config(
        worker_config(tmp_path), publish=lambda message: None, embedder=ColourEmbedder()
    )
    worker.clock = lambda: now[0]
    with caplog.at_level(logging.WARNING, logger="stream.worker"):
        for _ in range(50):
            worker.handle([b"{not json"])
        now[0] += worker_module.MALFORMED_LOG_INTERVAL_S
        worker.handle([b"{not json"])
    worker.close()
    assert worker.counters["dropped_malformed"] == 51
    assert len(caplog.records) == 2
    assert "(49 more since the last line)" in caplog.records[1].getMessage()
