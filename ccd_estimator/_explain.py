"""Visual explanations: per-class CAMs, the crops the student would choose, and
the teacher's scores on them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ccd_estimator._data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    normalized_view,
    resize_to_tensor,
)
from ccd_estimator._images import check_paths, load_rgb
from ccd_estimator._views import cams_to_boxes, crop_groups

if TYPE_CHECKING:
    from ccd_estimator._estimator import CCDClassifier

__all__ = ["Explanation", "explain"]


@dataclass
class Explanation:
    """What the fitted student sees in one image.

    Attributes
    ----------
    path : str
        The image file.
    image : ndarray of shape (size, size, 3), dtype uint8
        The image at ``cam_image_size``, the frame of ``cams`` and ``boxes``.
    probabilities : ndarray of shape (n_classes,)
        Student probabilities at its input size, as ``predict_proba`` gives.
    cams : ndarray of shape (n_classes, h, w)
        Alpha-scaled class activation maps.
    boxes : dict of int to tuple
        For each candidate class index, its crop box ``(x0, y0, x1, y1)`` in
        ``image`` pixels (exclusive ends).
    global_scores : ndarray of shape (n_classes,) or None
        Teacher softmax on the whole image (None without a teacher).
    crop_scores : dict of int to ndarray
        Teacher softmax of the crop of each candidate class.
    cam_probabilities : ndarray of shape (n_classes,) or None
        Student probabilities on the ``cam_image_size`` view, the ones the
        label update compares with its threshold to pick candidate classes.
    """

    path: str
    image: np.ndarray
    probabilities: np.ndarray
    cams: np.ndarray
    boxes: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    global_scores: np.ndarray | None = None
    crop_scores: dict[int, np.ndarray] = field(default_factory=dict)
    cam_probabilities: np.ndarray | None = None


def _default_threshold(est: CCDClassifier) -> float:
    for record in reversed(getattr(est, "history_", [])):
        if "threshold" in record:
            return float(record["threshold"])
    return float(est.threshold)


@torch.inference_mode()
def explain(
    est: CCDClassifier,
    X: Sequence[str | os.PathLike],
    *,
    threshold: float | None = None,
    with_teacher: bool = True,
) -> list[Explanation]:
    """Explain the fitted student on a few images; see
    ``CCDClassifier.explain``."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "student_")
    paths = check_paths(X)
    tau = _default_threshold(est) if threshold is None else float(threshold)
    size = int(est.cam_image_size)
    device = est._runtime_device()
    student = est.student_.eval()
    teacher = _load_teacher(est, device) if with_teacher else None
    to_tensor = resize_to_tensor(size)
    # the student's own input view: the probabilities predict_proba reports
    student_view = normalized_view(int(est.image_size), IMAGENET_MEAN, IMAGENET_STD)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    out = []
    for path in paths:
        rgb = load_rgb(path)
        proba = torch.sigmoid(student(student_view(rgb)[None].to(device)).float())
        image = to_tensor(rgb)  # (3, size, size) in [0, 1]
        x = ((image - mean) / std)[None].to(device)
        cams = student.cams(x).float()[0]
        probs = torch.sigmoid(cams.mean(dim=(1, 2))).cpu().numpy()
        classes = np.flatnonzero(probs >= tau)
        if len(classes) == 0:
            classes = np.array([int(probs.argmax())])
        boxes = cams_to_boxes(
            cams[torch.as_tensor(classes, device=device)],
            (size, size),
            float(est.cam_threshold),
            str(est.box_mode),
            int(round(float(est.crop_margin) * size)),
        )
        item = Explanation(
            path=str(path),
            image=(image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
            probabilities=proba[0].cpu().numpy().astype(np.float64),
            cams=cams.cpu().numpy(),
            cam_probabilities=probs,
            boxes={
                int(c): tuple(b) for c, b in zip(classes, boxes.tolist(), strict=True)
            },
        )
        if teacher is not None:
            _score_with_teacher(est, teacher, image, classes, boxes, item)
        out.append(item)
    return out


def _load_teacher(est: CCDClassifier, device: torch.device) -> Any:
    from ccd_estimator._teacher import resolve_precision

    precision = resolve_precision(str(est.precision), device)
    return est._build_teacher(est.class_names_, device, precision)


def _score_with_teacher(
    est: CCDClassifier,
    teacher: Any,
    image: torch.Tensor,
    classes: np.ndarray,
    boxes: torch.Tensor,
    item: Explanation,
) -> None:
    mean = torch.tensor(teacher.mean)[None, :, None, None]
    std = torch.tensor(teacher.std)[None, :, None, None]
    size = teacher.check_image_size(est.teacher_image_size, "teacher_image_size")
    whole = torch.nn.functional.interpolate(
        image[None], size=(size, size), mode="bilinear", antialias=True
    )
    item.global_scores = teacher.scores((whole - mean) / std)[0]
    crop_size = teacher.check_image_size(est.crop_size, "crop_size")
    multiple = 32 if teacher.is_resnet else None
    groups = crop_groups(
        image[None],
        torch.zeros(len(classes), dtype=torch.long),
        boxes,
        crop_size,
        multiple,
    )
    for crops, members in groups:
        scores = teacher.scores((crops - mean) / std)
        for j, s in zip(members.tolist(), scores, strict=True):
            item.crop_scores[int(classes[j])] = s
