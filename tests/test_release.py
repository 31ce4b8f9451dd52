"""Shipped models (issue "a shipped model"): fp16 head-free files, `trainer release` cards whose
digest and figures belong to the file, digest checks, and the repository's own shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from stream_setup import TINY_MODEL

from reid_core import build_model, load, save
from reid_core.checkpoint import save_for_inference
from reid_core.zoo import (
    DEFAULT_MODEL,
    MODELS_ENV,
    cache_dir,
    file_sha256,
    load_shipped,
    models_dir,
    read_card,
    shipped_model_path,
    shipped_onnx_path,
)
from trainer.cli import main as trainer_main
from trainer.engine import train
from trainer.synth.reid_set import ReidSetConfig, write_reid_set


def test_an_inference_file_drops_the_heads_and_halves_the_floats(tmp_path: Path) -> None:
    model = build_model({**TINY_MODEL, "num_classes": 40}).eval()
    full = tmp_path / "full.safetensors"
    save(model, full)
    lean = save_for_inference(model, tmp_path / "lean.safetensors")
    assert lean.stat().st_size < 0.6 * full.stat().st_size
    reloaded = load(lean)
    assert reloaded.config.num_classes == 0 and reloaded.global_classifier is None
    assert all(p.dtype == torch.float32 for p in reloaded.parameters())  # loads as float32
    images = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        before, after = model(images), reloaded(images)
    scale = before.global_features.abs().max()
    assert (before.global_features - after.global_features).abs().max() < 5e-3 * scale
    assert torch.allclose(before.segmentation, after.segmentation, atol=5e-3)


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-epoch tiny run on a tiny rendered set, released into its own models folder."""
    root = tmp_path_factory.mktemp("release")
    data = root / "set"
    cfg = ReidSetConfig(identities=12, cameras=2, seed=4, images_per_camera=(2, 3), size=(32, 64))
    write_reid_set(cfg, data, workers=1, show_progress=False)
    recipe = root / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": TINY_MODEL,
                "data": {"dataset": "synthetic", "root": str(data), "num_workers": 0},
                "transforms": {"height": 64, "width": 32, "pad": 2},
                "sampler": {"identities_per_batch": 3, "images_per_identity": 4},
                "epochs": 2,
                "max_steps_per_epoch": 2,
                "amp": "off",
                "eval": {"every": 0},
            }
        )
    )
    run = root / "run"
    train(recipe, run)
    models = root / "models"
    code = trainer_main(
        ["release", "--run", str(run), "--recipe", str(recipe), "--out", str(models)]
        + ["--real-probe", str(root / "no-clip"), "--benchmark", str(data)]
        + ["--calibration-scene", "3", "4", "--calibration-scenes", "2"]
    )
    assert code == 0
    return run, models


def test_release_writes_a_card_that_belongs_to_the_file(
    released: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, models = released
    monkeypatch.setenv(MODELS_ENV, str(models))
    assert models_dir() == models
    card = read_card(DEFAULT_MODEL)
    weights = shipped_model_path(DEFAULT_MODEL)
    assert card.sha256 == file_sha256(weights) and card.file == f"{DEFAULT_MODEL}.safetensors"
    assert card.steps == 4 and card.wall_time_s > 0.0
    assert card.data["identities"]["train"] == 6 and card.data["identities"]["test"] == 6
    synthetic = card.figures["synthetic"]
    assert 0.0 <= synthetic["occluded_query/global"]["mAP"] <= 1.0
    assert "occluded_query/occlusion-aware" in synthetic and "part_health" in synthetic
    assert card.figures["real_probe"] is None  # no clip: said, not invented
    other = card.figures["other_sets"]
    assert list(other) == [card_set := str(run.parent / "set")]
    assert other[card_set]["occluded_query/global"] == synthetic["occluded_query/global"]
    assert card.threshold > 0.0 and "2 held-out rendered scene(s)" in card.threshold_source
    assert "seeds 1000–1001" in card.threshold_source  # never the demo's scene
    page = (models / f"{DEFAULT_MODEL}.md").read_text()
    assert card.sha256 in page and "not measured" in page
    assert load_shipped(DEFAULT_MODEL).config.num_classes == 0
    # releasing again over a shipped model needs --replace
    assert trainer_main(["release", "--run", str(run), "--recipe", "r", "--out", str(models)]) == 2


def test_no_calibration_scene_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["release", "--run", str(tmp_path / "run"), "--recipe", "r"]
    argv += ["--out", str(tmp_path / "models"), "--calibration-scenes", "0"]
    assert trainer_main(argv) == 2
    assert "--calibration-scenes must be ≥ 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_an_altered_or_unknown_model_is_refused(
    released: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, models = released
    copy = tmp_path / "models"
    copy.mkdir()
    for name in (f"{DEFAULT_MODEL}.json", f"{DEFAULT_MODEL}.safetensors"):
        (copy / name).write_bytes((models / name).read_bytes())
    monkeypatch.setenv(MODELS_ENV, str(copy))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exported = shipped_onnx_path(DEFAULT_MODEL)  # cached before the weights change
    with pytest.raises(
        FileNotFoundError, match=f"no shipped model 'nope'.*shipped: {DEFAULT_MODEL}"
    ):
        read_card("nope")
    weights = copy / f"{DEFAULT_MODEL}.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")  # one byte more: another digest
    with pytest.raises(ValueError, match="does not match its card"):
        shipped_model_path(DEFAULT_MODEL)
    assert exported.is_file()  # a cached export does not vouch for altered weights
    with pytest.raises(ValueError, match="does not match its card"):
        shipped_onnx_path(DEFAULT_MODEL)
    card_path = copy / f"{DEFAULT_MODEL}.json"
    card = json.loads(card_path.read_text())
    card["sha256"] = "xyz"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="not a valid model card"):
        read_card(DEFAULT_MODEL)


