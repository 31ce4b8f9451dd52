"""docker/: the compose file, its CPU override, env.example, the deployment configs and the
Dockerfile agree with each other (issue 9). The YAML checks always run; `docker compose config`
and hadolint run when their binaries are present (COMPOSE_BIN / HADOLINT_BIN name them, or
`docker compose` / `docker-compose` / `hadolint` on the PATH) and skip otherwise."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
CPU_OVERRIDE = DOCKER / "compose.cpu.yaml"
ENV_EXAMPLE = DOCKER / "env.example"
DOCKERFILE = DOCKER / "Dockerfile"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SECRETS_DIR = PurePosixPath("/run/secrets")
TEST_API_KEY = "test-api-key"


class ComposeLoader(yaml.SafeLoader):
    """PyYAML plus Compose's merge tags (`!reset`, `!override`) used by the override file."""


def _compose_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {"__tag__": node.tag, **loader.construct_mapping(node, deep=True)}
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, _compose_tag)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=ComposeLoader)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def env_defaults() -> dict[str, str]:
    """env.example as NAME → value (the documented default)."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"env.example line {line!r} is not NAME=value"
            pairs[name.strip()] = value.strip()
    return pairs


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution for the forms used here, with ``env`` as environment."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if value is not None and not (value == "" and op is not None and op.startswith(":")):
            return value
        if op is None:
            return ""
        if op.endswith("-"):
            return arg
        raise KeyError(f"required variable {name} is not set ({arg})")

    return VARIABLE.sub(substitute, value)


def worker_services(compose: dict) -> dict[str, dict]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("command", [])[:2] == ["stream", "worker"]
    }


def mounts(service: dict, env: dict[str, str]) -> dict[str, str]:
    """Container path → source (a named volume or a host path relative to docker/)."""
    table = {}
    for spec in service.get("volumes", []):
        source, target = interpolate(spec, env).split(":")[:2]
        table[target] = source
    return table


def host_path(container_path: str, service: dict, env: dict[str, str]) -> Path:
    """The host file behind a path in a container, through the service's bind mounts."""
    path = PurePosixPath(container_path)
    for target, source in mounts(service, env).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return DOCKER / source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not under any bind mount of the service")


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


# --- the compose file on its own ----------------------------------------------------------


def test_every_image_or_build_exists(compose: dict) -> None:
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", DOCKERFILE.read_text(), re.MULTILINE))
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, f"service {name} has neither"
        build = service.get("build")
        if build is None:
            image = service["image"]
            assert re.search(r":v?\d[\w.-]*$", image), f"{name}: image {image!r} is not pinned"
            continue
        context = DOCKER / build["context"]
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert f"base-{build['args']['VARIANT']}" in stages, f"{name}: no stage for VARIANT"
        assert (context / "pyproject.toml").is_file(), f"{name}: build context is not the repo"


def test_volumes_and_secrets_are_declared_and_used(compose: dict) -> None:
    used_volumes, used_secrets = set(), set()
    for service in compose["services"].values():
        for source in mounts(service, {}).values():
            if not source.startswith((".", "/")):
                used_volumes.add(source)
        used_secrets |= set(service.get("secrets", []))
    assert used_volumes == set(compose["volumes"]), "named volumes used ≠ declared"
    assert used_secrets == set(compose["secrets"]), "secrets used ≠ declared"
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, f"secret {name} must come from a file"


def test_every_variable_is_declared_in_env_example(env_defaults: dict[str, str]) -> None:
    uses = [m for path in (COMPOSE, CPU_OVERRIDE) for m in VARIABLE.finditer(path.read_text())]
    assert {m["name"] for m in uses} == set(env_defaults), "variables used ≠ env.example"
    for use in uses:
        name, op, arg = use["name"], use["op"], use["arg"]
        if op == ":?":
            assert arg.strip(), f"required variable {name} needs a message saying where to set it"
            assert env_defaults[name] == "", f"{name} is required: env.example must leave it empty"
        else:
            assert op == ":-", f"{use[0]}: give a default (:-) or require it (:?)"
            assert arg == env_defaults[name], f"{name}: default {arg!r} ≠ env.example"


