"""``trainer data``: check a data set folder, print its statistics, picture a training batch."""

from __future__ import annotations

import argparse

NAME = "data"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="validate a data set folder, print its statistics and preview an augmented batch",
        description=(
            "Load a re-ID data set the way training and evaluation do (the layout is validated, "
            "errors name the folder or file), print subset / #ids / #images / #cameras, and "
            "optionally write a PNG of one augmented P×K training batch with its joints."
        ),
    )
    from trainer.data.registry import DATASET_NAMES  # no torch: keeps --help fast

    parser.add_argument(
        "--dataset", required=True, help=f"data set name: {', '.join(DATASET_NAMES)}"
    )
    parser.add_argument("--root", required=True, help="data set folder")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="data set option, e.g. query_split=query (synthetic) or include_val=false (msmt17); "
        "the same as a positional KEY=VALUE",
    )
    parser.add_argument(
        "options",
        nargs="*",
        metavar="key=value",
        help="data set options, e.g. test_fraction=0.3 (folder) or query_split=query (synthetic)",
    )
    parser.add_argument("--preview", help="write one augmented training batch here (PNG)")
    parser.add_argument("--identities", type=int, default=4, help="P of the previewed batch")
    parser.add_argument("--instances", type=int, default=4, help="K of the previewed batch")
    parser.add_argument("--seed", type=int, default=0, help="sampler and augmentation seed")
    parser.set_defaults(handler=run_data)


def run_data(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from torch.utils.data import DataLoader

    from reid_core.config import parse_overrides
    from trainer.data import (
        ImageDataset,
        RandomIdentityBatchSampler,
        TransformConfig,
        build_dataset,
        build_transforms,
    )
    from trainer.data.preview import save_batch_preview

    console = Console()
    dataset = build_dataset(
        args.dataset, args.root, **parse_overrides([*args.option, *args.options])
    )
    console.print(dataset.summary())
    if not args.preview:
        return 0
    if not dataset.train:
        raise ValueError(f"{dataset.name} is test-only: no training batch to preview")
    torch.manual_seed(args.seed)
    config = TransformConfig()
    train_transform, _ = build_transforms(config, dataset.joint_names)
    images = ImageDataset(dataset.train, train_transform, on_error="skip")
    sampler = RandomIdentityBatchSampler(
        images.pids, args.identities, args.instances, seed=args.seed, rank=0, world_size=1
    )
    batch = next(iter(DataLoader(images, batch_sampler=sampler)))
    path = save_batch_preview(
        batch, args.preview, args.instances, config.mean, config.std, dataset.joint_names
    )
    console.print(f"wrote {path}", soft_wrap=True)
    return 0
