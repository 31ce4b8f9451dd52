"""Bad input to every CLI is one line naming the file and the field — never a traceback.

More than 100 malformed variants (cams.yaml, worker config, train config, checkpoint, query
image, data-set folder) go through each CLI's entry function in process (``main(argv)``); a
handful run as real subprocesses to check what a user sees: the exit code and stderr.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml
from test_data import write_synthetic
from test_model import tiny_model_config

from reid_core import build_model, save
from reid_core.runtime import MALLOC_ENV
from reid_core.runtime.embedder import EmbedderConfig
from stream.cli import main as stream_main
from stream.config import load_cams_config
from stream.gallery import Appearance, Gallery, GalleryConfig, TrackletRecord
from stream.pipeline import worker_configs
from trainer.cli import main as trainer_main

BAD_VALUES = ("\x00bad", {"nested": [[]]})  # wrong for every scalar, list and typed mapping

CAMS = {
    "cameras": [
        {
            "id": "cam1",
            "source": {"type": "video", "path": "cam1.mp4", "loop": False, "pace": 1.0},
            "fps": 10,
            "roi": [0, 0, 100, 100],
            "ground_truth": "gt.txt",
        }
    ],
    "detector": {"name": "ground_truth", "min_visibility": 0.0},
    "tracker": {"name": "bytetrack", "lost_track_s": 1.0, "minimum_iou_threshold": 0.1},
    "crops": {
        "min_width": 16,
        "min_height": 32,
        "border_margin": 2,
        "min_score": 0.3,
        "every_n_frames": 5,
        "max_per_track": 16,
        "jpeg_quality": 90,
    },
    "workers": {
        "count": 1,
        "queue_size": 256,
        "send_hwm": 8,
        "flush_timeout_s": 2.0,
        "restart_limit": 5,
        "restart_backoff_s": 1.0,
    },
    "worker": {
        "embedder": {"runtime": "torch", "model": "MODEL", "threads": 1},
        "batching": {"max_batch": 8, "max_wait_ms": 10},
        "tracklets": {"min_crops": 2, "rematch_every": 8},
        "stats_interval_s": 1.0,
    },
    "gallery": {"path": "gallery", "collection": "tracklets", "threshold": 0.5, "top_n": 20},
    "outputs": {"video": True, "thumbnails": True},
}

WORKER = {
    "name": "worker-a",
    "embedder": {"runtime": "torch", "model": "MODEL", "threads": 1},
    "gallery": {"path": "gallery", "threshold": 0.5, "top_n": 20, "lam": 1.0},
    "sockets": {
        "crops": {"endpoint": "ipc:///tmp/occlureid-cli-errors-crops", "bind": True},
        "assignments": {"endpoint": "ipc:///tmp/occlureid-cli-errors-out", "bind": True},
        "receive_hwm": 1000,
    },
    "batching": {"max_batch": 8, "max_wait_ms": 10},
    "tracklets": {"min_crops": 2, "rematch_every": 8, "idle_timeout_s": 5.0},
    "stats_interval_s": 1.0,
}


def leaves(tree: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every key path to a scalar or list in a nested mapping (lists of mappings descended)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, (*path, key))
    elif isinstance(tree, list) and tree and isinstance(tree[0], dict):
        for index, value in enumerate(tree):
            yield from leaves(value, (*path, index))
    else:
        yield path


def mutated(tree: dict, path: tuple, value: Any) -> dict:
    copied = copy.deepcopy(tree)
    node = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copied


def field_name(path: tuple) -> str:
    """The last named key of a path (what the message must mention)."""
    return next(str(key) for key in reversed(path) if isinstance(key, str))


@pytest.fixture
def one_line_error(capsys: pytest.CaptureFixture) -> Callable[..., str]:
    """``check(main, argv, *names)``: exit code 2, exactly one error line on stdout/stderr
    naming every ``names``, no traceback. Returns the line."""

    def check(main: Callable[[list[str]], int], argv: list[str], *names: str) -> str:
        code = main(argv)
        captured = capsys.readouterr()
        text = captured.out + captured.err
        lines = [line for line in text.splitlines() if "error" in line.lower()]
        assert code == 2, (argv, text[-600:])
        assert "Traceback" not in text, text
        assert len(lines) == 1, lines
        for name in names:
            assert name in lines[0], (name, lines[0])
        return lines[0]

    return check


@pytest.fixture
def no_reexec(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in MALLOC_ENV.items():  # `stream worker` would re-execute pytest otherwise
        monkeypatch.setenv(key, value)


def cams_variants(cams: dict) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(name, file text, names the error must mention) for malformed variants of ``cams``."""
    for path in leaves(cams):
        for index, value in enumerate(BAD_VALUES):
            text = yaml.safe_dump(mutated(cams, path, value))
            yield f"{'.'.join(map(str, path))}#{index}", text, (field_name(path),)
    yield "empty", "", ()
    yield "a list", "- cameras\n", ("mapping",)
    yield "bad YAML", "cameras: [\n", ("malformed YAML",)
    yield "tab", "cameras:\n\t- id: a\n", ("malformed YAML",)
    yield "unknown top key", yaml.safe_dump({**cams, "camerass": []}), ("camerass",)
    yield "no cameras", yaml.safe_dump({**cams, "cameras": []}), ("cameras",)
    twins = {**cams, "cameras": cams["cameras"] * 2}
    yield "duplicate ids", yaml.safe_dump(twins), ("cam1",)
    yield (
        "missing source",
        yaml.safe_dump(mutated(cams, ("cameras", 0, "source"), "gone.mp4")),
        ("gone.mp4",),
    )


