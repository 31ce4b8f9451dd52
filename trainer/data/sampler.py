"""P identities × K images per batch, split across distributed ranks (SPEC §2 training recipe).

The paper trains on batches of 16 identities × 4 images; the feature-consistency loss reads the
K images of an identity as {A, B, C, D}, so they arrive consecutively. As torchreid's
RandomIdentitySampler: each identity's images are shuffled and cut into groups of K (an identity
with fewer than K images is drawn with replacement up to K; an incomplete last group is dropped),
and every step draws identities that still have a group left.

Distributed: every rank builds the same epoch plan from (seed, epoch), in which one step holds
world_size × P distinct identities; rank r takes the r-th P of them. So the identities of the
ranks are disjoint within a step, all ranks get the same number of batches (no rank waits in a
collective for a peer that ran out), and `set_epoch` reshuffles everything, as with torch's
DistributedSampler.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


class RandomIdentityBatchSampler(Sampler[list[int]]):
    """Batch sampler of ``num_identities`` × ``num_instances`` dataset indices for one rank.

    ``pids`` is the identity of every dataset index. ``rank`` / ``world_size`` default to the
    initialised torch.distributed group, else a single process.
    """

    def __init__(
        self,
        pids: Sequence[int],
        num_identities: int = 16,
        num_instances: int = 4,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if num_identities < 1 or num_instances < 1:
            raise ValueError(
                f"num_identities and num_instances must be ≥ 1, got {num_identities}, {num_instances}"
            )
        distributed = dist.is_available() and dist.is_initialized()
        self.world_size = (
            world_size if world_size is not None else (dist.get_world_size() if distributed else 1)
        )
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside world_size {self.world_size}")
        self.num_identities = num_identities
        self.num_instances = num_instances
        self.seed = seed
        self.epoch = 0
        indices_by_pid: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            indices_by_pid[int(pid)].append(index)
        self._pids = sorted(indices_by_pid)
        self._indices = [np.asarray(indices_by_pid[pid]) for pid in self._pids]
        per_step = num_identities * self.world_size
        if len(self._pids) < per_step:
            raise ValueError(
                f"{len(self._pids)} identities cannot fill a step of {self.world_size} rank(s) × "
                f"{num_identities} identities; lower num_identities or use more identities"
            )
        self._plan_epoch: int | None = None
        self._plan: list[list[int]] = []

    @property
    def batch_size(self) -> int:
        return self.num_identities * self.num_instances

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``; call it on every rank with the same value before iterating."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._rank_batches())

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._rank_batches()

    def _rank_batches(self) -> list[list[int]]:
        if self._plan_epoch != self.epoch:
            self._plan = self._build_plan()
            self._plan_epoch = self.epoch
        return self._plan

    def _build_plan(self) -> list[list[int]]:
        """This rank's batches for the current epoch, from the plan shared by all ranks."""
        rng = np.random.default_rng([self.seed, self.epoch])
        k = self.num_instances
        groups: list[list[np.ndarray]] = []
        for indices in self._indices:
            drawn = (
                rng.choice(indices, size=k, replace=True)
                if len(indices) < k
                else rng.permutation(indices)
            )
            groups.append([drawn[i : i + k] for i in range(0, len(drawn) - k + 1, k)])
        remaining = np.array([len(g) for g in groups])
        per_step = self.num_identities * self.world_size
        own = slice(self.rank * self.num_identities, (self.rank + 1) * self.num_identities)
        batches = []
        while np.count_nonzero(remaining) >= per_step:
            chosen = rng.choice(np.flatnonzero(remaining), size=per_step, replace=False)
            remaining[chosen] -= 1  # take each chosen identity's last unused group
            batches.append([int(i) for p in chosen[own] for i in groups[p][remaining[p]]])
        return batches
