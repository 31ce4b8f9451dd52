"""`trainer export`: one ONNX file whose outputs equal PyTorch's, with a dynamic batch axis, the
model config in its metadata, a printed parity check, and clear errors for bad input."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
import torch
from test_model import tiny_model_config

from reid_core import build_model, save
from reid_core.checkpoint import load
from reid_core.cli import build_parser, run
from reid_core.config import ModelConfig
from reid_core.model import MotionAwareTransformer
from reid_core.runtime.export import export_onnx, parity_check, synthetic_crops
from reid_core.runtime.onnx_runtime import (
    INPUT_NAME,
    OUTPUT_NAMES,
    OnnxEmbedder,
    OnnxModule,
    load_model_file,
)

SMALL_INPUT = [64, 32]


def trainer_export(*args: str) -> tuple[int, str]:
    """Run `trainer export ARGS` in-process; returns (exit code, what it printed)."""
    out = io.StringIO()
    with redirect_stdout(out):
        code = run(build_parser("trainer", "test", ["trainer.export"]), ["export", *args])
    return code, out.getvalue()


@dataclass(frozen=True)
class Exported:
    model: MotionAwareTransformer
    onnx_path: Path
    exit_code: int
    printed: str


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A small random model saved as a checkpoint and exported once through the CLI."""
    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    checkpoint = save(
        build_model(tiny_model_config(input_size=SMALL_INPUT)), folder / "m.safetensors"
    )
    code, printed = trainer_export("--checkpoint", str(checkpoint), "--out", str(folder / "m.onnx"))
    return Exported(load(checkpoint), folder / "m.onnx", code, printed)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_outputs_equal_pytorch_at_any_batch_size(exported: Exported, batch: int) -> None:
    embedder = OnnxEmbedder(exported.onnx_path, device="cpu")
    images = torch.randn(batch, 3, *SMALL_INPUT)
    with torch.no_grad():
        expected = exported.model(images)
    actual = embedder.forward(images)
    for name in OUTPUT_NAMES:
        assert getattr(actual, name).shape == getattr(expected, name).shape, name
        torch.testing.assert_close(
            getattr(actual, name), getattr(expected, name), atol=1e-4, rtol=0
        )


def test_the_file_is_self_contained_with_named_outputs_and_the_model_config(
    exported: Exported,
) -> None:
    assert exported.exit_code == 0
    assert [p.name for p in exported.onnx_path.parent.iterdir() if p.suffix == ".data"] == []
    graph = onnx.load(str(exported.onnx_path))
    assert [i.name for i in graph.graph.input] == [INPUT_NAME]
    assert tuple(o.name for o in graph.graph.output) == OUTPUT_NAMES
    batch_axis = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_axis.dim_param and not batch_axis.HasField("dim_value")
    metadata = {p.key: p.value for p in graph.metadata_props}
    assert ModelConfig.from_json(metadata["model_config"]) == exported.model.config
    assert metadata["precision"] == "fp32"


def test_the_cli_prints_max_delta_per_output(exported: Exported) -> None:
    assert "parity OK" in exported.printed
    for name in OUTPUT_NAMES:
        assert name in exported.printed
    report = parity_check(exported.model, exported.onnx_path, synthetic_crops(3, seed=1))
    assert [row.name for row in report] == list(OUTPUT_NAMES)
    assert all(row.max_abs_diff <= 1e-4 for row in report), report


def test_fp16_export_keeps_float32_io_and_stays_close(exported: Exported, tmp_path: Path) -> None:
    path = export_onnx(exported.model, tmp_path / "half.onnx", fp16=True)
    embedder = OnnxEmbedder(path, device="cpu")
    assert embedder.precision == "fp16"
    report = parity_check(exported.model, path, synthetic_crops(2))
    worst = max(row.relative for row in report)
    assert 0 < worst < 2e-2, report  # float16 differs, but by little


def test_bad_input_is_a_clear_error(exported: Exported, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.safetensors"
    code, _ = trainer_export("--checkpoint", str(missing), "--out", str(tmp_path / "x.onnx"))
    assert code == 2
    assert str(missing) in capsys.readouterr().err
    checkpoint = tmp_path / "m.safetensors"
    save(exported.model, checkpoint)
    code, _ = trainer_export("--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.txt"))
    assert code == 2
    assert "must end in .onnx" in capsys.readouterr().err
    code, _ = trainer_export(
        "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx"), "--opset", "13"
    )
    assert code == 2
    assert "opset 13" in capsys.readouterr().err