def test_malformed_cams_yaml_is_one_line_naming_file_and_field(
    tmp_path: Path, one_line_error: Callable[..., str]
) -> None:
    (tmp_path / "cam1.mp4").write_bytes(b"not a video")
    (tmp_path / "gt.txt").write_text("1,1,0,0,10,20,1,1,1\n")
    (tmp_path / "model.safetensors").write_bytes(b"never loaded: every variant fails before")
    cams = mutated(CAMS, ("worker", "embedder", "model"), str(tmp_path / "model.safetensors"))
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(cams))
    config = load_cams_config(base)  # the unmutated file is valid: each error is the mutation's
    worker_configs(config, tmp_path / "base-run", "run-0", str(base))
    count = 0
    for _, text, names in cams_variants(cams):
        path = tmp_path / f"cams-{count}.yaml"
        path.write_text(text)
        out = tmp_path / f"out-{count}"
        one_line_error(
            stream_main, ["run", "--cameras", str(path), "--out", str(out)], path.name, *names
        )
        count += 1
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00cameras")
    for path, names in [
        (binary, ("not UTF-8",)),
        (tmp_path, ("Is a directory",)),
        (tmp_path / "absent.yaml", ("not found",)),
    ]:
        one_line_error(
            stream_main,
            ["run", "--cameras", str(path), "--out", str(tmp_path / "o")],
            path.name,
            *names,
        )
        count += 1
    assert count >= 60


def test_malformed_worker_and_train_configs_are_one_line(
    tmp_path: Path, one_line_error: Callable[..., str], no_reexec: None
) -> None:
    count = 0
    for path in leaves(WORKER):
        if path == ("embedder", "model"):
            continue  # a missing model is its own case below
        for value in BAD_VALUES:
            config = tmp_path / f"worker-{count}.yaml"
            config.write_text(yaml.safe_dump(mutated(WORKER, path, value)))
            one_line_error(
                stream_main, ["worker", "--config", str(config)], config.name, field_name(path)
            )
            count += 1
    config = tmp_path / "worker-model.yaml"
    config.write_text(yaml.safe_dump(WORKER))
    one_line_error(stream_main, ["worker", "--config", str(config)], "MODEL")
    train_base = {"_base_": str(Path(__file__).parents[1] / "configs/train/synthetic_cpu.yaml")}
    for key, value in [
        ("epochs", "many"),
        ("optimizer", {"lr": "fast"}),
        ("sampler", [1]),
        ("unknown_key", 1),
    ]:
        config = tmp_path / f"train-{key}.yaml"
        config.write_text(yaml.safe_dump({**train_base, key: value}))
        one_line_error(
            trainer_main,
            ["train", "--config", str(config), "--out", str(tmp_path / "t")],
            config.name,
            key,
        )
        count += 1
    assert count >= 30


