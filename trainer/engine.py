"""The training engine: `trainer train`, alone or under torchrun (SPEC §2 recipe, §8 CLI).

One process per device. Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment) the
model is wrapped in DistributedDataParallel (NCCL on GPUs, gloo on CPU) and the identity sampler
gives every rank its own identities. Every epoch starts from RNG states derived from
(seed, rank, epoch), so a run resumed from the checkpoint of epoch e continues exactly as the
uninterrupted run would have: the checkpoint holds model, optimiser, scheduler and scaler, and
the epoch says where the sampler and the RNGs stand.

Crashes: the checkpoint is written whole or not at all (`atomic_torch_save`); each epoch's
history line is written before its checkpoint, and `--resume` drops lines past the checkpoint,
so a run killed anywhere resumes to the weights of an unbroken run. A run killed before its
first checkpoint resumes from the start. The crash tests kill runs at chosen points through
``OCCLUREID_FAULT`` (``step:N``: SIGKILL before this process's N-th optimizer step;
``checkpoint:N``: inside its N-th checkpoint write, between the temporary file and the rename).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_VERSION = 2  # 2: two optimiser parameter groups (backbone, new modules)


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed() -> DistributedContext:
    """Join the torchrun process group when launched by torchrun, else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, device)


def seed_epoch(seed: int, rank: int, epoch: int) -> torch.Generator:
    """Seed every RNG for (seed, rank, epoch); returns the data loader's generator."""
    epoch_seed = int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])
    random.seed(epoch_seed)
    np.random.seed(epoch_seed)
    torch.manual_seed(epoch_seed)
    generator = torch.Generator()
    generator.manual_seed(epoch_seed)
    return generator


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: numpy and random follow torch's per-worker seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def lr_factor(epoch: int, cfg: Any) -> float:
    """Linear warm-up for `warmup_epochs`, then ×gamma every `step_size` epochs (SPEC §2)."""
    if epoch < cfg.warmup_epochs:
        alpha = epoch / cfg.warmup_epochs
        return cfg.warmup_factor * (1 - alpha) + alpha
    return cfg.gamma ** (epoch // cfg.step_size)


def warmup_iter_factor(step: int, cfg: Any) -> float:
    """Linear warm-up over the first `warmup_iters` steps of the run: warmup_factor → 1."""
    if step >= cfg.warmup_iters:
        return 1.0
    alpha = step / cfg.warmup_iters
    return cfg.warmup_factor * (1 - alpha) + alpha


def parameter_groups(model: nn.Module, lr: float, backbone_lr_factor: float) -> list[dict]:
    """The backbone's parameters at lr × backbone_lr_factor, every other one at lr."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    in_backbone = {id(p) for p in backbone}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in in_backbone]
    return [
        {"params": backbone, "lr": lr * backbone_lr_factor, "name": "backbone"},
        {"params": others, "lr": lr, "name": "new_modules"},
    ]


class TrainStep(nn.Module):
    """Model + loss in one module, so DDP sees a single forward even though the equivariance
    loss runs the model twice (on X and on its warp Y)."""

    def __init__(self, model: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(
        self,
        images: torch.Tensor,
        pids: torch.Tensor,
        joints: torch.Tensor | None = None,
        part_maps: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        return self.loss(self.model, images, pids, joints=joints, part_maps=part_maps)


FAULT_ENV = "OCCLUREID_FAULT"
_fault_counts: dict[str, int] = defaultdict(int)


def fault_point(kind: str) -> None:
    """SIGKILL this process at the point ``OCCLUREID_FAULT`` names (crash tests; unset: no-op)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    _fault_counts[kind] += 1
    if wanted == f"{kind}:{_fault_counts[kind]}":
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to a temporary file beside `path`, then rename: a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    fault_point("checkpoint")
    os.replace(tmp, path)


def initial_weights(path: Path, model_cfg: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """``init``: the model config to train (the file's architecture with ``model_cfg``'s loss
    and classes) and the file's tensors in fp32, checked to fit all but the classifiers."""
    from reid_core import load
    from reid_core.backbone import state_dict_mismatch
    from reid_core.model import MotionAwareTransformer

    if not path.is_file():
        raise FileNotFoundError(f"init: model file {path} does not exist")
    model = load(path)
    stored = model.config
    merged = stored.model_copy(
        update={
            "loss": model_cfg.loss,
            "num_classes": model_cfg.num_classes,
            "backbone": stored.backbone.model_copy(update={"weights": "random"}),
        }
    )
    state = {k: v.float() for k, v in model.state_dict().items()}
    expected = MotionAwareTransformer(merged).state_dict()
    classifiers = {k for k in expected if "classifier" in k}
    report = state_dict_mismatch(
        {k: v for k, v in expected.items() if k not in classifiers},
        {k: v for k, v in state.items() if k not in classifiers},
    )
    if report:
        raise ValueError(f"init: {path} does not fit its own model config: {report}")
    return merged, {k: v for k, v in state.items() if k not in classifiers}


class Trainer:
    """Runs the epochs of one training configuration in `out_dir`."""

    def __init__(self, cfg: Any, out_dir: Path, ctx: DistributedContext) -> None:
        from reid_core import build_model
        from reid_core.config import load_model_config
        from reid_core.losses import MotionAwareLoss
        from trainer.data import (
            ImageDataset,
            RandomIdentityBatchSampler,
            attach_keypoints,
            build_dataset,
            build_transforms,
        )

        self.cfg = cfg
        self.out_dir = out_dir
        self.ctx = ctx
        self.dataset = build_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
        if cfg.data.keypoints is not None:
            attach_keypoints(self.dataset, cfg.data.keypoints)
        if not self.dataset.train:
            raise ValueError(
                f"data set {cfg.data.dataset!r} at {cfg.data.root} has no training images "
                "(test-only data sets are evaluated with a model trained elsewhere)"
            )
        self.model_cfg = load_model_config(
            cfg.model,
            {"num_classes": self.dataset.num_train_pids},
        )
        initial_state = None
        if cfg.init is not None:
            self.model_cfg, initial_state = initial_weights(Path(cfg.init), self.model_cfg)
        if [cfg.transforms.height, cfg.transforms.width] != list(self.model_cfg.input_size):
            raise ValueError(
                f"transforms.height/width {cfg.transforms.height}×{cfg.transforms.width} differ "
                f"from the model's input_size {tuple(self.model_cfg.input_size)}: set both alike"
            )
        train_tf, self.test_tf = build_transforms(cfg.transforms, self.dataset.joint_names)
        self.images = ImageDataset(
            self.dataset.train,
            train_tf,
            on_error=cfg.data.on_error,
            part_maps=self.model_cfg.loss.weights.part_supervision > 0,
        )
        identities_per_rank, remainder = divmod(cfg.sampler.identities_per_batch, ctx.world_size)
        if remainder or not identities_per_rank:
            raise ValueError(
                f"sampler.identities_per_batch={cfg.sampler.identities_per_batch} cannot be "
                f"split evenly over {ctx.world_size} processes"
            )
        self.sampler = RandomIdentityBatchSampler(
            self.images.pids,
            identities_per_rank,
            cfg.sampler.images_per_identity,
            seed=cfg.seed,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        if self.model_cfg.loss.images_per_identity != cfg.sampler.images_per_identity:
            raise ValueError(
                f"sampler.images_per_identity={cfg.sampler.images_per_identity} must equal the "
                f"model's loss.images_per_identity={self.model_cfg.loss.images_per_identity} "
                "(the feature-consistency loss reads each group as {A, B, C, D})"
            )
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.model = build_model(self.model_cfg)
        if initial_state is not None:
            self.model.load_state_dict(initial_state, strict=False)
        self.model = self.model.to(ctx.device)
        self.loss = MotionAwareLoss(self.model_cfg)
        step: nn.Module = TrainStep(self.model, self.loss)
        if ctx.distributed:
            step = nn.parallel.DistributedDataParallel(
                step,
                device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.step = step
        self.optimizer = torch.optim.SGD(
            parameter_groups(self.model, cfg.optimizer.lr, cfg.optimizer.backbone_lr_factor),
            lr=cfg.optimizer.lr,
            momentum=cfg.optimizer.momentum,
            weight_decay=cfg.optimizer.weight_decay,
            nesterov=cfg.optimizer.nesterov,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda epoch: lr_factor(epoch, cfg.scheduler)
        )
        use_amp = ctx.device.type == "cuda" and cfg.amp != "off"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=self.amp_dtype)) if use_amp else nullcontext
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp and cfg.amp == "fp16")
        self.start_epoch = 0
        self.best_map = -1.0
        self.writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoints" / CHECKPOINT_NAME

    def save_checkpoint(self, epoch: int) -> None:
        from reid_core import save

        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "version": CHECKPOINT_VERSION,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_map": self.best_map,
            "world_size": self.ctx.world_size,
            "model_config": self.model_cfg.to_json(),
        }
        atomic_torch_save(state, self.checkpoint_path)
        save(self.model, self.out_dir / "model_last.safetensors")

    def resume(self) -> None:
        from reid_core.config import ModelConfig

        path = self.checkpoint_path
        if not path.is_file():  # killed before its first checkpoint was complete: start over
            log.warning("--resume: no checkpoint in %s yet: training from the start", path)
            self._keep_history_before(0)
            return
        state = torch.load(path, map_location=self.ctx.device, weights_only=True)
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path}: checkpoint version {state.get('version')} is not supported")
        # compared as configs, so a field added since (at its default) is no difference
        if ModelConfig.from_json(state["model_config"]) != self.model_cfg:
            raise ValueError(f"{path}: the checkpoint was trained with another model config")
        if state["world_size"] != self.ctx.world_size:
            log.warning(
                "resuming a %d-process run with %d processes: the sampler's batches differ",
                state["world_size"],
                self.ctx.world_size,
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.best_map = state["best_map"]
        self.start_epoch = state["epoch"] + 1
        self._keep_history_before(self.start_epoch)
        if self.ctx.is_main:  # a kill may have cut this file after the checkpoint was written
            from reid_core import save

            save(self.model, self.out_dir / "model_last.safetensors")

    def _keep_history_before(self, epoch: int) -> None:
        """Drop history lines of epochs the resumed run trains again (written, then killed
        before their checkpoint)."""
        path = self.out_dir / "history.jsonl"
        if not self.ctx.is_main or not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["epoch"] < epoch:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line the kill cut
        path.write_text("".join(f"{line}\n" for line in kept))

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        cfg = self.cfg
        history: dict[str, Any] = {}
        steps_per_epoch = self._steps_in_epoch(self.start_epoch)  # for the ETA; ±1 per epoch
        progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not self.ctx.is_main,
        )
        total_steps = steps_per_epoch * (cfg.epochs - self.start_epoch)
        with progress:
            task = progress.add_task("train", total=total_steps, epoch="-", losses="")
            for epoch in range(self.start_epoch, cfg.epochs):
                history = self._train_epoch(epoch, progress, task)
                self.scheduler.step()
                if self.ctx.is_main:
                    metrics = self._maybe_evaluate(epoch)
                    self._log_epoch(epoch, history, metrics)
                    self.save_checkpoint(epoch)
                if self.ctx.distributed:
                    dist.barrier()
        if self.writer is not None:
            self.writer.close()
        return history

    def _steps_in_epoch(self, epoch: int) -> int:
        """Batches of `epoch` (the same on every rank), capped by max_steps_per_epoch."""
        self.sampler.set_epoch(epoch)
        return min(len(self.sampler), self.cfg.max_steps_per_epoch or len(self.sampler))

    def _train_epoch(self, epoch: int, progress: Any, task: Any) -> dict[str, float]:
        from torch.utils.data import DataLoader

        cfg = self.cfg
        generator = seed_epoch(cfg.seed, self.ctx.rank, epoch)
        steps = self._steps_in_epoch(epoch)
        loader = DataLoader(
            self.images,
            batch_sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            worker_init_fn=_seed_worker,
            generator=generator,
            persistent_workers=False,
        )
        supervise_keypoints = epoch < cfg.keypoint_pretraining.epochs
        if self.model_cfg.heads.keypoints == "pretrained" and not supervise_keypoints:
            from reid_core.losses import freeze_keypoint_branch

            freeze_keypoint_branch(self.model)
        self.model.train()
        sums: dict[str, float] = defaultdict(float)
        step_identities: list[list[int]] = []
        start = time.perf_counter()
        images_seen = 0
        for step_index, batch in enumerate(loader):
            if step_index >= steps:
                break
            images = batch["image"].to(self.ctx.device, non_blocking=True)
            pids = batch["pid"].to(self.ctx.device)
            joints = batch.get("joints") if supervise_keypoints else None
            if joints is not None:
                joints = joints.to(self.ctx.device)
            part_maps = batch.get("part_map")
            if part_maps is not None:
                part_maps = part_maps.to(self.ctx.device)
            fault_point("step")
            self._set_learning_rates(epoch, epoch * steps + step_index)
            with self.autocast():
                losses = self.step(images, pids, joints, part_maps)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses["total"]).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            step_identities.append(sorted({int(p) for p in batch["pid"]}))
            images_seen += len(images)
            for name, value in losses.items():
                sums[name] += float(value.detach())
            global_step = epoch * len(self.sampler) + step_index
            if self.writer is not None and global_step % cfg.log_every == 0:
                for name, value in losses.items():
                    self.writer.add_scalar(f"loss/{name}", float(value.detach()), global_step)
                for group in self.optimizer.param_groups:
                    self.writer.add_scalar(f"lr/{group['name']}", group["lr"], global_step)
            shown = " ".join(f"{k[:12]}={float(v.detach()):.3f}" for k, v in losses.items())
            progress.update(task, advance=1, epoch=f"{epoch + 1}/{cfg.epochs}", losses=shown)
        elapsed = time.perf_counter() - start
        count = max(1, min(steps, step_index + 1))
        history = {name: total / count for name, total in sums.items()}
        history["images_per_second"] = images_seen * self.ctx.world_size / max(elapsed, 1e-9)
        history["steps"] = count  # optimizer steps this epoch; with seconds, a model card's
        history["seconds"] = elapsed  # steps and wall time come from history.jsonl
        history["step_identities"] = step_identities
        return history

    def _set_learning_rates(self, epoch: int, run_step: int) -> None:
        """Each group's lr: its initial lr × the epoch's step decay × the per-step warm-up."""
        scheduler = self.cfg.scheduler
        factor = lr_factor(epoch, scheduler) * warmup_iter_factor(run_step, scheduler)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def _maybe_evaluate(self, epoch: int) -> dict[str, float] | None:
        cfg = self.cfg.eval
        last = epoch + 1 == self.cfg.epochs
        if cfg.every == 0 or ((epoch + 1) % cfg.every and not last):
            return None
        from reid_core import save
        from trainer.evaluation.evaluate import evaluate_model

        metrics = evaluate_model(
            self.model,
            cfg.dataset or self.cfg.data.dataset,
            cfg.root or self.cfg.data.root,
            options=cfg.options if cfg.dataset else self.cfg.data.options,
            transform=self.test_tf,
            distance=cfg.distance,
            batch_size=cfg.batch_size,
            device=self.ctx.device,
        ).metrics
        if metrics["mAP"] > self.best_map:
            self.best_map = metrics["mAP"]
            save(self.model, self.out_dir / "model_best.safetensors")
        return metrics

    def _log_epoch(
        self, epoch: int, history: dict[str, Any], metrics: dict[str, float] | None
    ) -> None:
        record = {
            "epoch": epoch,
            "lr": {group["name"]: group["lr"] for group in self.optimizer.param_groups},
            **{k: v for k, v in history.items() if k != "step_identities"},
        }
        if metrics is not None:
            # scalars, and the per-part lists of part_health/... (history.jsonl only)
            record["eval"] = {k: v for k, v in metrics.items() if isinstance(v, float | int | list)}
            for name, value in record["eval"].items():
                if not isinstance(value, list):
                    self.writer.add_scalar(f"eval/{name}", value, epoch)
        self.writer.add_scalar("throughput/images_per_second", history["images_per_second"], epoch)
        with (self.out_dir / "history.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")


