"""`trainer`: the command line for synthetic data, training, evaluation and export."""

from __future__ import annotations

import argparse
import sys

from reid_core.cli import build_parser, run

SUBCOMMAND_MODULES = [
    "trainer.synth.cli",
    "trainer.data.cli",
    "trainer.engine",
    "trainer.evaluation.evaluate",
    "trainer.viz",
    "trainer.export",
    "trainer.extract",
    "trainer.release",
]


def parser() -> argparse.ArgumentParser:
    return build_parser(
        "trainer",
        "OccluReID trainer: render synthetic data, train, evaluate, export and release models.",
        SUBCOMMAND_MODULES,
    )


def main(argv: list[str] | None = None) -> int:
    return run(parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
