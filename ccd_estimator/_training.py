"""The student's training loop: losses, label updates, model selection.

See method.md sections 1.8-1.12.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score
from tqdm.auto import tqdm

from ccd_estimator._data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TrainViews,
    make_loader,
    resize_to_tensor,
)
from ccd_estimator._debias import blend_local_labels
from ccd_estimator._progress import progress
from ccd_estimator._student import CAMStudent
from ccd_estimator._views import (
    aggregate_crop_scores,
    cams_to_boxes,
    crop_groups,
    mean_candidates,
    search_threshold,
)

__all__ = ["TrainConfig", "train_student", "select_epoch", "train_map"]

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything the training loop needs besides the data and the models."""

    image_size: int
    cam_image_size: int
    crop_size: int
    crop_multiple: int | None
    batch_size: int
    max_epochs: int
    learning_rate: float
    head_lr_multiplier: float
    consistency_weight: float
    consistency_start: int
    update_epochs: tuple[int, ...]
    candidate_bound: float
    candidate_start: float
    cam_threshold: float
    box_mode: str
    crop_margin: float
    aggregation: str
    blend_ratio: float
    label_floor: float
    debias_local: bool
    selection: str
    n_workers: int
    precision: str
    verbose: int
    inference_batch_size: int = 64
    compile_kwargs: dict[str, Any] | None = None


@dataclass
class TrainResult:
    """What the loop hands back to the estimator."""

    history: list[dict[str, Any]] = field(default_factory=list)
    selected_epoch: int = -1
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    labels: np.ndarray | None = None
    label_stages: dict[str, np.ndarray] = field(default_factory=dict)


def train_map(scores: np.ndarray, labels: np.ndarray) -> float:
    """Train mAP of the released selection rule, in percent.

    Positives are the pseudo-labels equal to 1 (clamp-saturated); a class with
    no such positive counts with AP 0, as in the released code.
    """
    positives = labels >= 1.0
    aps = []
    for c in range(labels.shape[1]):
        if positives[:, c].any():
            aps.append(average_precision_score(positives[:, c], scores[:, c]))
        else:
            aps.append(0.0)
    return 100.0 * float(np.mean(aps))


def select_epoch(maps: list[float], rule: str) -> int:
    """Pick an epoch without ground truth.

    ``rule="train_map"`` is the released rule: with ``d_e = m_e - m_{e-1}``
    and sentinels ``d_{-1} = d_0 = 100``, the first epoch whose gain is larger
    than the previous epoch's gain (``d_e - d_{e-1} > 0``); the last epoch when
    that never happens (the released code crashed then). ``rule="last"`` is the
    last epoch.

    Parameters
    ----------
    maps : list of float
        Train mAP per epoch, in percent.
    rule : {"train_map", "last"}
        Selection rule.

    Returns
    -------
    int
        The selected epoch (0-based).
    """
    last = len(maps) - 1
    if rule == "last":
        return last
    gains = [100.0, 100.0] + [maps[e] - maps[e - 1] for e in range(1, len(maps))]
    # gains[e + 1] is d_e; d_0 is the sentinel 100.
    for e in range(len(maps)):
        if gains[e + 1] - gains[e] > 0:
            return e
    return last


def _autocast(device: torch.device, precision: str) -> Any:
    if device.type == "cuda" and precision in ("fp16", "bf16"):
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    # channels_last on every device: the student's convolutions run faster in
    # NHWC on CPUs (oneDNN) as well as on GPUs
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def _train_epoch(
    student: CAMStudent,
    step_model: Any,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    paths: np.ndarray,
    labels: torch.Tensor,
    weights: torch.Tensor,
    cfg: TrainConfig,
    consistency: bool,
    device: torch.device,
    generator: torch.Generator,
    desc: str,
) -> tuple[float, float, np.ndarray]:
    """One pass over the data; returns mean BCE, mean consistency, online scores.

    ``step_model`` computes the logits: the student or its compiled wrapper.
    """
    order = torch.randperm(len(paths), generator=generator).numpy()
    loader = make_loader(
        paths,
        TrainViews(cfg.image_size, jitter=consistency),
        cfg.batch_size,
        cfg.n_workers,
        device,
        order=order,
    )
    student.train()
    scores = np.zeros(tuple(labels.shape), dtype=np.float32)
    bce_sum = cons_sum = 0.0
    for batch in progress(loader, cfg.verbose, desc):
        idx = batch["index"]
        views = batch["image"]
        clean = _to_device(views[0] if consistency else views, device)
        target = labels[idx].to(device)
        # BatchNorm cannot train on one value per channel (a lone image with a
        # 1x1 feature map); such a step uses the running statistics instead.
        lone = len(idx) == 1
        if lone:
            _set_batchnorm_eval(student)
        with _autocast(device, cfg.precision):
            logits = step_model(clean).float()
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            loss = (bce * weights[idx].to(device)[:, None]).mean()
            cons = torch.zeros((), device=device)
            if consistency:
                jit_logits = step_model(_to_device(views[1], device)).float()
                cons = F.binary_cross_entropy_with_logits(
                    jit_logits, torch.sigmoid(logits).detach()
                )
                loss = loss + cfg.consistency_weight * cons
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if lone:
            student.train()
        n = len(idx)
        bce_sum += float(bce.detach().mean()) * n
        cons_sum += float(cons.detach()) * n
        scores[idx.numpy()] = torch.sigmoid(logits.detach()).cpu().numpy()
    return bce_sum / len(paths), cons_sum / len(paths), scores


