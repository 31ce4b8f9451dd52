"""CurveZMQ on the ZeroMQ links between camera stages and feature workers (SPEC §1, §4; issue 9).

The policy, in one place so the worker and the camera stage cannot drift apart:

- Endpoints are loopback by default (``tcp://127.0.0.1:…``, ``ipc://``, ``inproc://``). Binding
  any other address (``tcp://0.0.0.0:…`` inside a compose network, a host's LAN address) is
  refused unless Curve is enabled — or ``allow_insecure: true`` says, on purpose, that the
  network is trusted.
- The side that binds is the Curve server (the worker's crop PULL and assignment PUB); the side
  that connects is a Curve client (the camera stages). A server accepts only the client public
  keys it was given — a folder of ``*.key`` files and/or single files — checked by one ZAP
  authenticator thread (`zmq.auth.thread.ThreadAuthenticator`) per ZeroMQ context; a refused
  key is logged on this module's logger.

Key files are pyzmq/czmq certificates written by `zmq.auth.create_certificates` (``stream keys``):
``NAME.key`` holds the public key (give it to the other side), ``NAME.key_secret`` both keys
(keep it on this side, mode 0600).

Use: embed ``curve: CurveConfig`` in a process's config, open every socket through
`open_endpoint`, and call `stop_authenticator` before ``context.term()``.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import logging
import shutil
import threading
from pathlib import Path
from typing import Self

import zmq
import zmq.auth
from pydantic import BaseModel, ConfigDict, Field, model_validator
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from reid_core.config import ConfigPath

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
Z85_KEY_LENGTH = 40  # a 32-byte Curve25519 key in Z85
LOCAL_TRANSPORTS = frozenset({"ipc", "inproc"})  # never reachable from another host
LOOPBACK_NAMES = frozenset({"localhost", "lo"})  # a host name / an interface name for loopback


class EndpointError(ValueError):
    """An endpoint that cannot be opened as configured; the message names the endpoint, the
    config field and the file involved."""


class CurveConfig(BaseModel):
    """CurveZMQ settings of one process; the worker and camera-stage configs embed it as
    ``curve:``. Relative key paths resolve against the embedding YAML's folder (`resolve`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="encrypt and authenticate every tcp endpoint")
    server_secret_key: ConfigPath | None = Field(
        None, description="NAME.key_secret of this process as a Curve server (sockets it binds)"
    )
    client_keys_dir: ConfigPath | None = Field(
        None, description="folder of the *.key public keys of the clients a server accepts"
    )
    client_keys: tuple[Path, ...] = Field(
        (), description="single public key files of accepted clients (besides client_keys_dir)"
    )
    client_secret_key: ConfigPath | None = Field(
        None, description="NAME.key_secret of this process as a Curve client (sockets it connects)"
    )
    server_public_key: ConfigPath | None = Field(
        None, description="the NAME.key public key of the server this process connects to"
    )
    allow_insecure: bool = Field(
        False,
        description="allow binding a non-loopback address without Curve (a trusted network only)",
    )

    @model_validator(mode="after")
    def _complete_sides(self) -> Self:
        """Each side is all or nothing: half a key pair is a typo, not a setting."""
        has_clients = self.client_keys_dir is not None or bool(self.client_keys)
        server_side = (self.server_secret_key is not None, has_clients)
        client_side = (self.client_secret_key is not None, self.server_public_key is not None)
        if any(server_side) and not all(server_side):
            raise ValueError(
                "a Curve server needs both 'server_secret_key' and the accepted clients "
                "('client_keys_dir' and/or 'client_keys'); only one of them is set"
            )
        if any(client_side) and not all(client_side):
            raise ValueError(
                "a Curve client needs both 'client_secret_key' and 'server_public_key'; "
                "only one of them is set"
            )
        if not self.enabled and (any(server_side) or any(client_side)):
            log.warning(
                "Curve keys are configured but curve.enabled is false: every endpoint runs "
                "unencrypted and unauthenticated (set 'enabled: true' to use the keys)"
            )
        if self.enabled and not (all(server_side) or all(client_side)):
            raise ValueError(
                "'enabled: true' needs server keys ('server_secret_key' + 'client_keys_dir' or "
                "'client_keys', to bind) and/or client keys ('client_secret_key' + "
                "'server_public_key', to connect); none are set"
            )
        return self

    def resolve(self, base: Path) -> CurveConfig:
        """This config with relative key paths taken relative to ``base`` (the YAML's folder)."""

        def under(path: Path | None) -> Path | None:
            return None if path is None else base / path

        return self.model_copy(
            update={
                "server_secret_key": under(self.server_secret_key),
                "client_keys_dir": under(self.client_keys_dir),
                "client_keys": tuple(base / p for p in self.client_keys),
                "client_secret_key": under(self.client_secret_key),
                "server_public_key": under(self.server_public_key),
            }
        )


