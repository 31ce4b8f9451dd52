"""The training engine on a tiny synthetic set: config errors, exact resume, torchrun with gloo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from reid_core import load
from reid_core.config import parse_overrides
from trainer.config import load_train_config
from trainer.engine import (
    FAULT_ENV,
    lr_factor,
    parameter_groups,
    prepare_train_out,
    train,
    warmup_iter_factor,
)
from trainer.synth.reid_set import ReidSetConfig, write_reid_set

TINY_MODEL = {
    "backbone": {"name": "resnet18", "weights": "random"},
    "transformer": {
        "d_model": 32,
        "nhead": 2,
        "num_encoder_layers": 1,
        "dim_feedforward": 64,
        "dropout": 0.0,
    },
    "heads": {"num_parts": 3},
    "input_size": [64, 32],
}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    cfg = ReidSetConfig(identities=16, cameras=2, seed=3, images_per_camera=(2, 3), size=(32, 64))
    write_reid_set(cfg, root, workers=1, show_progress=False)
    return root


def write_tiny_config(path: Path, data: dict, **changes: object) -> Path:
    """A two-epoch CPU training config of the tiny model on ``data``, with ``changes``."""
    config = {
        "model": TINY_MODEL,
        "data": {"num_workers": 0, **data},
        "transforms": {"height": 64, "width": 32, "pad": 2},
        "sampler": {"identities_per_batch": 4, "images_per_identity": 4},
        "optimizer": {"lr": 0.01},
        "scheduler": {"step_size": 1, "gamma": 0.5},
        "epochs": 2,
        "amp": "off",
        "max_steps_per_epoch": 2,
        "eval": {"every": 0},
        **changes,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture()
def tiny_config(tmp_path: Path, tiny_set: Path) -> Path:
    return write_tiny_config(
        tmp_path / "tiny.yaml", {"dataset": "synthetic", "root": str(tiny_set)}
    )


def test_overrides_address_nested_fields_and_bad_ones_are_named(tiny_config: Path) -> None:
    overrides = parse_overrides(["optimizer.lr=0.5", "sampler.identities_per_batch=2"])
    cfg = load_train_config(tiny_config, overrides)
    assert cfg.optimizer.lr == 0.5 and cfg.sampler.identities_per_batch == 2
    with pytest.raises(ValueError, match="optimizer.lrr"):
        load_train_config(tiny_config, parse_overrides(["optimizer.lrr=1"]))
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["epochs"])


def test_every_shipped_train_config_validates() -> None:
    configs = sorted(Path("configs/train").rglob("*.yaml"))
    assert len(configs) >= 10
    for path in configs:
        cfg = load_train_config(path)
        assert Path(cfg.model).is_file(), f"{path}: model config {cfg.model} is missing"


def test_step_schedule_with_warmup() -> None:
    cfg = load_train_config(
        Path("configs/train/market1501.yaml"),
        {"scheduler": {"warmup_epochs": 2, "warmup_factor": 0.1}},
    ).scheduler
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(1, cfg) == pytest.approx(0.55)
    assert lr_factor(29, cfg) == 1.0
    assert lr_factor(30, cfg) == pytest.approx(0.1)
    assert lr_factor(60, cfg) == pytest.approx(0.01)


def test_model_overrides_change_the_named_model_config() -> None:
    from reid_core.config import load_model_config

    cfg = load_train_config(
        Path("configs/train/synthetic_cpu.yaml"),
        parse_overrides(["model.loss.weights.part_supervision=1.0", "model.heads.num_parts=6"]),
    )
    model = load_model_config(cfg.model)
    assert model.loss.weights.part_supervision == 1.0 and model.heads.num_parts == 6
    assert model.backbone.name == "mobilenetv2"  # still cpu_small.yaml underneath


def test_per_step_warmup_and_parameter_groups() -> None:
    cfg = load_train_config(
        Path("configs/train/market1501.yaml"),
        {"scheduler": {"warmup_iters": 100, "warmup_factor": 0.1}},
    ).scheduler
    assert warmup_iter_factor(0, cfg) == pytest.approx(0.1)
    assert warmup_iter_factor(50, cfg) == pytest.approx(0.55)
    assert warmup_iter_factor(100, cfg) == warmup_iter_factor(10_000, cfg) == 1.0
    from reid_core import build_model

    model = build_model(TINY_MODEL)
    backbone, others = parameter_groups(model, lr=0.02, backbone_lr_factor=0.1)
    assert backbone["lr"] == pytest.approx(0.002) and others["lr"] == 0.02
    assert len(backbone["params"]) == len(list(model.backbone.parameters()))
    everything = {id(p) for p in model.parameters() if p.requires_grad}  # BNNeck bias: fixed
    assert {id(p) for p in backbone["params"] + others["params"]} == everything


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_resume_continues_exactly(tiny_config: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    history = train(tiny_config, whole)
    assert {"id_global", "tri_global", "equivariance", "feature_consistency", "total"} <= set(
        history
    )
    assert all(
        torch.isfinite(torch.tensor(v)) for k, v in history.items() if k != "step_identities"
    )

    split = tmp_path / "split"
    train(tiny_config, split, {"epochs": 1})
    after_one = _weights(split / "checkpoints" / "last.pt")
    train(tiny_config, split, {"epochs": 2}, resume=True)

    reference = _weights(whole / "checkpoints" / "last.pt")
    resumed = _weights(split / "checkpoints" / "last.pt")
    assert reference.keys() == resumed.keys()
    for name in reference:
        assert torch.equal(reference[name], resumed[name]), name
    assert any(not torch.equal(after_one[n], reference[n]) for n in reference)
    epochs = [json.loads(line)["epoch"] for line in (split / "history.jsonl").open()]
    assert epochs == [0, 1]


def test_resume_takes_a_checkpoint_from_before_a_new_field_but_not_another_model(
    tiny_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(tiny_config, out, {"epochs": 1})
    path = out / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    config = json.loads(state["model_config"])
    del config["loss"]["weights"]["part_usage"]  # as written before the field existed
    state["model_config"] = json.dumps(config)
    torch.save(state, path)
    train(tiny_config, out, {"epochs": 2}, resume=True)
    assert [json.loads(line)["epoch"] for line in (out / "history.jsonl").open()] == [0, 1]
    with pytest.raises(ValueError, match="another model config"):
        train(tiny_config, out, {"epochs": 3, "model": {"heads": {"num_parts": 4}}}, resume=True)


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_config: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_config, tmp_path / "empty", resume=True)


def test_a_used_out_folder_needs_resume_or_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "history.jsonl").write_text("{}\n")
    (out / "notes.md").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds a training run \(checkpoints, history"):
        prepare_train_out(out, resume=False, overwrite=False)
    with pytest.raises(ValueError, match="pick one"):
        prepare_train_out(out, resume=True, overwrite=True)
    prepare_train_out(out, resume=True, overwrite=False)  # resume reads what is there
    assert (out / "history.jsonl").is_file()
    prepare_train_out(out, resume=False, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.md"]


def test_sampler_group_must_match_the_feature_consistency_group(
    tiny_config: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="images_per_identity"):
        train(tiny_config, tmp_path / "x", {"sampler": {"images_per_identity": 3}})


def test_torchrun_two_processes_with_gloo(tiny_config: Path, tmp_path: Path) -> None:
    from reid_core import ReIDFeatures, load

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "trainer",
        "train",
        "--config",
        str(tiny_config),
        "--out",
        str(out),
        "--epochs",
        "1",
        "eval.every=1",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [json.loads((out / f"rank{r}_identities.json").read_text()) for r in (0, 1)]
    assert len(steps[0]) == len(steps[1]) == 2
    for ids0, ids1 in zip(*steps, strict=True):
        assert len(ids0) == len(ids1) == 2
        assert not set(ids0) & set(ids1)
    record = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= record["eval"]["mAP"] <= 1.0
    model = load(out / "model_best.safetensors").eval()
    with torch.no_grad():
        features = model(torch.randn(2, 3, 64, 32))
    assert isinstance(features, ReIDFeatures) and features.global_features.shape == (2, 32)


def test_row6_on_a_real_layout_learns_keypoints_from_a_keypoint_file(tmp_path: Path) -> None:
    """Ablation row #6 on Market-1501 naming: joints from `data.keypoints`, supervised for the
    first epoch, then the keypoint branch is frozen (no supervision term any more)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    names = {
        "bounding_box_train": [
            f"{pid:04d}_c{c}s1_00{i}451_01.jpg"
            for pid in (2, 7, 9)
            for c, i in [(1, 1), (2, 2), (3, 3), (1, 4)]
        ],
        "query": ["0010_c1s1_000151_01.jpg"],
        "bounding_box_test": ["0010_c2s1_000451_01.jpg"],
    }
    joints = {}
    for folder, files in names.items():
        for name in files:
            (tmp_path / folder).mkdir(exist_ok=True)
            cv2.imwrite(str(tmp_path / folder / name), rng.integers(0, 255, (64, 32, 3), np.uint8))
            joints[f"{folder}/{name}"] = [[16, 6, 1], [10, 60, 1], [22, 60, 1]]
    (tmp_path / "pose.json").write_text(
        json.dumps({"joint_names": ["head", "left_ankle", "right_ankle"], "images": joints})
    )
    path = write_tiny_config(
        tmp_path / "row6.yaml",
        {"dataset": "market1501", "root": str(tmp_path), "keypoints": "pose.json"},
        model={**TINY_MODEL, "heads": {"num_parts": 3, "keypoints": "pretrained"}},
        sampler={"identities_per_batch": 2, "images_per_identity": 4},
        keypoint_pretraining={"epochs": 1},
        max_steps_per_epoch=1,
    )
    train(path, tmp_path / "out")
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").open()]
    assert history[0]["keypoint_supervision"] > 0
    assert "keypoint_supervision" not in history[1] and "equivariance" not in history[1]