def test_depends_on_names_services(compose: dict) -> None:
    for name, service in compose["services"].items():
        for needed in service.get("depends_on", []):
            assert needed in compose["services"], f"{name} depends on unknown {needed}"
            assert needed != name


def test_qdrant_is_persistent_and_needs_the_api_key(compose: dict) -> None:
    qdrant = compose["services"]["qdrant"]
    assert qdrant["image"].startswith("qdrant/qdrant:v")
    storage = mounts(qdrant, {})["/qdrant/storage"]
    assert storage in compose["volumes"], "Qdrant storage must be a named (persistent) volume"
    api_key = qdrant["environment"]["QDRANT__SERVICE__API_KEY"]
    assert re.fullmatch(r"\$\{QDRANT_API_KEY:\?[^}]+\}", api_key), "the key must come from env"
    with pytest.raises(KeyError, match="QDRANT_API_KEY"):
        interpolate(api_key, {})
    for name, service in worker_services(compose).items():  # the gallery client's key
        assert service["environment"]["QDRANT_API_KEY"] == api_key.replace(
            "QDRANT__SERVICE__API_KEY", "QDRANT_API_KEY"
        ), name
    published = [interpolate(p, {}) for p in qdrant.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published), "publish on loopback only"


def test_workers_reserve_a_gpu(compose: dict) -> None:
    workers = worker_services(compose)
    assert len(workers) >= 1
    for name, service in workers.items():
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in device["capabilities"] for device in devices), name
        assert "qdrant" in service["depends_on"], f"{name} must wait for the gallery"


def test_cpu_override_drops_the_gpu_reservations(compose: dict) -> None:
    override = load_yaml(CPU_OVERRIDE)["services"]
    for name in worker_services(compose):
        assert override[name]["deploy"]["__tag__"] == "!reset", name
    for name, service in override.items():
        assert name in compose["services"]
        assert service["build"]["args"]["VARIANT"] == "cpu" and service["image"].endswith(":cpu")


def test_stream_mounts_cams_yaml(compose: dict, env_defaults: dict[str, str]) -> None:
    stream = compose["services"]["stream"]
    cams = option(stream["command"], "--cameras")
    assert cams in mounts(stream, env_defaults), "the --cameras file is not mounted"
    assert host_path(cams, stream, env_defaults).is_file()
    assert set(worker_services(compose)) <= set(stream["depends_on"])


# --- the deployment configs against the compose file ---------------------------------------


@pytest.fixture(scope="module")
def deploy_configs(compose: dict, env_defaults: dict[str, str]) -> dict[str, tuple[dict, Path]]:
    """Service name → (its config YAML, the host file), as mounted by compose."""
    configs = {}
    for name, service in compose["services"].items():
        command = service.get("command", [])
        flag = {"worker": "--config", "run": "--cameras"}.get(command[1] if command else "")
        if flag:
            path = host_path(option(command, flag), service, env_defaults)
            configs[name] = (yaml.safe_load(path.read_text()), path)
    return configs


