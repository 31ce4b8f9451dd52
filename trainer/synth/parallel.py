"""Rendering jobs in worker processes, failing loudly instead of hanging.

Workers are *spawned* (fresh interpreters that import only what rendering needs): forking a
process that already runs threads (PyTorch, OpenCV pools) can deadlock. A worker that dies
breaks the pool and becomes a clear error here. As with any spawned pool, a script that calls
the writers must guard its entry point with `if __name__ == "__main__":` (`python -m trainer`
and the `trainer` command do).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any


def spawn_context() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("spawn")


def run_in_processes(
    function: Callable[[Any], Any],
    jobs: Sequence[Any],
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple,
    on_result: Callable[[Any], None],
    on_tick: Callable[[], None] | None = None,
) -> list[Any]:
    """`function(job)` for every job on `workers` processes; results in job order.

    `on_result` sees each result as it arrives; `on_tick` runs a few times a second meanwhile
    (e.g. to drain a progress queue).
    """
    results: list[Any] = [None] * len(jobs)
    with ProcessPoolExecutor(
        workers, mp_context=spawn_context(), initializer=initializer, initargs=initargs
    ) as pool:
        pending = {pool.submit(function, job): k for k, job in enumerate(jobs)}
        try:
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                if on_tick is not None:
                    on_tick()
                for future in done:
                    index = pending.pop(future)
                    results[index] = future.result()
                    on_result(results[index])
        except BrokenProcessPool as error:
            raise RuntimeError(
                "a rendering process died (out of memory, killed, or an unguarded script "
                "entry point); rerun with --workers 1 to see the cause"
            ) from error
    return results
