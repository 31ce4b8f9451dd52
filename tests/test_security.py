"""CurveZMQ between a "stage" (PUSH, SUB: Curve clients) and a "worker" (PULL, PUB: Curve server)
on tcp://127.0.0.1 with random ports (stream/security.py). No sleeps: every wait is a bounded
poll, and handshake outcomes are read from ZeroMQ socket monitors."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from pydantic import ValidationError
from zmq.utils.monitor import recv_monitor_message

from reid_core.cli import build_parser, run
from stream.security import (
    CurveConfig,
    EndpointError,
    generate_keypair,
    is_loopback,
    load_keypair,
    open_endpoint,
    stop_authenticator,
)

LOOPBACK = "tcp://127.0.0.1:*"
WAIT_MS = 5000  # upper bound for things that must happen (they take milliseconds)
QUIET_MS = 300  # how long "nothing arrives" is watched, after the refusal was observed
HANDSHAKE_FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
}


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """A worker key pair, an accepted stage key pair and a stranger's key pair."""
    accepted = tmp_path / "accepted_clients"
    generate_keypair(tmp_path / "worker", "worker")
    generate_keypair(tmp_path / "stage", "stage", authorize_dir=accepted)
    generate_keypair(tmp_path / "stranger", "stranger")
    return {
        "worker_secret": tmp_path / "worker" / "worker.key_secret",
        "worker_public": tmp_path / "worker" / "worker.key",
        "stage_secret": tmp_path / "stage" / "stage.key_secret",
        "stranger_secret": tmp_path / "stranger" / "stranger.key_secret",
        "stranger_public": tmp_path / "stranger" / "stranger.key",
        "accepted": accepted,
    }


@pytest.fixture
def server_curve(keys: dict[str, Path]) -> CurveConfig:
    return CurveConfig(
        enabled=True, server_secret_key=keys["worker_secret"], client_keys_dir=keys["accepted"]
    )


def client_curve(keys: dict[str, Path], secret: str = "stage_secret") -> CurveConfig:
    return CurveConfig(
        enabled=True, client_secret_key=keys[secret], server_public_key=keys["worker_public"]
    )


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    stop_authenticator(ctx)  # first: destroy() would close its sockets under its thread
    ctx.destroy(linger=0)


def socket(ctx: zmq.Context, kind: int) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.linger = 0
    return sock


