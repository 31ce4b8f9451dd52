"""The one embedder interface every runtime meets (SPEC §4), and the registry of runtimes.

An embedder turns a list of BGR uint8 crops into `ReIDFeatures`. Both runtimes run the same
`preprocess_crops` first (`PreprocessingEmbedder.embed`), so they differ only in the forward
pass: PyTorch on a ``.safetensors`` checkpoint (`torch`), onnxruntime on an exported ``.onnx``
file (`onnxruntime`, providers TensorRT → CUDA → CPU). Runtimes are found by name in
`RUNTIMES` and imported only when asked for, so the worker never loads the one it does not use.
"""

from __future__ import annotations

import importlib
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reid_core.config import ConfigPath
from reid_core.features import ReIDFeatures, embed_flipped
from reid_core.runtime.preprocess import preprocess_crops

# name → "module:class" of a `PreprocessingEmbedder`, opened by its `from_config`.
RUNTIMES = {
    "torch": "reid_core.runtime.torch_runtime:TorchEmbedder",
    "onnxruntime": "reid_core.runtime.onnx_runtime:OnnxEmbedder",
}

Device = Literal["auto", "cpu", "cuda"]

# NOTES "CPU speed traps": glibc malloc returns large activation buffers to the OS after every
# forward pass (a ResNet-50 at batch 32 spent 42 s of 65 s in page faults); these keep them.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
    "MALLOC_TOP_PAD_": "536870912",
}


def ensure_malloc_env() -> None:
    """Re-execute this process with `MALLOC_ENV` set when it is not (glibc reads it at start).

    Uses ``sys.orig_argv`` so ``python -m pkg ...``, ``python -c ...`` and console scripts all
    restart exactly as they were launched; the process id stays the same (``execve``).
    """
    if all(os.environ.get(key) == value for key, value in MALLOC_ENV.items()):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **MALLOC_ENV})


@runtime_checkable
class Embedder(Protocol):
    """What a worker needs from a runtime: crops in, features out, and the feature shapes."""

    name: str  # the runtime's registry name
    device: str  # where it runs, as the library names it ("cpu", "cuda:0", "CPUExecutionProvider")

    @property
    def dim(self) -> int:
        """d of the global and part features."""

    @property
    def num_parts(self) -> int:
        """K, the number of part features."""

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) every crop is resized to."""

    def embed(self, crops: Sequence[np.ndarray]) -> ReIDFeatures:
        """BGR uint8 [h, w, 3] crops → features on the CPU, one row per crop, in order."""


class PreprocessingEmbedder(ABC):
    """The shared half of every runtime: validation and `preprocess_crops`, then `forward`."""

    name: str
    device: str
    dim: int
    num_parts: int
    input_size: tuple[int, int]
    flip: bool = False  # set by EmbedderConfig.open: average each crop with its mirror image

    def embed(self, crops: Sequence[np.ndarray]) -> ReIDFeatures:
        if len(crops) == 0:
            raise ValueError(f"{self.name} embedder: embed() needs at least one crop")
        images = preprocess_crops(crops, self.input_size)
        return embed_flipped(self.forward, images) if self.flip else self.forward(images)

    @classmethod
    @abstractmethod
    def from_config(cls, config: EmbedderConfig) -> PreprocessingEmbedder:
        """Open ``config.model`` with the config's device, threads and runtime options."""

    @abstractmethod
    def forward(self, images: torch.Tensor) -> ReIDFeatures:
        """Normalised [B, 3, H, W] float32 CPU images → CPU features."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(device={self.device!r}, d={self.dim}, K={self.num_parts}, "
            f"input={self.input_size[0]}x{self.input_size[1]})"
        )


def runtime_for(model: str | Path) -> str:
    """The runtime that serves a model file: onnxruntime an ``.onnx``, torch a checkpoint."""
    return "onnxruntime" if Path(model).suffix == ".onnx" else "torch"


def runtime_class(name: str) -> type[PreprocessingEmbedder]:
    """The embedder class registered as ``name``; an unknown name lists the valid ones."""
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; valid runtimes: {', '.join(sorted(RUNTIMES))}")
    module_name, class_name = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


class TensorRTOptions(BaseModel):
    """How onnxruntime's TensorRT provider builds its engines. An engine is built for the batch
    shapes of one optimisation profile (1 … ``max_batch``, tuned for ``opt_batch``) and kept in
    ``engine_cache`` (default: ``tensorrt/`` in OccluReID's cache folder, one engine per model
    file and GPU), so a worker restart or a new batch size does not rebuild it (minutes on a large
    model). ``fp16`` lets TensorRT run layers in half precision (check the features against
    fp32 with `trainer export`'s parity report before serving it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine_cache: ConfigPath | None = None
    fp16: bool = True
    max_batch: Annotated[int, Field(ge=1)] = 64
    opt_batch: Annotated[int, Field(ge=1)] = 32

    @model_validator(mode="after")
    def _opt_within_max(self) -> TensorRTOptions:
        if self.opt_batch > self.max_batch:
            raise ValueError(f"opt_batch {self.opt_batch} exceeds max_batch {self.max_batch}")
        return self

    def provider_options(self, input_name: str, input_size: tuple[int, int]) -> dict[str, str]:
        """onnxruntime's ``TensorrtExecutionProvider`` options for an input [batch, 3, H, W]."""
        from reid_core.zoo import cache_dir

        height, width = input_size
        cache = self.engine_cache or cache_dir() / "tensorrt"

        def shape(batch: int) -> str:
            return f"{input_name}:{batch}x3x{height}x{width}"

        return {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache),
            "trt_fp16_enable": str(self.fp16),
            "trt_max_workspace_size": str(2 << 30),
            "trt_profile_min_shapes": shape(1),
            "trt_profile_opt_shapes": shape(self.opt_batch),
            "trt_profile_max_shapes": shape(self.max_batch),
        }


