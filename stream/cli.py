"""`stream`: the command line for the multi-camera pipeline, its worker, search and demo."""

from __future__ import annotations

import argparse
import sys

from reid_core.cli import build_parser, run

SUBCOMMAND_MODULES = [
    "stream.pipeline",
    "stream.worker_cli",
    "stream.mtmc",
    "stream.calibration",
    "stream.harvest",
    "stream.search",
    "stream.index",
    "stream.demo",
    "stream.security",
]


def parser() -> argparse.ArgumentParser:
    return build_parser(
        "stream",
        "OccluReID stream: multi-camera detection, tracking and cross-camera re-ID.",
        SUBCOMMAND_MODULES,
    )


def main(argv: list[str] | None = None) -> int:
    return run(parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