def generate_keypair(
    out_dir: Path, name: str, authorize_dir: Path | None = None, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``out_dir/NAME.key`` (public) and ``NAME.key_secret`` (mode 0600); with
    ``authorize_dir`` also copy the public key there (a server's ``client_keys_dir``).

    Returns (public key file, secret key file). Existing files are kept unless ``overwrite``:
    replacing a deployed key silently locks its peers out.
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise EndpointError(f"key name {name!r} must be a plain file name (no folders)")
    public, secret = out_dir / f"{name}{PUBLIC_SUFFIX}", out_dir / f"{name}{SECRET_SUFFIX}"
    targets = [public, secret]
    if authorize_dir is not None:
        targets.append(authorize_dir / public.name)
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise EndpointError(f"key files already exist: {', '.join(existing)} (use --force)")
    out_dir.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(out_dir, name)
    Path(secret_file).chmod(0o600)
    if authorize_dir is not None:
        authorize_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(public_file, authorize_dir / public.name)
    return Path(public_file), Path(secret_file)


def _read_certificate(path: Path, field: str) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a certificate file, with errors naming ``field``."""
    if not path.is_file():
        raise EndpointError(f"{field}: no key file at {path}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise EndpointError(f"{field}: cannot read a Curve key from {path}: {error}") from error
    for kind, key in (("public", public), ("secret", secret)):
        if key is not None and not _is_z85_key(key):
            raise EndpointError(
                f"{field}: the {kind} key in {path} is not a {Z85_KEY_LENGTH}-character Z85 key"
            )
    return public, secret


def _is_z85_key(key: bytes) -> bool:
    if len(key) != Z85_KEY_LENGTH:
        return False
    try:
        return len(z85.decode(key)) == 32
    except (ValueError, KeyError):
        return False


def load_keypair(path: Path, field: str = "secret key") -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``NAME.key_secret`` file."""
    public, secret = _read_certificate(path, field)
    if secret is None:
        raise EndpointError(
            f"{field}: {path} holds only a public key; give the {SECRET_SUFFIX} file"
        )
    return public, secret


def load_public_keys(curve: CurveConfig) -> frozenset[bytes]:
    """Every client public key a server with ``curve`` accepts (folder + files); never empty."""
    files = list(curve.client_keys)
    if curve.client_keys_dir is not None:
        if not curve.client_keys_dir.is_dir():
            raise EndpointError(f"curve.client_keys_dir: no folder at {curve.client_keys_dir}")
        files += sorted(curve.client_keys_dir.glob(f"*{PUBLIC_SUFFIX}"))
    keys = frozenset(_read_certificate(path, "curve.client_keys")[0] for path in files)
    if not keys:
        raise EndpointError(
            f"curve.client_keys_dir: {curve.client_keys_dir} holds no *{PUBLIC_SUFFIX} file: "
            "no client could connect (copy the clients' public keys there: stream keys "
            "--authorize)"
        )
    return keys


def is_loopback(endpoint: str) -> bool:
    """Whether ``endpoint`` is reachable only from this host (ipc/inproc, tcp on loopback)."""
    transport, sep, address = endpoint.partition("://")
    if not sep or not address:
        raise EndpointError(f"{endpoint!r} is not a ZeroMQ endpoint (transport://address)")
    if transport in LOCAL_TRANSPORTS:
        return True
    if transport != "tcp":
        return False  # pgm, epgm, udp, ws, tipc, vmci all reach the network
    host = address.rsplit(":", 1)[0].strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: treated as reachable


def require_secure_bind(endpoint: str, curve: CurveConfig) -> None:
    """Refuse to bind a network-reachable ``endpoint`` in the clear (module docstring)."""
    if is_loopback(endpoint) or curve.enabled:
        return
    if not curve.allow_insecure:
        raise EndpointError(
            f"refusing to bind {endpoint} without CurveZMQ: it is reachable from other hosts. "
            "Enable curve (keys from `stream keys`, docs/deploy.md), bind a loopback address, "
            "or set curve.allow_insecure: true on a trusted network"
        )
    log.warning("binding %s without CurveZMQ (curve.allow_insecure is true)", endpoint)


class _AcceptedClients:
    """ZAP credentials provider: the client keys one set of server sockets accepts."""

    def __init__(self, keys: frozenset[bytes], source: str) -> None:
        self.keys = keys
        self.source = source

    def callback(self, domain: str, key: bytes) -> bool:
        """Called by the authenticator thread for every Curve handshake in ``domain``."""
        if key in self.keys:
            return True
        log.warning(
            "refused a CurveZMQ client with public key %s: not among the %d accepted keys of %s",
            key.decode(),
            len(self.keys),
            self.source,
        )
        return False


_authenticators: dict[zmq.Context, ThreadAuthenticator] = {}
_authenticators_lock = threading.Lock()


def _accept_clients(context: zmq.Context, keys: frozenset[bytes], source: str) -> str:
    """Register ``keys`` with the context's authenticator (started on first use); returns the
    ZAP domain that server sockets accepting exactly these keys must use."""
    domain = "occlureid-" + hashlib.sha256(b"".join(sorted(keys))).hexdigest()[:16]
    with _authenticators_lock:
        authenticator = _authenticators.get(context)
        if authenticator is None:
            authenticator = ThreadAuthenticator(context, log=log.getChild("zap"))
            authenticator.start()
            _authenticators[context] = authenticator
        if domain not in authenticator.credentials_providers:
            authenticator.configure_curve_callback(domain, _AcceptedClients(keys, source))
    return domain


def stop_authenticator(context: zmq.Context) -> None:
    """Stop the context's authenticator thread, if `open_endpoint` started one. Call it after
    closing the sockets and before ``context.term()`` (its ZAP socket would block term).
    A Curve server socket left open refuses every client from then on."""
    with _authenticators_lock:
        authenticator = _authenticators.pop(context, None)
    if authenticator is not None:
        authenticator.stop()


def open_endpoint(socket: zmq.Socket, endpoint: str, curve: CurveConfig, *, bind: bool) -> str:
    """Bind (as a Curve server) or connect (as a Curve client) ``socket`` to ``endpoint``.

    The one entry point for every OccluReID socket: it applies the bind policy, sets the Curve
    options before the bind/connect (ZeroMQ reads them then), and names the endpoint in errors.
    Returns the endpoint actually used (``tcp://127.0.0.1:*`` becomes the chosen port).
    """
    if bind:
        require_secure_bind(endpoint, curve)
    if curve.enabled:
        (_make_server if bind else _make_client)(socket, curve, endpoint)
    try:
        if bind:
            socket.bind(endpoint)
        else:
            socket.connect(endpoint)
    except zmq.ZMQError as error:
        raise EndpointError(
            f"cannot {'bind' if bind else 'connect'} {endpoint}: {error}"
        ) from error
    return socket.get(zmq.LAST_ENDPOINT).decode()


def _make_server(socket: zmq.Socket, curve: CurveConfig, endpoint: str) -> None:
    if curve.server_secret_key is None:
        raise EndpointError(
            f"binding {endpoint} with Curve needs curve.server_secret_key and the accepted "
            "clients (curve.client_keys_dir / curve.client_keys)"
        )
    public, secret = load_keypair(curve.server_secret_key, "curve.server_secret_key")
    keys = load_public_keys(curve)
    source = ", ".join(str(p) for p in (curve.client_keys_dir, *curve.client_keys) if p is not None)
    socket.zap_domain = _accept_clients(socket.context, keys, source).encode()
    # fail closed: without this, a socket whose authenticator has stopped accepts any key
    socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True


def _make_client(socket: zmq.Socket, curve: CurveConfig, endpoint: str) -> None:
    if curve.client_secret_key is None or curve.server_public_key is None:
        raise EndpointError(
            f"connecting to {endpoint} with Curve needs curve.client_secret_key and "
            "curve.server_public_key"
        )
    public, secret = load_keypair(curve.client_secret_key, "curve.client_secret_key")
    server_public, _ = _read_certificate(curve.server_public_key, "curve.server_public_key")
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="generate a CurveZMQ key pair for a worker or a camera stage",
        description="Write OUT/NAME.key (public: give it to the peers) and OUT/NAME.key_secret "
        "(secret, mode 0600: mount it only into this process's container). --authorize also "
        "copies the public key into a worker's accepted-clients folder (curve.client_keys_dir). "
        "See docs/deploy.md.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the key files")
    parser.add_argument("--name", default="occlureid", help="key file name (default occlureid)")
    parser.add_argument(
        "--authorize",
        type=Path,
        metavar="DIR",
        help="also copy the public key into DIR, a server's accepted-clients folder",
    )
    parser.add_argument("--force", action="store_true", help="replace existing key files")
    parser.set_defaults(handler=_handle_keys)


def _handle_keys(args: argparse.Namespace) -> int:
    public, secret = generate_keypair(args.out, args.name, args.authorize, args.force)
    print(f"public key: {public}  (give it to the peers)")
    print(f"secret key: {secret}  (keep it here, mode 0600)")
    if args.authorize is not None:
        print(f"accepted by servers reading: {args.authorize / public.name}")
    return 0
