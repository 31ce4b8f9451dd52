"""Shared command-line plumbing for the `trainer` and `stream` entry points.

Each subcommand lives beside the code it drives and exposes ``register(subparsers)``; an entry
point only lists those modules, so ``--help`` stays fast (heavy imports happen in handlers).

Errors: a subcommand raises with a message that names the file and field at fault; `run` prints
it as one line (``PROG COMMAND: error: ...``) and exits 2, or 1 for an unexpected failure (a
bug: its type is named). ``--debug`` anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

DEBUG_FLAG = "--debug"
EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 1, 130
# what bad input raises: config/data/file problems (pydantic's ValidationError and
# UnicodeDecodeError are ValueErrors, yaml's errors are caught by the loaders)
INPUT_ERRORS = (ValueError, OSError, RuntimeError, KeyError, LookupError)


def build_parser(prog: str, description: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        DEBUG_FLAG,
        action="store_true",
        help="show the traceback of an error (anywhere on the line)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def one_line(error: BaseException) -> str:
    """An exception's message on one line (a multi-line message keeps its lines, joined)."""
    text = str(error).strip()
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = f"missing key {error.args[0]!r}"
    text = re.sub(r"\s*\n\s*", " | ", text)
    return text or type(error).__name__


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and call the chosen subcommand's ``handler(args)``; returns its exit code.

    An exception becomes one line on stderr (see the module docstring) unless ``--debug``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    args = parser.parse_args([arg for arg in argv if arg != DEBUG_FLAG])
    where = f"{parser.prog} {args.command}"
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if debug:
            raise
        if isinstance(error, INPUT_ERRORS):
            print(f"{where}: error: {one_line(error)}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"{where}: internal error ({type(error).__name__}): {one_line(error)} "
            f"(rerun with {DEBUG_FLAG} for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def claim_output_folder(
    out: Path, used: Sequence[str], what: str, *, resume: bool, overwrite: bool
) -> None:
    """The --resume / --overwrite rule of a command that writes into ``out``, where ``used``
    names the entries an earlier run left there: both flags at once, or a used folder with
    neither, is an error; ``resume`` keeps everything; ``overwrite`` deletes exactly those
    entries (and nothing else of the folder), tolerating another process deleting them too."""
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite deletes it: pick one")
    if resume:
        return
    if used and not overwrite:
        raise ValueError(
            f"{out} already holds {what} ({', '.join(used)}): pass --resume to continue it or "
            "--overwrite to replace it, or choose another --out"
        )
    for name in used:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, onerror=_unless_gone)
        else:
            target.unlink(missing_ok=True)


def _unless_gone(function: object, path: str, error: tuple) -> None:
    """rmtree's error hook: an entry another process deleted first is fine, nothing else."""
    if not isinstance(error[1], FileNotFoundError):
        raise error[1]