@pytest.mark.slow
def test_training_with_part_supervision_lowers_the_part_map_error(tmp_path: Path) -> None:
    """`trainer train` with loss.weights.part_supervision on a synthetic set: the rendered
    body-part maps reach the loss, and the segmentation's error against the maps of crops the
    model never trained on (the gallery split) falls."""
    from reid_core import load
    from reid_core.losses import part_supervision_loss
    from trainer.data import ImageDataset, build_dataset, build_transforms
    from trainer.data.transforms import TransformConfig

    data = tmp_path / "synth"
    cfg = ReidSetConfig(identities=16, cameras=2, seed=5, images_per_camera=(3, 4), size=(64, 128))
    write_reid_set(cfg, data, workers=1, show_progress=False)
    model = {
        **TINY_MODEL,
        "heads": {"num_parts": 6},
        "input_size": [128, 64],
        # the equivariance term's second forward pass on warped crops is not what this tests
        "loss": {"weights": {"part_supervision": 1.0, "equivariance": 0.0}},
    }
    path = write_tiny_config(
        tmp_path / "parts.yaml",
        {"dataset": "synthetic", "root": str(data)},
        model=model,
        transforms={"height": 128, "width": 64, "pad": 4},
        optimizer={"lr": 0.05},
        scheduler={"step_size": 100},
        epochs=15,  # 8 training identities: 2 steps an epoch
    )
    dataset = build_dataset("synthetic", data)
    test_tf = build_transforms(TransformConfig(height=128, width=64))[1]
    held_out = ImageDataset(dataset.gallery[:24], test_tf, part_maps=True)
    batch = [held_out[i] for i in range(len(held_out))]
    images = torch.stack([b["image"] for b in batch])
    maps = torch.stack([b["part_map"] for b in batch])

    def error(checkpoint: Path) -> float:
        with torch.no_grad():
            return part_supervision_loss(load(checkpoint).eval()(images).segmentation, maps).item()

    train(path, tmp_path / "one_step", {"epochs": 1, "max_steps_per_epoch": 1})
    before = error(tmp_path / "one_step" / "model_last.safetensors")
    train(path, tmp_path / "out")
    after = error(tmp_path / "out" / "model_last.safetensors")
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").open()]
    assert history[-1]["part_supervision"] > 0
    assert after < 0.8 * before