def endpoint_host_port(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


def granted_secret_file(path: str, service: dict, compose: dict) -> str:
    """The host file of a /run/secrets/NAME path, checking the service is granted NAME."""
    pure = PurePosixPath(path)
    assert pure.parent == SECRETS_DIR, f"{path} is not a compose secret"
    assert pure.name in service.get("secrets", []), f"{pure.name} is not granted"
    return compose["secrets"][pure.name]["file"]


def test_workers_bind_on_the_network_with_curve(
    compose: dict, deploy_configs: dict, env_defaults: dict[str, str]
) -> None:
    workers = worker_services(compose)
    for name, service in workers.items():
        config, _ = deploy_configs[name]
        assert config["num_workers"] == len(workers)
        sockets = config["sockets"]
        for socket in ("crops", "assignments"):
            assert endpoint_host_port(sockets[socket]["endpoint"])[0] == "0.0.0.0"
        curve = sockets["curve"]
        assert curve["enabled"] is True
        granted_secret_file(curve["server_secret_key"], service, compose)
        assert curve["client_keys_dir"] in mounts(service, env_defaults)
        assert (
            config["gallery"]["url"] == "http://qdrant:6333" and "api_key" not in config["gallery"]
        )
    indexes = sorted(deploy_configs[name][0]["worker_index"] for name in workers)
    assert indexes == list(range(len(workers)))


def test_stream_reaches_the_workers_by_service_name(compose: dict, deploy_configs: dict) -> None:
    workers = worker_services(compose)
    by_index = {deploy_configs[n][0]["worker_index"]: n for n in workers}
    stream_config, _ = deploy_configs["stream"]
    routing = stream_config["workers"]
    for kind, socket in (("crop_endpoints", "crops"), ("assignment_endpoints", "assignments")):
        assert len(routing[kind]) == len(workers)
        for index, endpoint in enumerate(routing[kind]):  # routing order = worker_index
            host, port = endpoint_host_port(endpoint)
            assert host == by_index[index]
            bound = deploy_configs[host][0]["sockets"][socket]["endpoint"]
            assert endpoint_host_port(bound)[1] == port
    curve = routing["curve"]
    stream = compose["services"]["stream"]
    assert curve["enabled"] is True
    granted_secret_file(curve["client_secret_key"], stream, compose)
    server_public = granted_secret_file(curve["server_public_key"], stream, compose)
    server_secrets = {
        granted_secret_file(
            deploy_configs[n][0]["sockets"]["curve"]["server_secret_key"], s, compose
        )
        for n, s in workers.items()
    }
    assert server_secrets == {server_public + "_secret"}, "stage trusts another key than workers'"


def test_deploy_configs_validate_against_the_schemas(deploy_configs: dict) -> None:
    from stream.config import CamsConfig, parse_cams_config
    from stream.worker_config import SocketsConfig, load_worker_config

    if "curve" not in SocketsConfig.model_fields or "curve" not in (
        CamsConfig.model_fields["workers"].annotation.model_fields
    ):
        pytest.skip("the worker / camera-stage configs have no `curve` section yet")
    for name, (_, path) in deploy_configs.items():
        if name == "stream":
            parsed = parse_cams_config(path.read_text(), str(path), path.parent)
            assert parsed.workers.curve.enabled
        else:
            assert load_worker_config(path).sockets.curve.enabled


# --- image build files -----------------------------------------------------------------------


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] == "${UID}:${GID}"
    assert re.search(r"^ARG UID=(?!0\b)\d+", text, re.MULTILINE)
    assert "ADD http" not in text and "curl" not in text, "nothing is fetched by the image"


def test_dockerignore_keeps_secrets_and_environments_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "/docker/keys", "/docker/.env", "/runs", "/data"} <= ignored


def _binary(variable: str, probe: str, *candidates: list[str]) -> list[str] | None:
    """$variable, else the first candidate command that answers ``probe`` (its version)."""
    if os.environ.get(variable):
        return [os.environ[variable]]
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        answer = subprocess.run([*command, probe], capture_output=True, check=False, timeout=30)
        if answer.returncode == 0:
            return command
    return None


@pytest.fixture(scope="module")
def compose_bin() -> list[str]:
    command = _binary("COMPOSE_BIN", "version", ["docker", "compose"], ["docker-compose"])
    if command is None:
        pytest.skip("no docker compose binary (set COMPOSE_BIN to one)")
    return command


