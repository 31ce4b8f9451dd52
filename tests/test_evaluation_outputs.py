"""What `trainer eval` writes: metrics.json, table.md (paper Table 3 layout), ranked_lists.png."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.evaluation import (
    DatasetMetrics,
    ProtocolLabels,
    draw_ranked_lists,
    evaluate_rankings,
    load_metrics_json,
    markdown_table,
    metrics_table,
    query_distances,
    select_queries,
    write_metrics_json,
    write_table,
)
from trainer.evaluation.ranked_lists import (
    BORDER,
    GAP,
    LABEL_HEIGHT,
    MATCH_BGR,
    NON_MATCH_BGR,
    TILE_SIZE,
    ranked_gallery,
)

SPEC_KEYS = {"rank1", "rank5", "rank10", "mAP", "mINP"}


def small_result() -> dict:
    # One query (identity 1), gallery ranked [identity 2, identity 1]: AP 0.5, CMC [0, 1, ...].
    return evaluate_rankings(
        np.array([[1.0, 0.0]]), [1], [1, 2], [0], [1, 1], max_rank=10, show_progress=False
    )


def entry(rank1: float, rank3: float, mean_ap: float) -> DatasetMetrics:
    return DatasetMetrics(
        rank1=rank1, rank3=rank3, rank5=1.0, rank10=1.0, mAP=mean_ap, mINP=0.1, num_valid_queries=5
    )


def test_metrics_json_has_spec_keys_and_round_trips(tmp_path: Path) -> None:
    path = write_metrics_json({"market1501": small_result()}, tmp_path / "out" / "metrics.json")
    raw = json.loads(path.read_text())
    assert set(raw) == {"market1501"}
    assert set(raw["market1501"]) >= SPEC_KEYS
    assert raw["market1501"]["rank1"] == 0.0
    assert raw["market1501"]["rank5"] == 1.0
    assert raw["market1501"]["mAP"] == 0.5
    assert all(0.0 <= raw["market1501"][key] <= 1.0 for key in SPEC_KEYS)
    assert load_metrics_json(path)["market1501"].mAP == 0.5


def test_metrics_need_cmc_up_to_rank_ten() -> None:
    short = evaluate_rankings(
        np.array([[0.0]]), [1], [1], [0], [1], max_rank=5, show_progress=False
    )
    with pytest.raises(ValueError, match="max_rank >= 10"):
        metrics_table({"market1501": short})


def test_bad_metrics_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json: not valid JSON"):
        load_metrics_json(path)
    path.write_text(json.dumps({"market1501": {"rank1": 1.5}}))
    with pytest.raises(ValueError, match=r"(?s)metrics.json: data set 'market1501'.*rank1"):
        load_metrics_json(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_metrics_json(tmp_path / "missing.json")


def test_table_follows_paper_table_3_layout(tmp_path: Path) -> None:
    rows = {
        "baseline": {"market1501": entry(0.9, 0.95, 0.75)},
        "ours": {"partial_reid": entry(0.886, 0.929, 0.5), "market1501": entry(0.953, 0.97, 0.894)},
    }
    text = write_table(rows, tmp_path / "table.md").read_text()
    assert text == markdown_table(rows)
    lines = text.splitlines()
    assert lines[0] == (
        "| Method | Partial-REID Rank-1 | Partial-REID Rank-3 | Market-1501 Rank-1 "
        "| Market-1501 mAP |"
    )
    assert lines[1] == "|---|---:|---:|---:|---:|"
    assert lines[2] == "| baseline | - | - | 90.0 | 75.0 |"
    assert lines[3] == "| ours | 88.6 | 92.9 | 95.3 | 89.4 |"


def write_images(folder: Path, count: int, prefix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i}.png"
        image = np.full((64, 32, 3), (30 * i) % 255, np.uint8)
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def test_ranked_lists_picture(tmp_path: Path) -> None:
    # Queries: identity 1 (camera 0), identity 0 (a distractor: never shown), identity 2.
    q_pids, q_cams = [1, 0, 2], [0, 0, 0]
    # Gallery: 0 = identity 1 camera 0 (left out for query 0), 1 = junk, 2 = identity 1 cam 1,
    # 3 = identity 2 cam 1, 4 = identity 3 cam 1.
    g_pids, g_cams = [1, -1, 1, 2, 3], [0, 1, 1, 1, 1]
    labels = ProtocolLabels.from_arrays(q_pids, g_pids, q_cams, g_cams)
    distances = np.array(
        [[0.0, 0.1, 0.3, 0.2, 0.4], [0.0] * 5, [0.5, 0.1, 0.4, 0.3, 0.2]], dtype=np.float32
    )
    top, is_match = ranked_gallery(distances[0], 0, labels, top_k=3)
    np.testing.assert_array_equal(top, [3, 2, 4])  # 0 (same id and camera) and 1 (junk) left out
    np.testing.assert_array_equal(is_match, [False, True, False])

    chosen = select_queries(q_pids, count=5)
    np.testing.assert_array_equal(chosen, [0, 2])
    query_paths = write_images(tmp_path / "query", 3, "q")
    gallery_paths = write_images(tmp_path / "gallery", 5, "g")
    rows = query_distances(np.arange(3), None, lambda q, _: distances[q], chosen)
    out = draw_ranked_lists(
        rows, chosen, query_paths, gallery_paths, labels, tmp_path / "ranked_lists.png", top_k=3
    )
    picture = cv2.imread(str(out))
    tile_height = TILE_SIZE[0] + 2 * BORDER + LABEL_HEIGHT
    tile_width = TILE_SIZE[1] + 2 * BORDER
    assert picture.shape == (2 * tile_height, 4 * tile_width + GAP, 3)
    # Row 0 ranks [3 (red), 2 (green), 4 (red)]; row 1 (identity 2) ranks [4 red, 3 green, 2 red].
    for row, colours in enumerate(
        [(NON_MATCH_BGR, MATCH_BGR, NON_MATCH_BGR), (NON_MATCH_BGR, MATCH_BGR, NON_MATCH_BGR)]
    ):
        for rank, colour in enumerate(colours):
            x = tile_width + GAP + rank * tile_width + 1
            np.testing.assert_array_equal(picture[row * tile_height + 1, x], colour)

    with pytest.raises(FileNotFoundError, match="q0.png"):
        query_paths[0].unlink()
        draw_ranked_lists(rows, chosen, query_paths, gallery_paths, labels, tmp_path / "x.png")
