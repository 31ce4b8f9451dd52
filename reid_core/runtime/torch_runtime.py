"""The PyTorch runtime: a ``.safetensors`` checkpoint (`reid_core.load`) run in eager mode."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from reid_core.checkpoint import load
from reid_core.features import ReIDFeatures
from reid_core.model import MotionAwareTransformer
from reid_core.runtime.embedder import Device, EmbedderConfig, PreprocessingEmbedder

log = logging.getLogger(__name__)


def torch_device(device: Device) -> torch.device:
    """``auto`` → the first CUDA device when there is one, else the CPU; ``cuda`` insists."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", 0)


class TorchEmbedder(PreprocessingEmbedder):
    """Embeds crops with a `MotionAwareTransformer` in eval mode without autograd."""

    name = "torch"

    def __init__(self, model: MotionAwareTransformer, device: Device = "auto") -> None:
        self.torch_device = torch_device(device)
        self.model = model.to(self.torch_device).eval()
        self.device = str(self.torch_device)
        self.dim = model.dim
        self.num_parts = model.num_parts
        self.input_size = tuple(model.config.input_size)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | Path, device: Device = "auto", threads: int | None = None
    ) -> TorchEmbedder:
        """Load a checkpoint; ``threads`` sets torch's intra-op threads (process-wide)."""
        if threads is not None:
            torch.set_num_threads(threads)
        embedder = cls(load(checkpoint), device)
        log.info(
            "torch runtime: %s on %s, %d threads",
            checkpoint,
            embedder.device,
            threads or torch.get_num_threads(),
        )
        return embedder

    @classmethod
    def from_config(cls, config: EmbedderConfig) -> TorchEmbedder:
        return cls.from_checkpoint(config.model, config.device, config.threads)

    def forward(self, images: torch.Tensor) -> ReIDFeatures:
        with torch.no_grad():
            return self.model(images.to(self.torch_device)).cpu()
