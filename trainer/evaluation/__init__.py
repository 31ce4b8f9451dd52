"""Evaluation (SPEC §3): Market-protocol rankings, chunked distances, k-reciprocal re-ranking,
metrics.json / table.md, and ranked-list pictures."""

from trainer.evaluation.ranked_lists import draw_ranked_lists, query_distances, select_queries
from trainer.evaluation.ranking import (
    ProtocolLabels,
    distance_matrix,
    evaluate_features,
    evaluate_rankings,
    occluded_protocol_camids,
)
from trainer.evaluation.reranking import RerankConfig, k_reciprocal_rerank, rerank_features
from trainer.evaluation.tables import (
    DatasetMetrics,
    load_metrics_json,
    markdown_table,
    metrics_table,
    write_metrics_json,
    write_table,
)

__all__ = [
    "DatasetMetrics",
    "ProtocolLabels",
    "RerankConfig",
    "distance_matrix",
    "draw_ranked_lists",
    "evaluate_features",
    "evaluate_rankings",
    "k_reciprocal_rerank",
    "load_metrics_json",
    "markdown_table",
    "metrics_table",
    "occluded_protocol_camids",
    "query_distances",
    "rerank_features",
    "select_queries",
    "write_metrics_json",
    "write_table",
]
