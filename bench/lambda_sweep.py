"""How much do the parts add? One model's features, embedded once, scored with the global
distance, the parts alone and global + λ·parts for several λ (SPEC §2.7), on a held-out set —
the check behind the "occlusion-aware ≥ global + 3" target, without re-embedding per λ.

    python bench/lambda_sweep.py --root DATA CKPT [CKPT ...] [--query-split occluded_query]
                                 [--lams 0.5 1 2 4 8]

DATA is a `trainer synth` set (use one the models never trained on); CKPT a .safetensors
checkpoint or an .onnx export. Prints one line of mAP (%) per model.

Two diagnostics of where the part term's gain comes from (or is lost):
- ``--by-occlusion``: global and λ 1 per band of the queries' rendered occlusion (the share of
  the person hidden) and per occluder kind;
- ``--true-visibility``: every distance again with the renderer's visibility in place of the
  model's: model part k counts as visible when its visible pixels in the crop's part map reach
  ``TRUE_VISIBLE_SHARE`` of the median count of that part over the set's unoccluded crops. The
  gap to the model's own visibility is what better visibility estimates could add.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


TRUE_VISIBLE_SHARE = 0.3
OCCLUSION_BANDS = [(0.0, 0.3), (0.3, 0.45), (0.45, 1.01)]


def part_pixel_counts(records: list, num_parts: int) -> np.ndarray:
    """[N, K] visible pixels of each model part in each record's rendered part map."""
    from PIL import Image

    from reid_core.parts import part_groups

    table = part_groups(num_parts).numpy()
    return np.stack(
        [
            np.bincount(
                table[np.asarray(Image.open(r.extras["part_map"]))].ravel(),
                minlength=num_parts + 1,
            )[1:]
            for r in records
        ]
    )


def true_visibility(counts: np.ndarray, typical: np.ndarray) -> np.ndarray:
    """[N, K] renderer visibility: a part's visible pixels reach ``TRUE_VISIBLE_SHARE`` of its
    ``typical`` (median unoccluded) count (module docstring)."""
    return (counts >= TRUE_VISIBLE_SHARE * np.maximum(typical, 1)).astype(np.float32)


def main() -> int:
    import torch

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
    parser.add_argument("--by-occlusion", action="store_true", help="gain per occlusion band")
    parser.add_argument(
        "--true-visibility", action="store_true", help="also with the renderer's visibility"
    )
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

        def mean_ap(distance, q=query, g=gallery, rows=None) -> float:
            """mAP (%) of the queries (those ``rows`` only when given)."""
            q_pids, g_pids, q_camids, g_camids = labels
            if rows is not None:
                q = q[rows]
                q_pids, q_camids = [q_pids[i] for i in rows], [q_camids[i] for i in rows]
            found = evaluate_features(
                q, g, distance, q_pids, g_pids, q_camids, g_camids, show_progress=False
            )
            return 100 * found["mAP"]

        scores = {name: mean_ap(distance) for name, distance in distances.items()}
        print(f"{checkpoint}: " + ", ".join(f"{n} {v:.1f}" for n, v in scores.items()))
        if args.true_visibility:
            k = query.num_parts
            gallery_counts = part_pixel_counts(data.gallery, k)
            unoccluded = [r.extras.get("occlusion", 1.0) == 0.0 for r in data.gallery]
            if not any(unoccluded):
                raise SystemExit("--true-visibility needs unoccluded gallery crops in the set")
            typical = np.median(gallery_counts[unoccluded], axis=0)
            true_query, true_gallery = (
                replace(f, visibility=torch.from_numpy(true_visibility(counts, typical)))
                for f, counts in [
                    (query, part_pixel_counts(data.query, k)),
                    (gallery, gallery_counts),
                ]
            )
            seen = true_query.visibility.bool()
            model_vis = query.visibility
            mean_where = [
                [
                    float(model_vis[mask[:, p], p].mean()) if mask[:, p].any() else float("nan")
                    for p in range(k)
                ]
                for mask in (seen, ~seen)
            ]
            truth = {
                name: mean_ap(distance, true_query, true_gallery)
                for name, distance in distances.items()
            }
            print(
                "  with the renderer's visibility: "
                + ", ".join(f"{n} {v:.1f}" for n, v in truth.items())
                + "; the model's query visibility per part where the renderer shows it / hides it: "
                + " ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(*mean_where, strict=True))
            )
        if args.by_occlusion:
            occlusion = np.array([r.extras.get("occlusion", 0.0) for r in data.query])
            occluder = np.array([r.extras.get("occluder", "none") for r in data.query])
            groups = [
                (f"occlusion {low:.2f}–{min(high, 1):.2f}", (occlusion >= low) & (occlusion < high))
                for low, high in OCCLUSION_BANDS
            ] + [(f"occluder {kind}", occluder == kind) for kind in sorted(set(occluder))]
            for name, chosen in groups:
                rows = np.flatnonzero(chosen).tolist()
                if rows:
                    glob = mean_ap(global_distance, rows=rows)
                    aware = mean_ap(distances["λ 1"], rows=rows) if "λ 1" in distances else None
                    gain = "" if aware is None else f", λ 1 {aware:.1f} ({aware - glob:+.1f})"
                    print(f"  {name}: {len(rows)} queries, global {glob:.1f}{gain}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
