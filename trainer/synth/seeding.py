"""Deterministic seeds: every random choice of the renderer hangs off (seed, purpose, item).

Deriving a fresh generator per identity, crop, camera or frame from the user's seed keeps the
output independent of how work is split between processes (same seed → same files).
"""

from __future__ import annotations

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 64-bit seed from (seed, namespace, ...): independent streams per purpose and item."""
    high, low = np.random.SeedSequence([int(p) for p in parts]).generate_state(2)
    return (int(high) << 32) | int(low)


def generator(*parts: int) -> np.random.Generator:
    """A generator seeded by `derive_seed(*parts)`."""
    return np.random.default_rng(derive_seed(*parts))