def _set_batchnorm_eval(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


@torch.inference_mode()
def _candidate_probs(
    student: CAMStudent, paths: np.ndarray, cfg: TrainConfig, device: torch.device
) -> np.ndarray:
    """Student sigmoid probabilities on the view the crops are cut from."""
    student.eval()
    norm = _imagenet_norm(device)
    loader = make_loader(
        paths,
        resize_to_tensor(cfg.cam_image_size),
        cfg.inference_batch_size,
        cfg.n_workers,
        device,
    )
    probs = np.zeros((len(paths), student.head.out_channels), dtype=np.float32)
    for batch in progress(loader, cfg.verbose, "candidate classes"):
        x = norm(_to_device(batch["image"], device))
        with _autocast(device, cfg.precision):
            logits = student(x).float()
        probs[batch["index"].numpy()] = torch.sigmoid(logits).cpu().numpy()
    return probs


def _imagenet_norm(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=device)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[None, :, None, None]
    return lambda x: (x - mean) / std


@torch.inference_mode()
def _local_scores(
    student: CAMStudent,
    teacher: Any,
    paths: np.ndarray,
    probs: np.ndarray,
    tau: float,
    cfg: TrainConfig,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Teacher scores of crops around each candidate class's CAM, aggregated."""
    student.eval()
    norm = _imagenet_norm(device)
    t_mean = torch.tensor(teacher.mean, device=device)[None, :, None, None]
    t_std = torch.tensor(teacher.std, device=device)[None, :, None, None]
    size = cfg.cam_image_size
    margin = int(round(cfg.crop_margin * size))
    loader = make_loader(
        paths,
        resize_to_tensor(size),
        cfg.inference_batch_size,
        cfg.n_workers,
        device,
    )
    crop_image, crop_scores = [], []
    for batch in progress(loader, cfg.verbose, "local views"):
        idx = batch["index"].numpy()
        images = _to_device(batch["image"], device)
        candidates = torch.as_tensor(probs[idx] >= tau)
        pairs = candidates.nonzero()  # (k, 2): position in batch, class
        if len(pairs) == 0:
            continue
        with _autocast(device, cfg.precision):
            cams = student.cams(norm(images)).float()
        boxes = cams_to_boxes(
            cams[pairs[:, 0].to(device), pairs[:, 1].to(device)],
            (size, size),
            cfg.cam_threshold,
            cfg.box_mode,
            margin,
        )
        for crops, members in crop_groups(
            images, pairs[:, 0], boxes, cfg.crop_size, cfg.crop_multiple
        ):
            crops = (crops - t_mean) / t_std
            for start in range(0, len(crops), cfg.inference_batch_size):
                part = crops[start : start + cfg.inference_batch_size]
                crop_scores.append(teacher.scores(part))
            crop_image.append(idx[pairs[members, 0].numpy()])
    if not crop_scores:
        n_classes = probs.shape[1]
        return np.zeros((len(paths), n_classes)), np.zeros(len(paths), bool), 0
    image_index = np.concatenate(crop_image)
    local, has_crop = aggregate_crop_scores(
        len(paths), image_index, np.concatenate(crop_scores), cfg.aggregation
    )
    return local, has_crop, len(image_index)


def _update_labels(
    student: CAMStudent,
    teacher: Any,
    paths: np.ndarray,
    labels: np.ndarray,
    bias: np.ndarray,
    cfg: TrainConfig,
    device: torch.device,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The CAM-guided local-view label update (method.md 1.9-1.11)."""
    probs = _candidate_probs(student, paths, cfg, device)
    tau = search_threshold(probs, cfg.candidate_bound, cfg.candidate_start)
    local, has_crop, n_crops = _local_scores(
        student, teacher, paths, probs, tau, cfg, device
    )
    new = blend_local_labels(
        labels,
        local,
        has_crop,
        bias if cfg.debias_local else None,
        cfg.label_floor,
        cfg.blend_ratio,
    )
    info = {
        "threshold": tau,
        "candidates_per_image": mean_candidates(probs, tau),
        "crops_per_image": n_crops / len(paths),
        "images_without_crop": int((~has_crop).sum()),
    }
    return new, info


def _optimizer(student: CAMStudent, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        [
            {"params": student.backbone.parameters(), "lr": cfg.learning_rate},
            {
                "params": student.head.parameters(),
                "lr": cfg.learning_rate * cfg.head_lr_multiplier,
            },
        ]
    )


def train_student(
    student: CAMStudent,
    paths: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    teacher_factory: Callable[[], Any] | None,
    cfg: TrainConfig,
    device: torch.device,
    generator: torch.Generator,
) -> TrainResult:
    """Train the student on soft pseudo-labels, updating them from local views.

    Parameters
    ----------
    student : CAMStudent
        The network, already on ``device``.
    paths : ndarray of shape (n_samples,)
        Usable training images.
    labels : ndarray of shape (n_samples, n_classes)
        Initial soft pseudo-labels.
    weights : ndarray of shape (n_samples,)
        Per-image loss weights.
    bias : ndarray of shape (n_classes,)
        Class bias for the local labels.
    teacher_factory : callable or None
        Returns the teacher when a label update first needs it.
    cfg : TrainConfig
        Settings.
    device : torch.device
        Where to train.
    generator : torch.Generator
        Seeded generator for shuffling.

    Returns
    -------
    TrainResult
    """
    result = TrainResult()
    result.label_stages["initial"] = labels.copy()
    optimizer = _optimizer(student, cfg)
    scaler = (
        torch.amp.GradScaler("cuda")
        if device.type == "cuda" and cfg.precision == "fp16"
        else None
    )
    weights_t = torch.as_tensor(weights, dtype=torch.float32)
    # the compiled wrapper shares the student's parameters; CAM passes, state
    # dicts and mode switches still go through the student itself
    step_model: Any = student
    if cfg.compile_kwargs is not None:
        step_model = torch.compile(student, **cfg.compile_kwargs)
    teacher = None
    maps: list[float] = []
    states: dict[int, dict[str, torch.Tensor]] = {}
    for epoch in range(cfg.max_epochs):
        start = time.perf_counter()
        record: dict[str, Any] = {"epoch": epoch}
        if epoch in cfg.update_epochs:
            if teacher is None and teacher_factory is not None:
                teacher = teacher_factory()
            labels, info = _update_labels(
                student, teacher, paths, labels, bias, cfg, device
            )
            record.update(info)
            result.label_stages[f"update_{epoch}"] = labels.copy()
        consistency = cfg.consistency_weight > 0 and epoch >= cfg.consistency_start
        bce, cons, scores = _train_epoch(
            student,
            step_model,
            optimizer,
            scaler,
            paths,
            torch.as_tensor(labels, dtype=torch.float32),
            weights_t,
            cfg,
            consistency,
            device,
            generator,
            f"epoch {epoch + 1}/{cfg.max_epochs}",
        )
        maps.append(train_map(scores, labels))
        record.update(
            bce_loss=bce,
            consistency_loss=cons,
            train_map=maps[-1],
            seconds=time.perf_counter() - start,
        )
        result.history.append(record)
        states[epoch] = {
            k: v.detach().cpu().clone() for k, v in student.state_dict().items()
        }
        # keep only the states the selection rule can still pick
        keep = {select_epoch(maps, cfg.selection), epoch}
        states = {e: s for e, s in states.items() if e in keep}
        # train mAP counts only pseudo-labels equal to 1; say why it is 0
        saturated = bool((labels >= 1.0).any())
        _report(record, cfg.verbose, "" if saturated else " (no pseudo-label is 1)")
    result.selected_epoch = select_epoch(maps, cfg.selection)
    result.state = copy.deepcopy(states[result.selected_epoch])
    result.labels = labels
    return result


def _report(record: dict[str, Any], verbose: int, map_note: str = "") -> None:
    line = (
        f"epoch {record['epoch'] + 1}: bce {record['bce_loss']:.4f}, "
        f"consistency {record['consistency_loss']:.4f}, "
        f"train mAP {record['train_map']:.1f}{map_note}"
    )
    if "threshold" in record:
        line += (
            f", label update: threshold {record['threshold']:.3f}, "
            f"{record['crops_per_image']:.2f} crops/image"
        )
    line += f" ({record['seconds']:.1f}s)"
    logger.info(line)
    if verbose >= 1:
        tqdm.write(line)
