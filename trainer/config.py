"""Typed training configuration (`configs/train/*.yaml`): the paper's recipe as values (SPEC §2).

A train config names its model config (a path relative to the train config, or inline) and
holds the data, sampler, optimiser, schedule and run settings. `key=value` overrides on the
command line address any field by its dotted path (``optimizer.lr=0.02``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from reid_core.config import StrictModel, deep_merge, read_yaml_with_bases
from trainer.data.transforms import TransformConfig


class DataConfig(StrictModel):
    """Which data set trains the model (a name of `trainer.data.DATASET_NAMES`)."""

    dataset: str = "synthetic"
    root: str = "data/synth"
    options: dict[str, Any] = Field(default_factory=dict)
    keypoints: str | None = Field(
        None,
        description="keypoint file with given joints (ablation row #6 on real data; format in "
        "trainer.data.keypoints), relative to the data set root unless absolute",
    )
    num_workers: int = Field(2, ge=0)
    on_error: Literal["raise", "skip"] = "raise"


class SamplerConfig(StrictModel):
    """P identities × K images per *global* batch (paper: 16 × 4 = 64 over 8 GPUs, i.e. 2 × 4
    per GPU); P is split evenly over the processes of a torchrun launch."""

    identities_per_batch: int = Field(16, ge=1)
    images_per_identity: int = Field(4, ge=2)


class OptimizerConfig(StrictModel):
    """SGD as in the paper: momentum 0.9, weight decay 1e-4, lr 0.01.

    Two parameter groups: the (pre-trained) backbone learns at ``lr × backbone_lr_factor``,
    the new modules (projection, transformer, heads, necks, classifiers) at ``lr``. The paper
    states one lr (factor 1, the default); a randomly initialised transformer beside an
    ImageNet backbone is commonly given the larger step."""

    lr: float = Field(0.01, gt=0)
    backbone_lr_factor: float = Field(1.0, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    nesterov: bool = False


class SchedulerConfig(StrictModel):
    """Step decay ×gamma every `step_size` epochs, after an optional linear warm-up over
    `warmup_epochs` (per epoch) or `warmup_iters` (per step, from the first step of the run;
    both start at `warmup_factor` × lr)."""

    step_size: int = Field(30, ge=1)
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: int = Field(0, ge=0)
    warmup_iters: int = Field(0, ge=0)
    warmup_factor: float = Field(0.1, gt=0, le=1)


class EvalConfig(StrictModel):
    """Evaluation during training: the best checkpoint is kept by mAP.

    `dataset`/`root` default to the training data set; `every` 0 turns it off.
    """

    every: int = Field(5, ge=0)
    dataset: str | None = None
    root: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    distance: Literal["global", "occlusion-aware"] = "occlusion-aware"
    batch_size: int = Field(64, ge=1)


class KeypointPretrainingConfig(StrictModel):
    """Ablation #6: keypoints supervised by given 2-D joints for `epochs`, then frozen."""

    epochs: int = Field(0, ge=0)


class TrainConfig(StrictModel):
    model: str | dict[str, Any] = Field(
        ..., description="model config: a YAML path (relative to this file) or inline"
    )
    init: str | None = Field(
        None,
        description="fine-tune: a model file (.safetensors: the shipped model, a harvest round's "
        "model) whose weights start the training; its architecture (backbone, transformer, "
        "heads, neck, input size) replaces `model`'s, whose loss settings are kept; the "
        "classifiers start new (they were trained on other identities)",
    )
    data: DataConfig = DataConfig()
    transforms: TransformConfig = TransformConfig()
    sampler: SamplerConfig = SamplerConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    eval: EvalConfig = EvalConfig()
    keypoint_pretraining: KeypointPretrainingConfig = KeypointPretrainingConfig()
    epochs: int = Field(100, ge=1)
    seed: int = 0
    amp: Literal["off", "bf16", "fp16"] = "bf16"
    log_every: int = Field(10, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)


def load_train_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a train config YAML (with `_base_`), deep-merge `overrides`, validate; errors name
    the file and the field."""
    data = read_yaml_with_bases(Path(path), "train config", relative_paths=[("model",), ("init",)])
    if overrides:
        if isinstance(overrides.get("model"), Mapping) and isinstance(data.get("model"), str):
            # `model.heads.num_parts=6` changes the named model config, not a blank one
            data["model"] = {"_base_": data["model"]}
        data = deep_merge(data, overrides)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ValueError(f"{path}: invalid train config: {fields}") from None
