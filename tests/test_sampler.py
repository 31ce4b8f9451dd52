"""P×K identity batch sampler: composition, groups, ranks, epochs, determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from trainer.data import RandomIdentityBatchSampler

P, K = 4, 4
# 20 identities with 1..12 images each, interleaved so an identity's indices are not contiguous.
COUNTS = [1 + (i * 7) % 12 for i in range(20)]
PIDS = [pid for round_ in range(12) for pid, n in enumerate(COUNTS) if round_ < n]


def groups_of(batch: list[int]) -> list[list[int]]:
    return [batch[i : i + K] for i in range(0, len(batch), K)]


def test_batches_are_p_identities_times_k_consecutive_images() -> None:
    sampler = RandomIdentityBatchSampler(PIDS, num_identities=P, num_instances=K, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    assert sampler.batch_size == P * K
    drawn = Counter()
    for batch in batches:
        assert len(batch) == P * K
        group_pids = []
        for group in groups_of(batch):
            assert len({PIDS[i] for i in group}) == 1  # K images of one identity, in a row
            pid = PIDS[group[0]]
            group_pids.append(pid)
            if COUNTS[pid] >= K:
                assert len(set(group)) == K  # without replacement when there are enough
        assert len(set(group_pids)) == P
        drawn.update(batch)
    # An identity with ≥ K images never repeats an image within an epoch.
    assert all(drawn[i] == 1 for i in drawn if COUNTS[PIDS[i]] >= K)
    # Identities with fewer than K images are still sampled (with replacement).
    assert {PIDS[i] for i in drawn} >= {pid for pid, n in enumerate(COUNTS) if n < K}


def test_ranks_get_disjoint_identities_and_equal_batch_counts() -> None:
    world = 3
    samplers = [
        RandomIdentityBatchSampler(PIDS, P, K, seed=5, rank=r, world_size=world)
        for r in range(world)
    ]
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) > 0
    assert [len(s) for s in samplers] == [len(b) for b in per_rank]
    for step in zip(*per_rank, strict=True):
        identity_sets = [{PIDS[i] for i in batch} for batch in step]
        assert all(len(ids) == P for ids in identity_sets)
        assert len(set().union(*identity_sets)) == world * P
    single = list(RandomIdentityBatchSampler(PIDS, P, K, seed=5))
    assert len(single) >= len(per_rank[0])


def test_set_epoch_reshuffles_and_same_seed_and_epoch_repeat() -> None:
    sampler = RandomIdentityBatchSampler(PIDS, P, K, seed=7, rank=1, world_size=2)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    twin = RandomIdentityBatchSampler(PIDS, P, K, seed=7, rank=1, world_size=2)
    twin.set_epoch(1)
    assert list(twin) == second
    other_seed = RandomIdentityBatchSampler(PIDS, P, K, seed=8, rank=1, world_size=2)
    other_seed.set_epoch(1)
    assert list(other_seed) != second


def test_too_few_identities_or_bad_rank_is_an_error() -> None:
    with pytest.raises(ValueError, match="20 identities cannot fill a step of 3 rank"):
        RandomIdentityBatchSampler(PIDS, num_identities=7, num_instances=K, rank=0, world_size=3)
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        RandomIdentityBatchSampler(PIDS, P, K, rank=2, world_size=2)
    with pytest.raises(ValueError, match="≥ 1"):
        RandomIdentityBatchSampler(PIDS, 0, K)