@pytest.mark.slow
def test_training_killed_at_five_seeded_points_resumes_to_the_weights_of_an_unbroken_run(
    tmp_path: Path, tiny_set: Path
) -> None:
    """SIGKILL mid-epoch and inside the checkpoint write (`OCCLUREID_FAULT`), each time
    resumed with --resume: the final checkpoint equals an unbroken run's, bit for bit."""
    config = write_tiny_config(
        tmp_path / "tiny.yaml", {"dataset": "synthetic", "root": str(tiny_set)}, epochs=3
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}

    def run(out: Path, *flags: str, fault: str | None = None) -> int:
        command = [sys.executable, "-m", "trainer", "train", "--config", str(config)]
        extra = {FAULT_ENV: fault} if fault else {}
        result = subprocess.run(
            [*command, "--out", str(out), *flags],
            env={**env, **extra},
            capture_output=True,
            timeout=300,
        )
        return result.returncode

    assert run(tmp_path / "unbroken") == 0
    rng = np.random.default_rng(7)  # 3 epochs of 2 steps; a checkpoint after each epoch
    broken, done, faults = tmp_path / "broken", 0, []
    for attempt in range(5):  # a kill point this process reaches: it has 3 - done epochs to go
        remaining = 3 - done
        if rng.random() < 0.5:
            step = int(rng.integers(1, 2 * remaining + 1))
            faults.append(f"step:{step}")
            done += (step - 1) // 2  # epochs it completed before the kill
        else:
            write = int(rng.integers(1, remaining + 1))
            faults.append(f"checkpoint:{write}")
            done += write - 1
        code = run(broken, *(["--resume"] if attempt else []), fault=faults[-1])
        assert code == -signal.SIGKILL, (faults, code)
        checkpoint = broken / "checkpoints" / "last.pt"
        saved = (
            torch.load(checkpoint, weights_only=True)["epoch"] + 1 if checkpoint.is_file() else 0
        )
        assert saved == done, faults
    assert run(broken, "--resume") == 0
    assert {f.split(":")[0] for f in faults} == {"step", "checkpoint"}, faults
    reference = _weights(tmp_path / "unbroken" / "checkpoints" / "last.pt")
    resumed = _weights(broken / "checkpoints" / "last.pt")
    for name in reference:
        assert torch.equal(reference[name], resumed[name]), name
    epochs = [json.loads(line)["epoch"] for line in (broken / "history.jsonl").open()]
    assert epochs == [0, 1, 2]
    assert load(broken / "model_last.safetensors") is not None


