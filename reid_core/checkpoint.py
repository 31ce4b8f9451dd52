"""Checkpoints (SPEC §8 ``reid_core.save`` / ``reid_core.load``): ONE ``.safetensors`` file.

The tensors are the model's state dict; the metadata holds the model config as JSON and a
format version, so ``load`` rebuilds the model with no other input. No pickle anywhere.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from reid_core.backbone import state_dict_mismatch
from reid_core.config import ModelConfig
from reid_core.model import MotionAwareTransformer

FORMAT_NAME = "occlureid.reid_core"
FORMAT_VERSION = "1"


def save(model: nn.Module, path: str | Path, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` (a MotionAwareTransformer, possibly DDP-wrapped) and its config."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, MotionAwareTransformer):
        raise TypeError(f"reid_core.save needs a MotionAwareTransformer, got {type(inner)}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path {path} must end in .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()}
    metadata = {**(extra_metadata or {})}
    metadata.update(
        format=FORMAT_NAME, format_version=FORMAT_VERSION, model_config=inner.config.to_json()
    )
    temporary = path.with_suffix(".safetensors.tmp")
    save_file(tensors, temporary, metadata=metadata)
    temporary.replace(path)  # never leave a half-written checkpoint under the real name
    return path


def save_for_inference(
    model: nn.Module,
    path: str | Path,
    dtype: torch.dtype = torch.float16,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """What ships: the model without its training-only classifier heads (``num_classes`` 0)
    and its floating-point tensors in ``dtype`` (fp16 halves the file). ``load`` reads it
    back in float32; the features differ from the source model by fp16 rounding alone."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, MotionAwareTransformer):
        raise TypeError(f"save_for_inference needs a MotionAwareTransformer, got {type(inner)}")
    lean = MotionAwareTransformer(
        inner.config.model_copy(
            update={
                "num_classes": 0,
                "backbone": inner.config.backbone.model_copy(update={"weights": "random"}),
            }
        )
    )
    tensors = {k: v for k, v in inner.state_dict().items() if k in lean.state_dict()}
    lean.load_state_dict(tensors, strict=True)
    lean.config = inner.config.model_copy(update={"num_classes": 0})
    return save(lean.to(dtype), path, extra_metadata)  # to() leaves integer counters alone


def read_metadata(path: str | Path) -> dict[str, str]:
    """The checkpoint's metadata (format, version, model_config JSON, caller extras)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"checkpoint {path} is not a readable .safetensors file: {error}"
        ) from None
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(
            f"checkpoint {path} is not an OccluReID model (metadata format "
            f"{metadata.get('format')!r}, expected {FORMAT_NAME!r})"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format version {metadata.get('format_version')!r}; this "
            f"reid_core reads version {FORMAT_VERSION}"
        )
    return metadata


def load(path: str | Path, map_location: str | torch.device = "cpu") -> MotionAwareTransformer:
    """Rebuild the model from the stored config (backbone weights come from the file, so the
    original ImageNet file is not needed) and load its tensors strictly. Returned in eval()."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        cfg = ModelConfig.from_json(metadata["model_config"])
    except (KeyError, ValueError, ValidationError) as error:
        raise ValueError(f"checkpoint {path}: model_config metadata is invalid: {error}") from None
    cfg = cfg.model_copy(update={"backbone": cfg.backbone.model_copy(update={"weights": "random"})})
    model = MotionAwareTransformer(cfg)
    tensors = load_file(path, device=str(map_location))
    report = state_dict_mismatch(model.state_dict(), tensors)
    if report:
        raise ValueError(f"checkpoint {path}: tensors do not fit its model config: {report}")
    model.load_state_dict(tensors, strict=True)
    model.config = ModelConfig.from_json(metadata["model_config"])
    return model.to(map_location).eval()
