"""Checkpoints: one .safetensors file that rebuilds its model, and clear errors otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_model import tiny_model_config

from reid_core.checkpoint import FORMAT_NAME, load, read_metadata, save
from reid_core.model import build_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    model = build_model(tiny_model_config(heads={"num_parts": 3}, num_classes=4)).eval()
    path = save(model, tmp_path_factory.mktemp("ckpt") / "model.safetensors", {"epoch": "7"})
    return model, path


def test_load_rebuilds_the_model_from_the_file_alone(saved) -> None:
    model, path = saved
    assert path.read_bytes()[:8] != b"PK\x03\x04"  # not a (pickle) zip: safetensors header
    restored = load(path)
    assert not restored.training
    assert restored.config == model.config
    assert read_metadata(path)["epoch"] == "7"
    images = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        assert torch.equal(model(images).part_features, restored(images).part_features)


def test_a_checkpoint_whose_tensors_do_not_fit_its_config_names_them(saved, tmp_path) -> None:
    _, path = saved
    metadata = read_metadata(path)
    config = json.loads(metadata["model_config"])
    config["heads"]["num_parts"] = 5
    config["transformer"]["num_encoder_layers"] = 2
    wrong = tmp_path / "wrong.safetensors"
    save_file(load_file(path), wrong, metadata={**metadata, "model_config": json.dumps(config)})
    with pytest.raises(ValueError, match="do not fit") as error:
        load(wrong)
    message = str(error.value)
    assert "missing" in message and "encoder.layers.1." in message
    assert (
        "wrong shape" in message
        and "decoder.keypoint_queries (3, 64) (expected (5, 64))" in message
    )


def test_files_that_are_not_our_checkpoints_are_clear_errors(saved, tmp_path) -> None:
    _, path = saved
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        load(tmp_path / "nowhere.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable .safetensors"):
        load(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(1)}, foreign, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=f"expected '{FORMAT_NAME}'"):
        load(foreign)
    future = tmp_path / "future.safetensors"
    save_file(load_file(path), future, metadata={**read_metadata(path), "format_version": "99"})
    with pytest.raises(ValueError, match="format version '99'"):
        load(future)
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save(build_model(tiny_model_config()), tmp_path / "model.pt")