def test_a_fine_segmentation_model_exports_with_equal_outputs(tmp_path: Path) -> None:
    """heads.segmentation_upsampling (the stride-8 skip) survives export: S at twice E's grid."""
    torch.manual_seed(0)
    model = build_model(
        tiny_model_config(input_size=SMALL_INPUT, heads={"segmentation_upsampling": 2})
    ).eval()
    torch.nn.init.normal_(model.segmentation_head.skips[0].weight, std=0.1)
    path = export_onnx(model, tmp_path / "fine.onnx")
    images = torch.randn(2, 3, *SMALL_INPUT)
    with torch.no_grad():
        expected = model(images)
    actual = OnnxEmbedder(path, device="cpu").forward(images)
    assert actual.segmentation.shape == (2, model.num_parts + 1, 8, 4)
    for name in OUTPUT_NAMES:
        torch.testing.assert_close(
            getattr(actual, name), getattr(expected, name), atol=1e-4, rtol=0
        )


@pytest.fixture(scope="module")
def crop_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 person-sized crops as PNG files in two sub-folders (a data set's layout)."""
    import cv2

    folder = tmp_path_factory.mktemp("crops")
    for index, crop in enumerate(synthetic_crops(40, seed=3)):
        path = folder / f"id{index % 2}" / f"{index:03d}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), crop)
    return folder


def test_int8_export_quantises_weight_ops_and_keeps_attention_products_float(
    exported: Exported, crop_folder: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "m.safetensors"
    save(exported.model, checkpoint)
    out = tmp_path / "m_int8.onnx"
    code, printed = trainer_export(
        "--checkpoint", str(checkpoint), "--out", str(out), "--int8",
        "--calibration", str(crop_folder), "--calibration-crops", "20", "--parity-crops", "8",
    )  # fmt: skip
    assert code == 0, printed
    assert "parity OK" in printed and "8 held-out crops" in printed and "min cos" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "m_int8.onnx"]
    embedder = OnnxEmbedder(out, device="cpu")
    assert embedder.precision == "int8" and embedder.model_config == exported.model.config
    graph = onnx.load(str(out)).graph
    int8_weights = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    dequantised = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}

    def quantised_inputs(node: onnx.NodeProto) -> list[bool]:
        return [name in dequantised for name in node.input[:2]]

    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(dequantised.get(n.input[1]) in int8_weights for n in convs)
    weights = {t.name for t in graph.initializer} | set(dequantised)
    attention = [n for n in graph.node if n.op_type == "MatMul" and not set(n.input) & weights]
    assert attention and not any(any(quantised_inputs(n)) for n in attention)
    report = {row.name: row for row in parity_check(exported.model, out, synthetic_crops(8))}
    assert 0.98 < report["global_features"].min_cosine < 1.0
    assert out.stat().st_size < exported.onnx_path.stat().st_size / 2


def test_int8_export_errors_name_the_flag_or_folder(
    exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "m.safetensors"
    save(exported.model, checkpoint)
    out = str(tmp_path / "m.onnx")
    base = ("--checkpoint", str(checkpoint), "--out", out)
    assert trainer_export(*base, "--int8")[0] == 2
    assert "--int8 needs --calibration" in capsys.readouterr().err
    assert trainer_export(*base, "--int8", "--fp16", "--calibration", str(tmp_path))[0] == 2
    assert "exclude each other" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert trainer_export(*base, "--int8", "--calibration", str(empty))[0] == 2
    assert f"--calibration {empty}: 0 images" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_an_export_runs_behind_the_model_interface(exported: Exported) -> None:
    """OnnxModule: what `trainer eval --checkpoint model.onnx` evaluates."""
    module = load_model_file(exported.onnx_path)
    assert isinstance(module, OnnxModule)
    assert module.config == exported.model.config and not module.training
    assert (module.num_parts, module.dim) == (exported.model.num_parts, exported.model.dim)
    images = torch.randn(3, 3, *SMALL_INPUT)
    with torch.no_grad():
        expected = exported.model(images)
    actual = module(images)
    torch.testing.assert_close(actual.global_features, expected.global_features, atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="cannot train"):
        module.train()
