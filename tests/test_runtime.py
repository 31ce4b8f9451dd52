"""The embedder interface: both runtimes give the same features for the same crops, providers
fall back to what loads (and say which), the registry names its runtimes, errors are clear."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from test_model import tiny_model_config

from reid_core import build_model, save
from reid_core.runtime import RUNTIMES, Embedder, EmbedderConfig, runtime_class
from reid_core.runtime.export import export_onnx, synthetic_crops
from reid_core.runtime.onnx_runtime import (
    CPU,
    CUDA,
    SPIN_WAIT_KEY,
    TENSORRT,
    OnnxEmbedder,
    provider_list,
    requested_providers,
)
from reid_core.runtime.torch_runtime import TorchEmbedder

SMALL_INPUT = [64, 32]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, ONNX export) of one small random model."""
    folder = tmp_path_factory.mktemp("runtime")
    torch.manual_seed(1)
    model = build_model(tiny_model_config(input_size=SMALL_INPUT, heads={"num_parts": 6}))
    checkpoint = save(model, folder / "m.safetensors")
    return checkpoint, export_onnx(model.eval(), folder / "m.onnx")


def test_both_runtimes_give_the_same_features_for_the_same_crops(
    model_files: tuple[Path, Path],
) -> None:
    checkpoint, onnx_path = model_files
    runtimes = [
        EmbedderConfig(runtime="torch", model=checkpoint, device="cpu", threads=1).open(),
        EmbedderConfig(runtime="onnxruntime", model=onnx_path, device="cpu", threads=1).open(),
    ]
    for embedder in runtimes:
        assert isinstance(embedder, Embedder)
        assert (embedder.dim, embedder.num_parts, embedder.input_size) == (64, 6, (64, 32))
    crops = synthetic_crops(5, seed=3)  # various sizes: the shared preprocessing resizes them
    reference, exported = (embedder.embed(crops) for embedder in runtimes)
    assert len(reference) == 5
    for name, value in reference.as_dict().items():
        torch.testing.assert_close(exported.as_dict()[name], value, atol=1e-4, rtol=0)


def test_flip_embeds_a_crop_and_its_mirror_image_alike(model_files: tuple[Path, Path]) -> None:
    """Flip test-time augmentation averages each crop with its mirror image, so a crop and its
    mirror get the same features; without it they differ. Positions stay the crop's own."""
    checkpoint, onnx_path = model_files
    crops = synthetic_crops(3, seed=5)
    mirrored = [np.ascontiguousarray(crop[:, ::-1]) for crop in crops]
    for runtime, path in (("torch", checkpoint), ("onnxruntime", onnx_path)):
        config = EmbedderConfig(runtime=runtime, model=path, device="cpu", threads=1)
        plain, flipped = config.open(), config.model_copy(update={"flip": True}).open()
        assert (plain.flip, flipped.flip) == (False, True)
        a, b = flipped.embed(crops), flipped.embed(mirrored)
        for name in ("global_features", "part_features", "visibility"):
            torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-4, rtol=0)
        unflipped = plain.embed(crops)
        assert not torch.allclose(unflipped.global_features, plain.embed(mirrored).global_features)
        torch.testing.assert_close(a.keypoints, unflipped.keypoints, atol=1e-5, rtol=0)


def test_provider_selection_uses_what_loads_and_names_it(
    model_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="reid_core.runtime.onnx_runtime"):
        embedder = OnnxEmbedder(model_files[1], device="auto", threads=1)
    assert embedder.provider == embedder.session.get_providers()[0] == embedder.device
    if not torch.cuda.is_available():  # this machine: CUDA listed by onnxruntime-gpu, not loadable
        assert embedder.provider == CPU
    assert embedder.provider in caplog.text
    assert embedder.session.get_session_options().intra_op_num_threads == 1


@pytest.mark.parametrize(("spin_wait", "entry"), [(None, "0"), (False, "0"), (True, "1")])
def test_intra_op_threads_spin_only_when_asked(
    model_files: tuple[Path, Path], spin_wait: bool | None, entry: str
) -> None:
    """onnxruntime's threads busy-wait between runs by default, taking the camera stages' CPU
    (bench/README.md 'Worker latency under load'): off unless the config turns it on."""
    options = {} if spin_wait is None else {"spin_wait": spin_wait}
    config = EmbedderConfig(runtime="onnxruntime", model=model_files[1], device="cpu", **options)
    session_options = config.open().session.get_session_options()
    assert session_options.get_session_config_entry(SPIN_WAIT_KEY) == entry


