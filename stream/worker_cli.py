"""`stream worker --config C`: run one feature worker (`stream.worker`) until SIGTERM / Ctrl-C.

Kept apart from `stream.worker` so that ``stream --help`` does not import torch and Qdrant:
everything heavy is imported inside the handler.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

NAME = "worker"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="run a feature worker: crops over ZeroMQ in, global identities out",
        description="Serve the crop stream of the camera stages: batch and embed crops, pool "
        "them per tracklet, match tracklets across cameras through the Qdrant gallery and "
        "publish assignments and stats (configs/worker/default.yaml shows every setting). "
        "SIGTERM or Ctrl-C drains what is queued, flushes the gallery and exits 0. The process "
        "restarts itself once with the glibc malloc settings of NOTES 'CPU speed traps'.",
    )
    parser.add_argument("--config", required=True, type=Path, help="worker config YAML")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from reid_core.runtime.embedder import ensure_malloc_env

    ensure_malloc_env()  # before anything allocates: glibc reads these at process start

    from stream.worker import Worker
    from stream.worker_config import load_worker_config

    _configure_logging(args.log_level)
    config = load_worker_config(args.config)
    try:
        worker = Worker.from_config(config)
    except FileNotFoundError as error:  # the model file it names
        raise ValueError(f"{args.config}: {error}") from None
    return worker.run()


def _configure_logging(level: str) -> None:
    """rich on a terminal; one plain line per record in a log file (no 80-column wrapping)."""
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=True)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
