"""Checkpoint → ONNX (SPEC §4 `trainer export`), and the parity check against PyTorch.

Exporter: ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript). The TorchScript
exporter (``dynamo=False``) is deprecated ("will be removed") and warned while tracing this
model that a tensor→bool conversion may make the trace incorrect; the dynamo exporter traced it
cleanly, with the same parity (max |Δ| ~1e-6 on the small model), at the price of a slower
export (~15-20 s for the small test model on 2 cores against ~2 s). Its ``model.onnx.data``
side file is avoided: the graph is saved as ONE self-contained file (protobuf allows up to 2 GB;
the full model is ~0.2 GB), so deploying a model is copying one file.

The file follows the contract in `reid_core.runtime.onnx_runtime` (input ``images``, the six
`ReIDFeatures` fields as named outputs, dynamic batch, the model config in the metadata).

int8 (`int8_copy`, `trainer export --int8`): onnxruntime's static quantisation (QDQ, weights
int8 per output channel, activations uint8 with ranges calibrated on the user's crops) of the
ops that carry weights — convolutions, linear layers — with activation ranges at the 99.999th
percentile. Three kinds stay float: the attention products of two activations (Q·Kᵀ,
softmax·V: quantising them cost the full model's global feature a cosine to fp32 of 0.974, with
them float 0.999), and depthwise (grouped) convolutions, the known weak spot of MobileNet
quantisation (one 3×3 filter per channel, ranges that differ by orders of magnitude): on the
shipped MobileNetV2 model they took the worst cosine from 0.9972 to 0.9947 (min-max ranges
0.9947 either way), below the 0.995 the export requires.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
from torch import nn

from reid_core.model import MotionAwareTransformer
from reid_core.runtime.onnx_runtime import (
    FORMAT_NAME,
    FORMAT_VERSION,
    INPUT_NAME,
    OUTPUT_NAMES,
    OnnxEmbedder,
)
from reid_core.runtime.torch_runtime import TorchEmbedder

MIN_OPSET = 18  # the dynamo exporter writes opset 18 when asked for less (measured: 17 → 18)
EXAMPLE_BATCH = 2  # a batch of 1 would let torch.export specialise the batch axis to 1
PARITY_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}  # on max |Δ| / max |reference|, per output
INT8_MIN_COSINE = 0.995  # int8 is judged on features: worst cosine of a crop's global feature
INT8_OP_TYPES = ("Conv", "Gemm", "MatMul")


class FeatureTuple(nn.Module):
    """The model with its `ReIDFeatures` output flattened to a tuple in `OUTPUT_NAMES` order."""

    def __init__(self, model: MotionAwareTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.model(images)
        return tuple(getattr(features, name) for name in OUTPUT_NAMES)


def export_onnx(
    model: MotionAwareTransformer,
    out: str | Path,
    *,
    fp16: bool = False,
    opset: int | None = None,
    on_step: Callable[[str], None] = lambda step: None,
) -> Path:
    """Write ``model`` (eval mode, CPU) to ``out`` as one ONNX file with a dynamic batch axis.

    ``fp16`` stores weights and activations as float16 with float32 inputs and outputs (for
    GPUs; onnxruntime's CPU provider runs most float16 ops through casts). ``opset`` None takes
    the exporter's default. ``on_step`` is told the name of each stage before it starts (for a
    progress display).
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"ONNX output path {out} must end in .onnx")
    if opset is not None and opset < MIN_OPSET:
        raise ValueError(f"opset {opset}: the exporter writes opset {MIN_OPSET} or later")
    model = model.cpu().eval()
    height, width = model.config.input_size
    example = torch.randn(EXAMPLE_BATCH, 3, height, width)
    on_step("tracing the model (torch.export)")
    with torch.no_grad():
        program = torch.export.export(
            FeatureTuple(model), (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
    on_step("converting to ONNX and optimising the graph")
    with _quiet_logger("onnxscript"):
        onnx_program = torch.onnx.export(
            program,
            (example,),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    proto = onnx_program.model_proto
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_json(),
        "precision": "fp32",
    }
    onnx.helper.set_model_props(proto, metadata)
    if fp16:
        on_step("converting to float16")
        proto = _to_float16(proto)
    on_step(f"writing {out}")
    _save(proto, out)
    return out


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's warnings for a while: onnxscript's optimiser warns about every op
    it leaves unfolded ("Skipping constant folding for op Split"), which says nothing wrong."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _to_float16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """float16 weights and activations, float32 inputs and outputs (the contract's dtypes)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(proto, keep_io_types=True)
    metadata = {p.key: p.value for p in half.metadata_props}
    onnx.helper.set_model_props(half, {**metadata, "precision": "fp16"})
    return half


def float16_copy(source: str | Path, out: str | Path) -> Path:
    """A float16 copy of an fp32 export, without tracing the model again."""
    out = Path(out)
    _save(_to_float16(onnx.load(str(source))), out)
    return out


def _save(proto: onnx.ModelProto, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".onnx.tmp")
    onnx.save(proto, temporary)
    temporary.replace(out)  # never leave a half-written model under the real name


def synthetic_crops(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` BGR uint8 crops of person-like sizes with smooth random content, so parity
    is checked on varied, image-like inputs rather than on one fixed tensor."""
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        height = int(rng.integers(64, 320))
        width = max(16, int(height * rng.uniform(0.3, 0.6)))
        coarse = rng.integers(0, 256, size=(8, 4, 3), dtype=np.uint8)
        crop = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        noise = rng.normal(0.0, 12.0, size=crop.shape)
        crops.append(np.clip(crop + noise, 0, 255).astype(np.uint8))
    return crops


def int8_copy(
    source: str | Path,
    out: str | Path,
    calibration_crops: list[np.ndarray],
    batch_size: int = 16,
) -> Path:
    """An int8 copy of an fp32 export (see the module doc), its activation ranges calibrated on
    ``calibration_crops`` (BGR uint8, preprocessed as the runtimes do): crops like the ones it
    will embed, a few hundred are plenty."""
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from reid_core.runtime.preprocess import preprocess_crops

    if not calibration_crops:
        raise ValueError("int8 export: no calibration crops")
    source, out = Path(source), Path(out)
    proto = onnx.load(str(source))
    metadata = {p.key: p.value for p in proto.metadata_props}
    if metadata.get("precision", "fp32") != "fp32":
        raise ValueError(f"int8 export: {source} is {metadata['precision']}, not an fp32 export")
    size = tuple(json.loads(metadata["model_config"])["input_size"])
    # the percentile calibrator stacks its batches, so they must all be one size: the last is
    # filled up with crops from the start
    batch_size = min(batch_size, len(calibration_crops))
    padded = calibration_crops + calibration_crops[: -len(calibration_crops) % batch_size]
    batches = [
        preprocess_crops(padded[i : i + batch_size], size).numpy()
        for i in range(0, len(padded), batch_size)
    ]

    class Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.remaining, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quantised = Path(work) / "int8.onnx"
        # onnxruntime's calibration prints its progress (histograms, percentiles): keep the
        # caller's console to its own progress display
        with _quiet_logger("root"), redirect_stdout(io.StringIO()):
            quant_pre_process(str(source), str(prepared))
            graph = onnx.load(str(prepared)).graph
            weights = {tensor.name for tensor in graph.initializer}
            kept_float = [
                node.name
                for node in graph.node
                if (node.op_type == "MatMul" and not any(name in weights for name in node.input))
                or (node.op_type == "Conv" and _groups(node) > 1)
            ]
            quantize_static(
                str(prepared),
                str(quantised),
                Crops(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(INT8_OP_TYPES),
                nodes_to_exclude=kept_float,
                calibrate_method=CalibrationMethod.Percentile,
            )
        proto = onnx.load(str(quantised))
    onnx.helper.set_model_props(proto, {**metadata, "precision": "int8"})
    _save(proto, out)
    return out


def _groups(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


@dataclass(frozen=True)
class OutputParity:
    """One output's agreement: max |Δ| between runtimes and the reference's max |value|; for
    the feature outputs also the worst cosine between a crop's two feature vectors (a global
    feature, or one part's)."""

    name: str
    shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_reference: float
    min_cosine: float | None = None

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.max_abs_reference, 1e-12)


FEATURE_OUTPUTS = ("global_features", "part_features")


def _min_cosine(expected: torch.Tensor, actual: torch.Tensor) -> float | None:
    """Worst cosine between matching feature vectors (the last axis); None without any."""
    if expected.numel() == 0:
        return None
    dim = expected.shape[-1]
    cosine = nn.functional.cosine_similarity(expected.reshape(-1, dim), actual.reshape(-1, dim))
    return float(cosine.min())


def parity_check(
    model: MotionAwareTransformer, onnx_path: str | Path, crops: list[np.ndarray]
) -> list[OutputParity]:
    """Run ``crops`` through PyTorch (CPU) and the ONNX file (onnxruntime, CPU provider) with
    the shared preprocessing; one `OutputParity` per output."""
    reference = TorchEmbedder(model, device="cpu").embed(crops)
    exported = OnnxEmbedder(onnx_path, device="cpu").embed(crops)
    report = []
    for name in OUTPUT_NAMES:
        expected, actual = getattr(reference, name), getattr(exported, name)
        report.append(
            OutputParity(
                name=name,
                shape=tuple(actual.shape),
                max_abs_diff=float((expected - actual).abs().max()),
                max_abs_reference=float(expected.abs().max()),
                min_cosine=_min_cosine(expected, actual) if name in FEATURE_OUTPUTS else None,
            )
        )
    return report
