"""Shared command-line plumbing for the `trainer` and `stream` entry points.

Each subcommand lives beside the code it drives and exposes ``register(subparsers)``; an entry
point only lists those modules, so ``--help`` stays fast (heavy imports happen in handlers).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence


def build_parser(prog: str, description: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and call the chosen subcommand's ``handler(args)``; returns its exit code."""
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)