def wait_for_event(monitor: zmq.Socket, wanted: set[int]) -> int | None:
    """The first monitor event in ``wanted`` within WAIT_MS, or None."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while (left_ms := int((deadline - time.monotonic()) * 1000)) > 0:
        if not monitor.poll(left_ms):
            return None
        event = recv_monitor_message(monitor)["event"]
        if event in wanted:
            return event
    return None


def test_stage_and_worker_talk_with_the_right_keys(
    context: zmq.Context, keys: dict[str, Path], server_curve: CurveConfig
) -> None:
    crops_in = socket(context, zmq.PULL)
    monitor = crops_in.get_monitor_socket()
    crops_endpoint = open_endpoint(crops_in, LOOPBACK, server_curve, bind=True)
    assert crops_endpoint.startswith("tcp://127.0.0.1:") and not crops_endpoint.endswith("*")
    assert crops_in.curve_server

    crops_out = socket(context, zmq.PUSH)
    open_endpoint(crops_out, crops_endpoint, client_curve(keys), bind=False)
    frames = [b'{"v":1,"type":"crop"}', b"\xff\xd8jpeg\xff\xd9"]
    crops_out.send_multipart(frames)
    assert crops_in.poll(WAIT_MS), "the crop did not arrive over Curve"
    assert crops_in.recv_multipart() == frames
    assert wait_for_event(monitor, {zmq.EVENT_HANDSHAKE_SUCCEEDED}) is not None

    # the way back: the worker's assignment PUB is also a Curve server (it binds)
    assignments_out = socket(context, zmq.PUB)
    assignments_endpoint = open_endpoint(assignments_out, LOOPBACK, server_curve, bind=True)
    assignments_in = socket(context, zmq.SUB)
    assignments_in.subscribe(b"")
    open_endpoint(assignments_in, assignments_endpoint, client_curve(keys), bind=False)
    # PUB drops messages until the subscription has arrived: publish until one is received
    deadline = time.monotonic() + WAIT_MS / 1000
    while not assignments_in.poll(50) and time.monotonic() < deadline:
        assignments_out.send(b'{"v":1,"type":"assignment"}')
    assert assignments_in.recv() == b'{"v":1,"type":"assignment"}'


@pytest.mark.parametrize("client", ["no_curve", "unknown_key", "wrong_server_key"])
def test_a_client_without_the_keys_is_refused(
    context: zmq.Context,
    keys: dict[str, Path],
    server_curve: CurveConfig,
    client: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    crops_in = socket(context, zmq.PULL)
    monitor = crops_in.get_monitor_socket()
    endpoint = open_endpoint(crops_in, LOOPBACK, server_curve, bind=True)
    curve = {
        "no_curve": CurveConfig(),
        "unknown_key": client_curve(keys, "stranger_secret"),
        "wrong_server_key": CurveConfig(
            enabled=True,
            client_secret_key=keys["stage_secret"],
            server_public_key=keys["stranger_public"],
        ),
    }[client]
    crops_out = socket(context, zmq.PUSH)
    with caplog.at_level(logging.WARNING, logger="stream.security"):
        open_endpoint(crops_out, endpoint, curve, bind=False)
        crops_out.send(b"should never arrive", zmq.NOBLOCK)
        refused = wait_for_event(monitor, HANDSHAKE_FAILED | {zmq.EVENT_HANDSHAKE_SUCCEEDED})
        assert refused in HANDSHAKE_FAILED, f"handshake outcome {refused}"
        assert crops_in.poll(QUIET_MS) == 0, "a message got through without the keys"
    refusals = [r for r in caplog.records if "refused a CurveZMQ client" in r.getMessage()]
    if client == "unknown_key":  # the authenticator saw a valid handshake and said no
        assert refused == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        stranger_public, _ = load_keypair(keys["stranger_secret"])
        assert stranger_public.decode() in refusals[0].getMessage()
    else:  # never got as far as the authenticator
        assert not refusals

    # the server keeps serving accepted clients after a refusal
    friend = socket(context, zmq.PUSH)
    open_endpoint(friend, endpoint, client_curve(keys), bind=False)
    friend.send(b"accepted")
    assert crops_in.poll(WAIT_MS) and crops_in.recv() == b"accepted"


def test_a_server_without_its_authenticator_fails_closed(
    context: zmq.Context, keys: dict[str, Path], server_curve: CurveConfig
) -> None:
    crops_in = socket(context, zmq.PULL)
    endpoint = open_endpoint(crops_in, LOOPBACK, server_curve, bind=True)
    stop_authenticator(context)  # e.g. a shutdown in the wrong order
    for client in ("stranger_secret", "stage_secret"):
        crops_out = socket(context, zmq.PUSH)
        open_endpoint(crops_out, endpoint, client_curve(keys, client), bind=False)
        crops_out.send(b"should never arrive", zmq.NOBLOCK)
    assert crops_in.poll(QUIET_MS) == 0, "a client got in with nobody checking its key"


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.2:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/occlureid-crops", True),
        ("inproc://crops", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://10.1.2.3:5555", False),
        ("tcp://[::]:5555", False),
        ("epgm://eth0;239.192.1.1:5555", False),
    ],
)
def test_loopback_detection(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


def test_not_an_endpoint_is_named() -> None:
    with pytest.raises(EndpointError, match="'127.0.0.1:5555' is not a ZeroMQ endpoint"):
        is_loopback("127.0.0.1:5555")


def test_insecure_non_loopback_bind_is_refused(
    context: zmq.Context, server_curve: CurveConfig
) -> None:
    refused = socket(context, zmq.PULL)
    with pytest.raises(EndpointError, match=r"refusing to bind tcp://0\.0\.0\.0:\* without Curve"):
        open_endpoint(refused, "tcp://0.0.0.0:*", CurveConfig(), bind=True)
    assert refused.get(zmq.LAST_ENDPOINT) == b"", "the socket was bound anyway"
    # connecting out is never refused: only what this process exposes is its decision
    open_endpoint(socket(context, zmq.PUSH), "tcp://10.255.255.1:5555", CurveConfig(), bind=False)
    # Curve, or an explicit allow_insecure, lets the same bind through
    secured = open_endpoint(socket(context, zmq.PULL), "tcp://0.0.0.0:*", server_curve, bind=True)
    assert secured.startswith("tcp://0.0.0.0:")
    trusted = CurveConfig(allow_insecure=True)
    assert open_endpoint(socket(context, zmq.PULL), "tcp://0.0.0.0:*", trusted, bind=True)


def test_bind_failure_names_the_endpoint(context: zmq.Context) -> None:
    holder = socket(context, zmq.PULL)  # kept referenced: a collected socket frees its port
    taken = open_endpoint(holder, LOOPBACK, CurveConfig(), bind=True)
    with pytest.raises(EndpointError, match=f"cannot bind {taken}"):
        open_endpoint(socket(context, zmq.PULL), taken, CurveConfig(), bind=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"enabled": True}, "none are set"),
        ({"server_secret_key": "w.key_secret"}, "a Curve server needs both"),
        ({"client_keys_dir": "clients"}, "a Curve server needs both"),
        ({"client_secret_key": "s.key_secret"}, "a Curve client needs both"),
        ({"server_public_key": "w.key"}, "a Curve client needs both"),
        ({"enabled": True, "server_key": "w.key_secret"}, "server_key"),
    ],
)
def test_incomplete_config_is_an_error(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CurveConfig(**fields)


def test_key_file_problems_name_the_field_and_file(
    context: zmq.Context, keys: dict[str, Path], tmp_path: Path
) -> None:
    missing = CurveConfig(
        enabled=True,
        server_secret_key=tmp_path / "nowhere.key_secret",
        client_keys_dir=keys["accepted"],
    )
    with pytest.raises(EndpointError, match=r"curve\.server_secret_key: no key file at .*nowhere"):
        open_endpoint(socket(context, zmq.PULL), LOOPBACK, missing, bind=True)

    public_as_secret = CurveConfig(
        enabled=True,
        client_secret_key=keys["worker_public"],
        server_public_key=keys["worker_public"],
    )
    with pytest.raises(EndpointError, match=r"curve\.client_secret_key: .*worker\.key holds only"):
        open_endpoint(
            socket(context, zmq.PUSH), "tcp://127.0.0.1:5555", public_as_secret, bind=False
        )

    (tmp_path / "empty").mkdir()
    nobody = CurveConfig(
        enabled=True, server_secret_key=keys["worker_secret"], client_keys_dir=tmp_path / "empty"
    )
    with pytest.raises(EndpointError, match="holds no \\*.key file: no client could connect"):
        open_endpoint(socket(context, zmq.PULL), LOOPBACK, nobody, bind=True)

    garbled = tmp_path / "garbled.key"
    garbled.write_text('curve\n    public-key = "not-a-key"\n')
    bad_client = CurveConfig(
        enabled=True, server_secret_key=keys["worker_secret"], client_keys=(garbled,)
    )
    with pytest.raises(EndpointError, match=r"public key in .*garbled\.key is not a 40-character"):
        open_endpoint(socket(context, zmq.PULL), LOOPBACK, bad_client, bind=True)


def test_relative_key_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    curve = CurveConfig(
        enabled=True, server_secret_key="keys/w.key_secret", client_keys=("keys/c.key",)
    ).resolve(tmp_path)
    assert curve.server_secret_key == tmp_path / "keys" / "w.key_secret"
    assert curve.client_keys == (tmp_path / "keys" / "c.key",)
    assert curve.client_secret_key is None


def test_keys_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser("stream", "test", ["stream.security"])
    argv = ["keys", "--out", str(tmp_path / "k"), "--name", "cam1", "--authorize"]
    assert run(parser, [*argv, str(tmp_path / "accepted")]) == 0
    public, secret = tmp_path / "k" / "cam1.key", tmp_path / "k" / "cam1.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (tmp_path / "accepted" / "cam1.key").read_bytes() == public.read_bytes()
    public_key, secret_key = load_keypair(secret)
    assert (
        public_key.decode() in public.read_text() and secret_key.decode() not in public.read_text()
    )
    before = secret.read_bytes()
    assert run(parser, [*argv, str(tmp_path / "accepted")]) == 2
    assert "already exist" in capsys.readouterr().err
    assert secret.read_bytes() == before, "an existing key was replaced without --force"
    assert run(parser, ["keys", "--out", str(tmp_path), "--name", "../escape"]) == 2


def test_curve_keys_configured_but_disabled_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="stream.security"):
        CurveConfig(
            enabled=True, client_secret_key=tmp_path / "a", server_public_key=tmp_path / "b"
        )
        assert not caplog.records  # enabled: nothing to say
        CurveConfig(client_secret_key=tmp_path / "a", server_public_key=tmp_path / "b")
    assert len(caplog.records) == 1 and "curve.enabled is false" in caplog.text
