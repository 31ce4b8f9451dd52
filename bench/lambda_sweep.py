"""How much do the parts add? One model's features, embedded once, scored with the global
distance, the parts alone and global + λ·parts for several λ (SPEC §2.7), on a held-out set —
the check behind the "occlusion-aware ≥ global + 3" target, without re-embedding per λ.

    python bench/lambda_sweep.py --root DATA CKPT [CKPT ...] [--query-split occluded_query]
                                 [--lams 0.5 1 2 4 8]

DATA is a `trainer synth` set (use one the models never trained on); CKPT a .safetensors
checkpoint or an .onnx export. Prints one line of mAP (%) per model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from reid_core.distance import global_distance, occlusion_aware_distance, part_distance
    from reid_core.runtime.onnx_runtime import load_model_file
    from trainer.data import TransformConfig, build_dataset, build_transforms
    from trainer.evaluation.evaluate import extract_features
    from trainer.evaluation.ranking import evaluate_features

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--root", required=True, type=Path, help="a `trainer synth` set")
    parser.add_argument("--query-split", default="occluded_query")
    parser.add_argument("--lams", type=float, nargs="+", default=[0.5, 1, 2, 4, 8])
    args = parser.parse_args()
    data = build_dataset("synthetic", args.root, query_split=args.query_split)
    labels = (
        [r.pid for r in data.query],
        [r.pid for r in data.gallery],
        [r.camid for r in data.query],
        [r.camid for r in data.gallery],
    )

    def parts_only(query, gallery):
        return part_distance(
            query.part_features,
            query.visibility,
            gallery.part_features,
            gallery.visibility,
            "cosine",
        )

    for checkpoint in args.checkpoints:
        model = load_model_file(checkpoint)
        height, width = model.config.input_size
        transform = build_transforms(TransformConfig(height=height, width=width))[1]
        query = extract_features(model, data.query, transform, 64, description="query")
        gallery = extract_features(model, data.gallery, transform, 64, description="gallery")
        distances = {"global": global_distance, "parts alone": parts_only}
        for lam in args.lams:
            distances[f"λ {lam:g}"] = lambda q, g, lam=lam: occlusion_aware_distance(q, g, lam=lam)
        scores = {
            name: 100 * evaluate_features(query, gallery, distance, *labels)["mAP"]
            for name, distance in distances.items()
        }
        print(f"{checkpoint}: " + ", ".join(f"{n} {v:.1f}" for n, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