# what a training run writes into --out: a used folder is refused, --overwrite deletes these
TRAIN_OUTPUTS = (
    "checkpoints",
    "history.jsonl",
    "model_last.safetensors",
    "model_best.safetensors",
    "tensorboard",
    "train_config.yaml",
)


def prepare_train_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """A fresh --out, or one cleared with ``overwrite``; ``resume`` continues what is there.
    Training into a used folder without either would mix two runs' checkpoints and logs."""
    from reid_core.cli import claim_output_folder

    used = [name for name in TRAIN_OUTPUTS if (out / name).exists()]
    used += sorted(p.name for p in out.glob("rank*_identities.json"))
    # every rank clears the folder (nodes may not share a filesystem): deletions may race
    claim_output_folder(out, used, "a training run", resume=resume, overwrite=overwrite)


def train(
    config_path: str | Path,
    out_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train from a config file; returns the last epoch's mean losses (this rank's).

    ``out_dir`` must hold no training run unless ``resume`` or ``overwrite``."""
    import yaml

    from trainer.config import load_train_config

    cfg = load_train_config(config_path, overrides)
    ctx = setup_distributed()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)  # every rank: nodes may not share a filesystem
    prepare_train_out(out, resume=resume, overwrite=overwrite)
    if resume and not (out / "train_config.yaml").is_file():
        raise FileNotFoundError(
            f"--resume: no checkpoint at {out / 'checkpoints' / CHECKPOINT_NAME} and no run "
            f"started in {out} (run without --resume)"
        )
    if ctx.distributed:
        dist.barrier()  # no rank writes before every rank has checked and cleared
    if ctx.is_main:
        (out / "train_config.yaml").write_text(
            yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
        )
    trainer = Trainer(cfg, out, ctx)
    if ctx.is_main:
        from rich.console import Console

        Console().print(trainer.dataset.summary())
    if resume:
        trainer.resume()
    try:
        history = trainer.run()
        # Which identities this rank trained on at each step of the last epoch: a distributed
        # run can be checked for ranks that share identities within a step.
        identities = out / f"rank{ctx.rank}_identities.json"
        identities.write_text(json.dumps(history.get("step_identities", [])))
        return history
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a config (alone or under torchrun)",
        description=(
            "Train the motion-aware transformer (or an ablation) from configs/train/*.yaml. "
            "Run it alone, or under `torchrun --nproc-per-node N [--nnodes M ...] -m trainer "
            "train ...` for DDP (NCCL on GPUs, gloo on CPU). Writes checkpoints/last.pt, "
            "model_last.safetensors, model_best.safetensors, history.jsonl and TensorBoard logs "
            "under --out."
        ),
    )
    parser.add_argument("--config", required=True, help="train config YAML (configs/train/)")
    parser.add_argument("--data-root", help="data set root (overrides data.root)")
    parser.add_argument(
        "--init",
        help="fine-tune: start from this model file's weights and architecture (overrides init)",
    )
    parser.add_argument("--epochs", type=int, help="number of epochs (overrides epochs)")
    parser.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    parser.add_argument(
        "--resume", action="store_true", help="continue exactly from --out/checkpoints/last.pt"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="delete the training run already in --out"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optimizer.lr=0.02"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from reid_core.config import deep_merge, parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.data_root:
        overrides = deep_merge(overrides, {"data": {"root": args.data_root}})
    if args.epochs:
        overrides = deep_merge(overrides, {"epochs": args.epochs})
    if args.init:
        overrides = deep_merge(overrides, {"init": str(Path(args.init).resolve())})
    train(args.config, args.out, overrides, resume=args.resume, overwrite=args.overwrite)
    return 0