def test_init_fine_tunes_from_a_model_file_with_new_classifiers(
    tiny_config: Path, tmp_path: Path
) -> None:
    from reid_core import build_model, load, save

    # the starting model: another architecture than the config names (K = 2, d 48) and a
    # classifier for other identities
    start_config = {
        **TINY_MODEL,
        "transformer": {**TINY_MODEL["transformer"], "d_model": 48},
        "heads": {"num_parts": 2},
        "num_classes": 5,
    }
    torch.manual_seed(7)
    start = build_model(start_config).eval()
    save(start, tmp_path / "start.safetensors")
    out = tmp_path / "fine"
    # a vanishing learning rate: the fine-tuned weights stay the starting ones
    train(
        tiny_config,
        out,
        {"init": str(tmp_path / "start.safetensors"), "optimizer": {"lr": 1e-12}, "epochs": 1},
    )
    tuned = load(out / "model_last.safetensors")
    assert tuned.num_parts == 2 and tuned.dim == 48  # the file's architecture
    assert tuned.config.num_classes == 16 - 8  # the tiny set's training identities
    for name, tensor in start.state_dict().items():
        if "classifier" in name or "running" in name or "num_batches" in name:
            continue
        assert torch.allclose(tuned.state_dict()[name], tensor, atol=1e-6), name
    with pytest.raises(FileNotFoundError, match="init: model file"):
        train(tiny_config, tmp_path / "x", {"init": str(tmp_path / "missing.safetensors")})


def test_transform_size_must_be_the_models_input_size(tiny_config: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"transforms.height/width 128×64 differ"):
        train(tiny_config, tmp_path / "x", {"transforms": {"height": 128, "width": 64}})