def compose_config(
    compose_bin: list[str], tmp_path: Path, files: list[Path], api_key: str
) -> subprocess.CompletedProcess[str]:
    """`docker compose config` with env.example (+ the API key) as the only environment."""
    env_file = tmp_path / "env"
    env_file.write_text(
        ENV_EXAMPLE.read_text().replace("QDRANT_API_KEY=\n", f"QDRANT_API_KEY={api_key}\n")
    )
    command = [*compose_bin, "--env-file", str(env_file)]
    for file in files:
        command += ["-f", str(file)]
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    return subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=DOCKER,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_config_accepts_the_files(compose_bin: list[str], tmp_path: Path) -> None:
    result = compose_config(compose_bin, tmp_path, [COMPOSE], TEST_API_KEY)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)  # a wrapper that hides the exit status fails here
    assert set(resolved["services"]) == set(load_yaml(COMPOSE)["services"])
    assert resolved["services"]["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"] == TEST_API_KEY

    cpu = json.loads(compose_config(compose_bin, tmp_path, [COMPOSE, CPU_OVERRIDE], "k").stdout)
    for name, service in cpu["services"].items():
        assert "deploy" not in service, f"{name} still reserves a GPU on the CPU variant"
        if "build" in service:
            assert service["build"]["args"]["VARIANT"] == "cpu"


def test_docker_compose_config_requires_the_api_key(compose_bin: list[str], tmp_path: Path) -> None:
    result = compose_config(compose_bin, tmp_path, [COMPOSE], "")
    assert result.stdout.strip() == "" and "QDRANT_API_KEY" in result.stderr


def test_hadolint_finds_nothing() -> None:
    command = _binary("HADOLINT_BIN", "--version", ["hadolint"])
    if command is None:
        pytest.skip("no hadolint binary (set HADOLINT_BIN to one)")
    result = subprocess.run(
        [*command, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- docs/deploy.md ----------------------------------------------------------------------------


def doc_code_block(containing: str) -> str:
    """The ```python block of docs/deploy.md that contains ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "deploy.md").read_text(), re.S)
    matching = [block for block in blocks if containing in block]
    assert len(matching) == 1, f"{len(matching)} python blocks contain {containing!r}"
    return matching[0]


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
@pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")
def test_deploy_doc_copies_an_edge_gallery_to_a_server(tmp_path: Path) -> None:
    import numpy as np

    from stream.gallery import Appearance, Gallery, GalleryConfig, Tracklet

    namespace: dict[str, Any] = {}
    exec(compile(doc_code_block("def copy_gallery("), "docs/deploy.md", "exec"), namespace)
    rng = np.random.default_rng(0)
    dim, parts = 16, 3
    people = [(rng.normal(size=dim), rng.normal(size=(parts, dim))) for _ in range(5)]
    tracklets = [
        Tracklet(
            camera=f"cam{camera}",
            track=index,
            t_first=10.0 * camera + index,
            t_last=10.0 * camera + index + 1.0,
            appearance=Appearance(
                global_vector=vector + 0.01 * rng.normal(size=dim),
                part_vectors=part_vectors + 0.01 * rng.normal(size=(parts, dim)),
                visibility=np.ones(parts),
            ),
            thumbnail=f"thumbnails/cam{camera}_{index}.jpg",
        )
        for camera in (1, 2)
        for index, (vector, part_vectors) in enumerate(people[: 3 + camera])
    ]
    config = {"vector_size": dim, "num_parts": parts, "durability": "wal"}
    with Gallery.open(GalleryConfig(path=tmp_path / "edge", **config)) as edge:
        edge.match_batch(tracklets)
        assert len(edge) == len(tracklets) and edge.next_global_id > 2
        with Gallery.open(GalleryConfig(url=":memory:", **config)) as server:
            assert namespace["copy_gallery"](edge, server, batch=3) == len(tracklets)
            assert len(server) == len(edge)
            assert server.next_global_id == edge.next_global_id
            for global_id in range(1, edge.next_global_id):
                before, after = edge.records_of(global_id), server.records_of(global_id)
                assert [(r.camera, r.track, r.thumbnail) for r in after] == [
                    (r.camera, r.track, r.thumbnail) for r in before
                ]
                for old, new in zip(before, after, strict=True):
                    assert np.allclose(
                        old.appearance.part_vectors, new.appearance.part_vectors, atol=1e-3
                    )
