"""The onnxruntime runtime, and the ONNX file contract that `reid_core.runtime.export` writes.

Contract: one input ``images`` [batch, 3, H, W] float32 (normalised as `preprocess_crops`
makes it) and the six `ReIDFeatures` fields as outputs under their own names, batch axis
dynamic; metadata ``format`` / ``format_version`` / ``model_config`` (the model's config JSON)
/ ``precision``, so a runtime knows the model without its checkpoint.

Providers (SPEC §4): TensorRT → CUDA → CPU, keeping those `get_available_providers()` lists.
A listed provider can still fail to load (onnxruntime-gpu on a machine without CUDA lists
CUDA, logs that libcublasLt is missing and carries on without it, NOTES "onnxruntime"). So on
Linux a GPU provider is only asked for when its driver library loads (libcuda, and libnvinfer
for TensorRT), which spares CPU machines onnxruntime's error banners, and the provider in use is
read back from the session, never assumed.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import fields
from pathlib import Path

import onnxruntime as ort
import torch

from reid_core.config import ModelConfig
from reid_core.features import ReIDFeatures
from reid_core.runtime.embedder import (
    Device,
    EmbedderConfig,
    PreprocessingEmbedder,
    TensorRTOptions,
)

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = tuple(f.name for f in fields(ReIDFeatures))
FORMAT_NAME = "occlureid.reid_core.onnx"
FORMAT_VERSION = "1"
SPIN_WAIT_KEY = "session.intra_op.allow_spinning"

TENSORRT, CUDA, CPU = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
NATIVE_LIBRARIES = {TENSORRT: ("libcuda.so.1", "libnvinfer.so.10"), CUDA: ("libcuda.so.1",)}
PROVIDER_PREFERENCE = {"auto": (TENSORRT, CUDA, CPU), "cuda": (TENSORRT, CUDA), "cpu": (CPU,)}
GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _libraries_load(provider: str) -> bool:
    if not sys.platform.startswith("linux"):
        return True  # other systems name their libraries differently: let onnxruntime try
    for name in NATIVE_LIBRARIES.get(provider, ()):
        try:
            ctypes.CDLL(name)
        except OSError:
            return False
    return True


def usable_providers() -> list[str]:
    """The providers onnxruntime lists whose native libraries this machine can load."""
    return [p for p in ort.get_available_providers() if _libraries_load(p)]


def requested_providers(device: Device, available: list[str] | None = None) -> list[str]:
    """The providers to ask a session for, best first: the device's preference order kept to
    ``available`` (default: `usable_providers`)."""
    available = usable_providers() if available is None else available
    chosen = [p for p in PROVIDER_PREFERENCE[device] if p in available]
    if not chosen:
        raise RuntimeError(
            f"device {device!r} needs one of {', '.join(PROVIDER_PREFERENCE[device])}; "
            f"onnxruntime can use {', '.join(available)} here (a GPU provider needs the CUDA "
            "driver's libcuda.so.1, TensorRT also libnvinfer.so.10)"
        )
    return chosen


def graph_input_size(path: Path) -> tuple[int, int]:
    """(H, W) of the file's ``images`` input, read from the graph without a session (the
    TensorRT provider's shape profiles are given when the session is made)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    for value in graph.input:
        if value.name == INPUT_NAME:
            dims = value.type.tensor_type.shape.dim
            return int(dims[2].dim_value), int(dims[3].dim_value)
    raise ValueError(f"{path}: no input named {INPUT_NAME!r} (export it with `trainer export`)")


