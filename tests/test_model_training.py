"""Every config in configs/model/, shrunk to a tiny width and 64×32 crops but with its own
switches, trains (finite losses, gradients reach the backbone) and round-trips through a
checkpoint. The real sizes are covered by test_model_configs.py; configs that shrink to the
same model (e.g. full and light_resnet18) are run once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_model_configs import CONFIGS, random_unless_shipped

from reid_core.checkpoint import load, save
from reid_core.config import deep_merge, load_model_config
from reid_core.losses import MotionAwareLoss
from reid_core.model import build_model
from reid_core.parts import BODY_PARTS

SHRINK = {
    "transformer": {"d_model": 64, "nhead": 4, "num_encoder_layers": 1, "dim_feedforward": 128},
    "num_classes": 2,
    "input_size": [64, 32],
}


def _shrunk(path: Path) -> dict:
    cfg = load_model_config(path)
    backbone = {} if cfg.backbone.name == "mobilenetv2" else {"backbone": {"name": "resnet18"}}
    return deep_merge(deep_merge(SHRINK, backbone), random_unless_shipped(path))


def _distinct_shrunk_configs() -> list[Path]:
    seen: dict[str, Path] = {}
    for path in CONFIGS:
        seen.setdefault(load_model_config(path, _shrunk(path)).to_json(), path)
    return list(seen.values())


@pytest.mark.parametrize("path", _distinct_shrunk_configs(), ids=lambda p: p.stem)
def test_config_trains_and_round_trips_through_a_checkpoint(path: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = load_model_config(path, _shrunk(path))
    model = build_model(cfg).train()
    images = torch.randn(8, 3, 64, 32)
    pids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    joints = None
    if cfg.heads.keypoints == "pretrained":
        joints = torch.cat(
            [torch.rand(8, cfg.heads.num_parts, 2) * 2 - 1, torch.ones(8, cfg.heads.num_parts, 1)],
            -1,
        )
    part_maps = None
    if cfg.loss.weights.part_supervision > 0:  # rendered body-part labels (reid_core.parts)
        part_maps = torch.randint(0, len(BODY_PARTS), (8, 64, 32), dtype=torch.uint8)
    terms = MotionAwareLoss(cfg)(model, images, pids, joints, part_maps)
    assert all(torch.isfinite(value) for value in terms.values()), terms
    terms["total"].backward()
    stem = next(model.backbone.parameters())
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    model.eval()
    with torch.no_grad():
        before = model(images[:2])
    restored = load(save(model, tmp_path / "model.safetensors"))
    assert restored.config == model.config
    with torch.no_grad():
        after = restored(images[:2])
    for name, value in before.as_dict().items():
        assert torch.equal(value, getattr(after, name)), name