def test_the_repository_ships_its_default_model_with_a_matching_card() -> None:
    card = read_card(DEFAULT_MODEL)
    path = shipped_model_path(DEFAULT_MODEL)
    assert path.parent == models_dir() and path.stat().st_size <= 20 * 1024 * 1024
    assert card.sha256 == file_sha256(path)
    assert card.sha256 in (models_dir() / f"{DEFAULT_MODEL}.md").read_text()
    with safe_open(path, framework="pt") as handle:
        dtypes = {handle.get_slice(name).get_dtype() for name in handle.keys()}  # noqa: SIM118
    assert dtypes <= {"F16", "I64"}  # fp16 weights, integer BatchNorm counters
    model = load(path)
    assert model.config.num_classes == 0 and model.global_classifier is None


@pytest.fixture()
def shipped(released: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny release as the shipped default model; ONNX exports go to a fresh cache."""
    _, models = released
    monkeypatch.setenv(MODELS_ENV, str(models))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return models


def test_the_embedder_and_the_worker_default_to_the_shipped_model(shipped: Path) -> None:
    from reid_core.runtime.embedder import EmbedderConfig
    from stream.worker import Worker
    from stream.worker_config import parse_worker_config

    card = read_card()
    torch_config = EmbedderConfig(runtime="torch").resolved()
    assert torch_config.model == shipped / card.file
    onnx_config = EmbedderConfig().resolved()  # onnxruntime: exported once into the cache
    assert onnx_config.model == cache_dir() / f"{DEFAULT_MODEL}-{card.sha256[:16]}.onnx"
    assert onnx_config.model.is_file()
    stamp = onnx_config.model.stat().st_mtime_ns
    assert EmbedderConfig().resolved().model.stat().st_mtime_ns == stamp  # not exported again
    embedder = EmbedderConfig(runtime="torch").open()
    assert (embedder.num_parts, tuple(embedder.input_size)) == (3, (64, 32))

    def worker(gallery: dict) -> Worker:
        config = parse_worker_config({"embedder": {"runtime": "torch"}, "gallery": gallery})
        return Worker.from_config(config, publish=lambda message: None)

    default = worker({"url": ":memory:"})
    assert default.gallery.config.threshold == card.threshold  # the card's calibration
    default.close()
    chosen = worker({"url": ":memory:", "threshold": 0.42})
    assert chosen.gallery.config.threshold == 0.42  # a stated threshold wins
    chosen.close()


@pytest.mark.slow
def test_the_demo_runs_the_shipped_model_and_still_trains_on_request(
    shipped: Path, tmp_path: Path
) -> None:
    from stream.demo import run_demo
    from trainer.synth.video import VideoConfig

    scene = VideoConfig(cameras=2, people=3, seconds=3, seed=2, size=(320, 180))
    result = run_demo(
        tmp_path / "demo",
        live=False,
        scene_config=scene,
        detector="background_subtraction",
        pace=None,  # the videos as fast as they are read: real time adds waiting, not checks
    )
    assert result["model"] == DEFAULT_MODEL and result["threshold"] == read_card().threshold
    assert result["detector"] == "background_subtraction"
    assert 0.0 <= result["scores"]["IDF1"] <= 1.0
    assert not (tmp_path / "demo" / "model").exists()  # nothing trained
    trained = run_demo(
        tmp_path / "demo",
        live=False,
        train_model=True,
        scene_config=scene,
        pace=None,
        identities=12,
        train_overrides={
            "epochs": 1,
            "max_steps_per_epoch": 2,
            "sampler": {"identities_per_batch": 3},
        },
    )
    onnx = tmp_path / "demo" / "model" / "model.onnx"
    assert trained["model"] == str(onnx) and onnx.is_file() and trained["threshold"] > 0.0
    assert 0.0 <= trained["scores"]["IDF1"] <= 1.0