def test_requested_providers_follow_tensorrt_cuda_cpu_among_the_available() -> None:
    everything = [CPU, CUDA, TENSORRT]
    assert requested_providers("auto", everything) == [TENSORRT, CUDA, CPU]
    assert requested_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert requested_providers("cpu", everything) == [CPU]
    with pytest.raises(RuntimeError, match="needs one of TensorrtExecutionProvider"):
        requested_providers("cuda", [CPU])


def test_tensorrt_gets_an_engine_cache_fp16_and_a_batch_profile_of_the_models_input(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """No GPU here: the options onnxruntime would get, built from the ONNX graph's own input."""
    from reid_core.runtime.embedder import TensorRTOptions

    options = TensorRTOptions(engine_cache=tmp_path / "engines", max_batch=64, opt_batch=16)
    providers = provider_list([TENSORRT, CUDA, CPU], model_files[1], options)
    assert providers[1:] == [CUDA, CPU]
    name, settings = providers[0]
    assert name == TENSORRT
    assert settings["trt_engine_cache_enable"] == "True"
    assert settings["trt_engine_cache_path"] == str(tmp_path / "engines")
    assert (tmp_path / "engines").is_dir()
    assert settings["trt_fp16_enable"] == "True"
    assert settings["trt_profile_min_shapes"] == "images:1x3x64x32"  # SMALL_INPUT, from the file
    assert settings["trt_profile_opt_shapes"] == "images:16x3x64x32"
    assert settings["trt_profile_max_shapes"] == "images:64x3x64x32"
    assert provider_list([CPU], model_files[1], options) == [CPU]
    with pytest.raises(ValueError, match="opt_batch 65 exceeds max_batch 64"):
        TensorRTOptions(opt_batch=65)
    config = EmbedderConfig(
        runtime="onnxruntime", tensorrt={"fp16": False, "max_batch": 8, "opt_batch": 8}
    )
    assert config.tensorrt.provider_options("images", (128, 64))["trt_fp16_enable"] == "False"


def test_the_registry_lists_valid_runtimes_for_a_wrong_name(tmp_path: Path) -> None:
    assert runtime_class("torch") is TorchEmbedder
    assert runtime_class("onnxruntime") is OnnxEmbedder
    with pytest.raises(ValueError, match="valid runtimes: onnxruntime, torch"):
        runtime_class("tensorflow")
    with pytest.raises(ValueError, match=r"runtime[\s\S]*unknown runtime 'tflite'"):
        EmbedderConfig(runtime="tflite", model=tmp_path / "m.onnx")
    assert sorted(RUNTIMES) == ["onnxruntime", "torch"]


def test_missing_foreign_and_empty_inputs_are_clear_errors(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        OnnxEmbedder(tmp_path / "nope.onnx", device="cpu")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        TorchEmbedder.from_checkpoint(tmp_path / "nope.safetensors", device="cpu")
    identity = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "foreign",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        ),
        ir_version=9,  # what this onnxruntime reads
        opset_imports=[helper.make_opsetid("", 17)],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(identity, foreign)
    with pytest.raises(ValueError, match="foreign.onnx is not an OccluReID ONNX export"):
        OnnxEmbedder(foreign, device="cpu")
    embedder = OnnxEmbedder(model_files[1], device="cpu")
    with pytest.raises(ValueError, match="at least one crop"):
        embedder.embed([])
    with pytest.raises(ValueError, match="crop 1"):
        embedder.embed([np.zeros((8, 4, 3), np.uint8), np.zeros((8, 4), np.uint8)])


def test_gpu_providers_whose_libraries_do_not_load_are_not_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reid_core.runtime import onnx_runtime

    monkeypatch.setattr(onnx_runtime.sys, "platform", "linux")
    monkeypatch.setattr(onnx_runtime.ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    monkeypatch.setattr(
        onnx_runtime,
        "NATIVE_LIBRARIES",
        {TENSORRT: ("libnvinfer-absent.so.0",), CUDA: ("libc.so.6",)},
    )
    assert onnx_runtime.usable_providers() == [CUDA, CPU]
    assert requested_providers("auto") == [CUDA, CPU]