def test_malformed_checkpoints_images_and_data_sets_are_one_line(
    tmp_path: Path, one_line_error: Callable[..., str]
) -> None:
    torch.manual_seed(0)
    good = save(build_model(tiny_model_config(input_size=[64, 32])), tmp_path / "tiny.safetensors")
    data = good.read_bytes()
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_size])
    checkpoints = {
        "empty.safetensors": b"",
        "random.safetensors": np.random.default_rng(0).bytes(4096),
        "truncated.safetensors": data[: len(data) // 2],
        "no-config.safetensors": _with_metadata(data, header, {}),
        "bad-json.safetensors": _with_metadata(data, header, {"model_config": "{not json"}),
        "wrong-field.safetensors": _with_metadata(data, header, {"model_config": '{"heads": 3}'}),
        "text.onnx": b"not onnx",
    }
    count = 0
    for name, content in checkpoints.items():
        path = tmp_path / name
        path.write_bytes(content)
        argv = ["export", "--checkpoint", str(path), "--out", str(tmp_path / "x.onnx")]
        one_line_error(trainer_main, argv, name)
        count += 1
    one_line_error(
        trainer_main,
        [
            "export",
            "--checkpoint",
            str(tmp_path / "gone.safetensors"),
            "--out",
            str(tmp_path / "x.onnx"),
        ],
        "gone.safetensors",
    )
    count += 1

    embedder = EmbedderConfig(runtime="torch", model=good).open()
    sizes = {"vector_size": embedder.dim, "num_parts": embedder.num_parts}
    with Gallery.open(GalleryConfig(path=tmp_path / "g", **sizes)) as gallery:  # one tracklet
        rng = np.random.default_rng(1)
        appearance = Appearance(
            rng.normal(size=embedder.dim),
            rng.normal(size=(embedder.num_parts, embedder.dim)),
            np.ones(embedder.num_parts),
        )
        gallery.add(
            [
                TrackletRecord(
                    camera="c", track=1, t_first=0, t_last=1, appearance=appearance, global_id=1
                )
            ]
        )
    images = {"empty.jpg": b"", "text.jpg": b"hello", "cut.jpg": _jpeg()[:40]}
    (tmp_path / "folder.jpg").mkdir()
    for name, content in images.items():
        (tmp_path / name).write_bytes(content)
    for name in [*images, "folder.jpg", "gone.jpg"]:
        argv = [
            "search",
            "--image",
            str(tmp_path / name),
            "--gallery",
            str(tmp_path / "g"),
            "--model",
            str(good),
        ]
        one_line_error(stream_main, argv, name)
        count += 1

    for name, make in DATA_SETS.items():
        root = tmp_path / f"data-{name}"
        make(root)
        one_line_error(
            trainer_main, ["data", "--dataset", "synthetic", "--root", str(root)], root.name
        )
        count += 1
    assert count >= 18


def _with_metadata(data: bytes, header: dict, metadata: dict) -> bytes:
    """The same tensors with another ``__metadata__`` (a safetensors file's config)."""
    size = int.from_bytes(data[:8], "little")
    new_header = json.dumps({**header, "__metadata__": metadata}).encode()
    return len(new_header).to_bytes(8, "little") + new_header + data[8 + size :]


def _jpeg() -> bytes:
    return cv2.imencode(".jpg", np.full((64, 32, 3), 128, np.uint8))[1].tobytes()


def _meta_only(root: Path, text: str) -> None:
    root.mkdir()
    (root / "meta.json").write_text(text)


def _broken_set(root: Path, edit: Callable[[Path], None]) -> None:
    """A valid synthetic set (as `trainer synth reid` writes it) with one thing broken."""
    write_synthetic(root)
    edit(root)


def _manifest_line(root: Path, text: str) -> None:
    with open(root / "manifest.jsonl", "a") as manifest:
        manifest.write(text + "\n")


def _first_image(root: Path) -> Path:
    return next(iter(sorted((root / "bounding_box_train").iterdir())))


DATA_SETS: dict[str, Callable[[Path], None]] = {
    "absent": lambda root: None,
    "empty": lambda root: root.mkdir(),
    "meta-not-json": lambda root: _meta_only(root, "{nope"),
    "meta-a-list": lambda root: _meta_only(root, "[1, 2]"),
    "manifest-not-json": lambda root: _broken_set(root, lambda r: _manifest_line(r, "{x")),
    "manifest-no-pid": lambda root: _broken_set(
        root, lambda r: _manifest_line(r, '{"path": "a.jpg", "camid": 1, "joints": []}')
    ),
    "no-joint-names": lambda root: _broken_set(
        root, lambda r: (r / "meta.json").write_text('{"joint_names": []}')
    ),
    "bad-file-name": lambda root: _broken_set(
        root, lambda r: (r / "bounding_box_train" / "person.jpg").write_bytes(_jpeg())
    ),
    "no-train-folder": lambda root: _broken_set(
        root, lambda r: shutil.rmtree(r / "bounding_box_train")
    ),
    "meta-not-utf8": lambda root: _broken_set(
        root, lambda r: (r / "meta.json").write_bytes(b"\xff\xfe{")
    ),
}


@pytest.mark.parametrize(
    "argv, names",
    [
        (["stream", "run", "--cameras", "{missing}"], ("missing.yaml",)),
        (["stream", "worker", "--config", "{bad_worker}"], ("bad-worker.yaml", "batching")),
        (["trainer", "train", "--config", "{missing}"], ("missing.yaml",)),
        (
            ["trainer", "export", "--checkpoint", "{bad_worker}", "--out", "x.onnx"],
            ("bad-worker.yaml",),
        ),
    ],
)
def test_as_a_subprocess_the_user_sees_one_line_and_exit_code_2(
    tmp_path: Path, argv: list[str], names: tuple[str, ...]
) -> None:
    bad_worker = tmp_path / "bad-worker.yaml"
    bad_worker.write_text("batching: {max_batch: -1}\n")
    values = {"missing": str(tmp_path / "missing.yaml"), "bad_worker": str(bad_worker)}
    program, *rest = [arg.format(**values) for arg in argv]
    result = subprocess.run(
        [sys.executable, "-m", program, *rest],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and all(name in lines[0] for name in names), result.stderr
    debug = subprocess.run(
        [sys.executable, "-m", program, *rest, "--debug"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert "Traceback" in debug.stderr
