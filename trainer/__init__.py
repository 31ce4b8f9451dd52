"""trainer: synthetic data, data sets, the training engine and evaluation (SPEC §3).

`trainer.evaluate_rankings` is SPEC §8's public evaluation entry point. Exports are resolved
lazily so that `trainer --help` does not pay for importing torch.
"""

from __future__ import annotations

from typing import Any

_EVALUATION_EXPORTS = (
    "evaluate_rankings",
    "evaluate_features",
    "ProtocolLabels",
    "RerankConfig",
    "rerank_features",
    "write_metrics_json",
    "write_table",
)

__all__ = list(_EVALUATION_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EVALUATION_EXPORTS:
        import trainer.evaluation

        return getattr(trainer.evaluation, name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