def provider_list(
    requested: list[str], path: Path, tensorrt: TensorRTOptions
) -> list[str | tuple[str, dict[str, str]]]:
    """``requested`` as onnxruntime takes it: TensorRT with its engine cache, precision and
    batch profile (`TensorRTOptions`), the others as they are."""
    if TENSORRT not in requested:
        return list(requested)
    options = tensorrt.provider_options(INPUT_NAME, graph_input_size(path))
    Path(options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    return [(p, options) if p == TENSORRT else p for p in requested]


def read_metadata(path: Path, session: ort.InferenceSession) -> dict[str, str]:
    """The file's OccluReID metadata; a foreign ONNX file is an error that names it."""
    metadata = session.get_modelmeta().custom_metadata_map
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{path} is not an OccluReID ONNX export (metadata format {metadata.get('format')!r}, "
            f"expected {FORMAT_NAME!r}): export it with `trainer export`"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has ONNX format version {metadata.get('format_version')!r}; this reid_core "
            f"reads version {FORMAT_VERSION}"
        )
    return metadata


class OnnxEmbedder(PreprocessingEmbedder):
    """Embeds crops with an exported model in an onnxruntime session."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        device: Device = "auto",
        threads: int | None = None,
        graph_optimization: str = "all",
        tensorrt: TensorRTOptions | None = None,
        spin_wait: bool = False,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} does not exist")
        options = ort.SessionOptions()
        options.graph_optimization_level = GRAPH_OPTIMIZATION[graph_optimization]
        if threads is not None:
            options.intra_op_num_threads = threads
        # idle intra-op threads busy-wait for the next run unless told not to (EmbedderConfig)
        options.add_session_config_entry(SPIN_WAIT_KEY, "1" if spin_wait else "0")
        requested = requested_providers(device)
        try:
            providers = provider_list(requested, self.path, tensorrt or TensorRTOptions())
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ValueError(f"onnxruntime cannot load {self.path}: {error}") from None
        metadata = read_metadata(self.path, self.session)
        self.model_config = ModelConfig.from_json(metadata["model_config"])
        self.precision = metadata.get("precision", "fp32")
        self.provider = self.session.get_providers()[0]
        if device == "cuda" and self.provider == CPU:
            raise RuntimeError(
                f"device 'cuda': none of {', '.join(requested)} loaded for {self.path} "
                "(onnxruntime's log above says why)"
            )
        self.device = self.provider
        self._check_signature()
        skipped = [p for p in requested if p not in self.session.get_providers()]
        log.info(
            "onnxruntime: %s (%s) on %s%s, %s threads",
            self.path,
            self.precision,
            self.provider,
            f" ({', '.join(skipped)} listed but did not load)" if skipped else "",
            threads or "default",
        )

    @classmethod
    def from_config(cls, config: EmbedderConfig) -> OnnxEmbedder:
        return cls(
            config.model,
            config.device,
            config.threads,
            config.graph_optimization,
            config.tensorrt,
            config.spin_wait,
        )

    def _check_signature(self) -> None:
        """Read the shapes from the graph: [batch, 3, H, W] in, [batch, K, d] part features."""
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        missing = [n for n in OUTPUT_NAMES if n not in outputs]
        if INPUT_NAME not in inputs or missing:
            raise ValueError(
                f"{self.path}: expected input {INPUT_NAME!r} and outputs {', '.join(OUTPUT_NAMES)}; "
                f"it has inputs {sorted(inputs)} and outputs {sorted(outputs)}"
            )
        _, _, height, width = inputs[INPUT_NAME]
        _, self.num_parts, self.dim = outputs["part_features"]
        self.input_size = (height, width)

    def forward(self, images: torch.Tensor) -> ReIDFeatures:
        outputs = self.session.run(OUTPUT_NAMES, {INPUT_NAME: images.numpy()})
        return ReIDFeatures(
            **{
                name: torch.from_numpy(value)
                for name, value in zip(OUTPUT_NAMES, outputs, strict=True)
            }
        )


class OnnxModule(torch.nn.Module):
    """An exported file behind the model's interface (eval only: ``images`` → ReIDFeatures,
    ``config``, ``num_parts``, ``dim``), so code written for a checkpoint — `trainer eval`,
    the real-people probe — measures what a worker serves, e.g. the accuracy an int8 export
    keeps."""

    def __init__(self, embedder: OnnxEmbedder) -> None:
        super().__init__()
        self.embedder = embedder
        self.config = embedder.model_config
        self.num_parts, self.dim = embedder.num_parts, embedder.dim
        self.eval()

    def train(self, mode: bool = True) -> OnnxModule:
        if mode:
            raise RuntimeError(f"{self.embedder.path} is an exported model: it cannot train")
        return super().train(False)

    def forward(self, images: torch.Tensor) -> ReIDFeatures:
        return self.embedder.forward(images.detach().float().cpu().contiguous())


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A model file for inference, either kind: an ``.onnx`` export (an `OnnxModule`, whose
    session picks its own device and takes CPU tensors) or a ``.safetensors`` checkpoint
    (`reid_core.load`, on ``device``), in eval mode."""
    if Path(path).suffix == ".onnx":
        return OnnxModule(OnnxEmbedder(path, device="auto"))
    from reid_core.checkpoint import load

    return load(path, map_location=device).to(device).eval()
