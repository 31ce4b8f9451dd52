"""Embedder crops/s (SPEC §7): the full model (configs/model/full.yaml: resnet50, K=10) and a
light one (configs/model/light_mobilenetv2.yaml) through both runtimes (PyTorch eager, onnxruntime
CPU), next to a plain torchvision ResNet-50 in PyTorch and in onnxruntime, all interleaved in
one process with the same threads, at batch 1/8/32; then the ratios against SPEC §7's targets:

    full on onnxruntime ≥ 1.0× plain ResNet-50 in PyTorch eager at batch 8 and 32
    light on onnxruntime ≥ 2.0× plain ResNet-50 on onnxruntime

Every candidate is timed from BGR crops of mixed sizes to features (`preprocess_crops` included,
also for the plain ResNet-50), so the figures are what a worker pays. Weights are random (speed
does not depend on their values, and no ImageNet file is needed).

With --variants (default) it also measures, on onnxruntime at batch 8 and 32, what would make
the full model meet its target without touching the paper configs: d_model 256, last stride 2,
int8 dynamic quantisation of the transformer's MatMuls (and of everything), the static int8
of `trainer export --int8` (weight-bearing ops, calibrated ranges; attention products float),
float16, and a lower graph optimisation level; same-weight variants report their parity cost against the fp32
export (max |Δ| of the global feature relative to its range, and the worst cosine between the
two global features of a crop).

    python bench/embed_speed.py [--full C] [--light C] [--batch-sizes 1 8 32] [--rounds 3] [--threads N]
                                [--no-variants] [--work DIR] [--device cuda]

With ``--device cuda`` (a GPU machine: not this one) the same candidates run on the GPU —
onnxruntime through TensorRT (fp16, engines cached under --work, one profile for batches 1–64)
or CUDA, PyTorch on CUDA — with batch 64 added, and the light model's crops/s at batch 64 is set
against SPEC §7's 10,000 crops/s per GPU.

Sets the glibc malloc variables of NOTES "CPU speed traps" (re-executing itself when absent).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reid_core.runtime.embedder import ensure_malloc_env  # noqa: E402

CROPS_PER_MEASURE = 32  # batch 1 runs 32 calls, batch 32 one call: every figure sees 32 crops
TARGET_BATCHES = (8, 32)


def measure(run_batch: Callable[[list], object], crops: list, batch: int) -> float:
    """crops/s of ``run_batch`` over max(batch, CROPS_PER_MEASURE) crops in batches of ``batch``."""
    calls = max(batch, CROPS_PER_MEASURE) // batch
    chunks = [[crops[(i * batch + j) % len(crops)] for j in range(batch)] for i in range(calls)]
    started = time.perf_counter()
    for chunk in chunks:
        run_batch(chunk)
    return calls * batch / (time.perf_counter() - started)


def time_candidates(
    candidates: dict[str, Callable[[list], object]],
    crops: list,
    batch_sizes: list[int],
    rounds: int,
    progress_label: str,
) -> dict[tuple[str, int], float]:
    """Median crops/s per (candidate, batch); round 0 warms up; the order rotates each round
    so no candidate always runs on a cache warmed (or a CPU heated) by the same neighbour."""
    from rich.progress import track

    names = list(candidates)
    samples: dict[tuple[str, int], list[float]] = {}
    steps = [(r, b) for r in range(rounds + 1) for b in batch_sizes]
    for round_index, batch in track(steps, description=progress_label):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            rate = measure(candidates[name], crops, batch)
            if round_index:
                samples.setdefault((name, batch), []).append(rate)
    return {key: statistics.median(values) for key, values in samples.items()}


def export_plain_resnet50(path: Path) -> Path:
    """torchvision ResNet-50 (random weights) → ONNX with a dynamic batch, as one file."""
    import torch
    import torchvision

    model = torchvision.models.resnet50(weights=None).eval()
    program = torch.onnx.export(
        model,
        (torch.randn(2, 3, 256, 128),),
        input_names=["images"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        verbose=False,
    )
    program.save(str(path), external_data=False)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", default=str(ROOT / "configs/model/full.yaml"))
    parser.add_argument("--light", default=str(ROOT / "configs/model/light_mobilenetv2.yaml"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after a warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (all cores)")
    parser.add_argument("--no-variants", dest="variants", action="store_false")
    parser.add_argument("--work", type=Path, default=None, help="keep the ONNX files here")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda: onnxruntime on TensorRT (engine cache under --work, fp16) or CUDA, torch on "
        "the GPU, batch 64 added; reports the light model against 10,000 crops/s",
    )
    args = parser.parse_args()
    ensure_malloc_env()

    import onnxruntime as ort
    import torch
    import torchvision
    from rich.console import Console
    from rich.table import Table

    from reid_core.model import build_model
    from reid_core.runtime.export import (
        export_onnx,
        float16_copy,
        int8_copy,
        synthetic_crops,
    )
    from reid_core.runtime.onnx_runtime import OnnxEmbedder
    from reid_core.runtime.preprocess import preprocess_crops
    from reid_core.runtime.torch_runtime import TorchEmbedder

    console = Console()
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    work = args.work or Path(tempfile.mkdtemp(prefix="embed_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    crops = synthetic_crops(64, seed=0)

    def random_model(config: str, **overrides):
        return build_model({"_base_": config, "backbone": {"weights": "random"}, **overrides})

    from reid_core.runtime.embedder import TensorRTOptions

    device = args.device
    if device == "cuda" and 64 not in args.batch_sizes:
        args.batch_sizes = [*args.batch_sizes, 64]
    tensorrt = TensorRTOptions(engine_cache=work / "tensorrt", max_batch=64, opt_batch=64)

    def onnx_session(path: Path, level: str = "all") -> OnnxEmbedder:
        return OnnxEmbedder(
            path, device=device, threads=threads, graph_optimization=level, tensorrt=tensorrt
        )

    full_config = args.full
    models = {"full": random_model(full_config), "light": random_model(args.light)}
    onnx_files = {}
    for name, model in models.items():
        with console.status(f"exporting the {name} model to ONNX"):
            started = time.perf_counter()
            onnx_files[name] = export_onnx(model, work / f"{name}.onnx")
        console.print(f"exported {name} in {time.perf_counter() - started:.0f} s")
    with console.status("exporting the plain ResNet-50 to ONNX"):
        plain_onnx = export_plain_resnet50(work / "resnet50.onnx")
    plain = torchvision.models.resnet50(weights=None).eval().to(device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    plain_session = ort.InferenceSession(
        str(plain_onnx),
        options,
        providers=["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"],
    )

    def plain_torch(batch: list) -> object:
        with torch.no_grad():
            return plain(preprocess_crops(batch).to(device)).cpu()

    def plain_ort(batch: list) -> object:
        return plain_session.run(None, {"images": preprocess_crops(batch).numpy()})

    candidates = {
        "full · torch": TorchEmbedder(models["full"], device=device).embed,
        "full · onnxruntime": onnx_session(onnx_files["full"]).embed,
        "light · torch": TorchEmbedder(models["light"], device=device).embed,
        "light · onnxruntime": onnx_session(onnx_files["light"]).embed,
        "ResNet-50 · torch": plain_torch,
        "ResNet-50 · onnxruntime": plain_ort,
    }
    rates = time_candidates(candidates, crops, args.batch_sizes, args.rounds, "timing")

    load = os.getloadavg()[0]
    table = Table(
        title=f"crops/s (BGR crops → features), CPU, {threads} threads, median of {args.rounds} "
        f"rounds, load avg {load:.1f}; full = {Path(args.full).name}, "
        f"light = {Path(args.light).name}"
    )
    table.add_column("model · runtime")
    for batch in args.batch_sizes:
        table.add_column(f"batch {batch}", justify="right")
    for name in candidates:
        table.add_row(name, *(f"{rates[(name, batch)]:.1f}" for batch in args.batch_sizes))
    ratios = (
        ("full · onnxruntime", "ResNet-50 · torch", 1.0, TARGET_BATCHES),
        ("light · onnxruntime", "ResNet-50 · onnxruntime", 2.0, tuple(args.batch_sizes)),
    )
    for name, yardstick, target, batches in ratios:
        cells = []
        for batch in args.batch_sizes:
            ratio = rates[(name, batch)] / rates[(yardstick, batch)]
            verdict = ("[green]meets[/]" if ratio >= target else "[red]misses[/]") * (
                batch in batches
            )
            cells.append(f"{ratio:.2f}× {verdict}")
        table.add_row(f"{name} / {yardstick} (target ≥ {target:.1f}×)", *cells)
    console.print(table)
    if device == "cuda":
        light = rates[("light · onnxruntime", 64)]
        verdict = "meets" if light >= 10_000 else "misses"
        console.print(
            f"GPU ({torch.cuda.get_device_name()}), onnxruntime on "
            f"{onnx_session(onnx_files['light']).provider}: light model {light:,.0f} crops/s at "
            f"batch 64 ({verdict} ≥ 10,000), full model {rates[('full · onnxruntime', 64)]:,.0f}"
        )

    if not args.variants:
        return 0
    from onnxruntime.quantization import QuantType, quantize_dynamic

    variant_files = {
        "full (as above)": onnx_files["full"],
        "d_model 256": export_onnx(
            random_model(full_config, transformer={"d_model": 256, "dim_feedforward": 1024}),
            work / "full_d256.onnx",
        ),
        "last stride 2": export_onnx(
            random_model(full_config, backbone={"weights": "random", "last_stride": 2}),
            work / "full_stride2.onnx",
        ),
        "fp16": float16_copy(onnx_files["full"], work / "full_fp16.onnx"),
        "int8 static (convs, linears)": int8_copy(
            onnx_files["full"], work / "full_int8_static.onnx", synthetic_crops(128, seed=7)
        ),
    }
    for label, op_types in (("int8 transformer MatMuls", ["MatMul"]), ("int8 all", None)):
        path = work / f"full_{'matmul' if op_types else 'all'}_int8.onnx"
        quantize_dynamic(
            onnx_files["full"], path, weight_type=QuantType.QInt8, op_types_to_quantize=op_types
        )
        variant_files[label] = path
    sessions = {label: onnx_session(path) for label, path in variant_files.items()}
    sessions["graph optimisation basic"] = onnx_session(onnx_files["full"], level="basic")
    variant_rates = time_candidates(
        {label: s.embed for label, s in sessions.items()},
        crops,
        list(TARGET_BATCHES),
        max(1, args.rounds - 1),
        "variants",
    )
    reference = sessions["full (as above)"].embed(crops[:16]).global_features
    same_weights = {
        "fp16",
        "int8 transformer MatMuls",
        "int8 all",
        "int8 static (convs, linears)",
        "graph optimisation basic",
    }
    table = Table(
        title="full model variants on onnxruntime: crops/s and the ratio to the plain "
        "ResNet-50 in PyTorch eager measured above (target ≥ 1.0)"
    )
    for column in ("variant", *(f"batch {b}" for b in TARGET_BATCHES), "parity vs fp32 ORT"):
        table.add_column(
            column, justify="left" if column.startswith(("variant", "par")) else "right"
        )
    for label, session in sessions.items():
        cells = []
        for batch in TARGET_BATCHES:
            rate = variant_rates[(label, batch)]
            ratio = (
                rate / rates[("ResNet-50 · torch", batch)] if batch in args.batch_sizes else None
            )
            cells.append(f"{rate:.1f}" + (f" ({ratio:.2f}×)" if ratio else ""))
        parity = "another model (needs training)"
        if label in same_weights:
            features = session.embed(crops[:16]).global_features
            relative = float((features - reference).abs().max() / reference.abs().max())
            cosine = torch.nn.functional.cosine_similarity(features, reference).min()
            parity = f"max|Δ| {relative:.1e} of range, min cos {float(cosine):.4f}"
        elif label == "full (as above)":
            parity = "reference"
        table.add_row(label, *cells, parity)
    console.print(table)
    console.print(f"ONNX files in {work}; crops/s vary ±10-20 % between runs (NOTES)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