class EmbedderConfig(BaseModel):
    """Which runtime serves which model file, where, with how many intra-op threads.

    device: ``auto`` takes the fastest the machine has (CUDA for torch; TensorRT → CUDA → CPU
    for onnxruntime), ``cpu`` forces the CPU, ``cuda`` insists on a GPU (an error otherwise).
    threads: intra-op threads (torch.set_num_threads / onnxruntime intra_op_num_threads);
    None keeps the library default (one per core).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: str = "onnxruntime"
    model: ConfigPath | None = Field(
        None,
        description=".safetensors checkpoint (torch) or .onnx (onnxruntime); None: the shipped "
        "default model (reid_core.zoo; exported to ONNX once for onnxruntime)",
    )
    device: Device = "auto"
    threads: Annotated[int, Field(ge=1)] | None = None
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime graph optimisation level (ignored by torch)"
    )
    tensorrt: TensorRTOptions = Field(
        default_factory=lambda: TensorRTOptions(),
        description="onnxruntime's TensorRT provider, where it loads (ignored elsewhere)",
    )
    flip: bool = Field(
        False,
        description="flip test-time augmentation: each crop is embedded with its mirror image and "
        "the features averaged (twice the forward passes; bench/README.md 'Flip')",
    )
    spin_wait: bool = Field(
        False,
        description="onnxruntime: let idle intra-op threads busy-wait for the next run (its "
        "own default; saves a little latency on a dedicated machine, but on one shared with "
        "camera stages the spinning takes their CPU: bench/README.md 'Worker latency under load')",
    )

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, name: str) -> str:
        if name not in RUNTIMES:
            raise ValueError(f"unknown runtime {name!r}; valid: {', '.join(sorted(RUNTIMES))}")
        return name

    def resolved(self) -> EmbedderConfig:
        """This config with ``model`` a concrete file: the shipped default model's weights
        (torch) or its cached ONNX export (onnxruntime) when none was named. A named file
        that does not exist is an error naming the field."""
        if self.model is not None:
            if not self.model.is_file():
                raise FileNotFoundError(f"embedder.model: no such file: {self.model}")
            return self
        from reid_core import zoo

        path = zoo.shipped_onnx_path() if self.runtime == "onnxruntime" else None
        return self.model_copy(update={"model": path or zoo.shipped_model_path()})

    def open(self) -> PreprocessingEmbedder:
        """Load the model into its runtime (a missing or foreign file is a clear error)."""
        config = self.resolved()
        embedder = runtime_class(config.runtime).from_config(config)
        embedder.flip = config.flip
        return embedder
