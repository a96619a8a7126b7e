"""Local views: candidate classes, CAM-to-box, crops, and aggregation of crop scores.

See method.md sections 1.9-1.11. Box geometry works on a batch of CAMs at once.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "mean_candidates",
    "search_threshold",
    "cams_to_boxes",
    "crop_groups",
    "aggregate_crop_scores",
]


def mean_candidates(probs: np.ndarray, tau: float) -> float:
    """Mean number of classes per image with probability at least ``tau``."""
    return float((np.asarray(probs) >= tau).sum(axis=1).mean())


def search_threshold(
    probs: np.ndarray,
    bound: float,
    start: float,
    max_steps: int = 60,
) -> float:
    """Choose the candidate threshold so that ``bound < mean count < bound + 2``.

    The mean number of candidate classes per image falls as the threshold rises,
    so a bisection on ``[start, 1]`` finds a threshold in the target band in at
    most ``max_steps`` steps; it always terminates. When the band cannot be
    reached from ``start`` (fewer than ``bound`` classes pass even there) the
    lowest threshold, ``start``, is returned; when the count jumps over the band
    the smallest threshold found below ``bound + 2`` is returned. The released
    code instead raised the threshold by 0.001 per window of 100 shuffled,
    augmented training images and could run out of data before stopping.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Student sigmoid probabilities on the images the crops are cut from.
    bound : float
        Lower end of the target band of candidates per image.
    start : float
        Lowest allowed threshold.
    max_steps : int, default=60
        Bisection steps at most.

    Returns
    -------
    float
        The threshold.
    """
    if mean_candidates(probs, start) < bound + 2:
        return float(start)
    lo, hi = float(start), 1.0 + 1e-6  # count(lo) >= bound + 2, count(hi) == 0
    for _ in range(max_steps):
        mid = 0.5 * (lo + hi)
        count = mean_candidates(probs, mid)
        if bound < count < bound + 2:
            return mid
        if count >= bound + 2:
            lo = mid
        else:
            hi = mid
    return hi


def _first_true(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first True along the last axis (mask must have one)."""
    idx = torch.arange(mask.shape[-1], device=mask.device)
    big = torch.full_like(idx, mask.shape[-1])
    return torch.where(mask, idx, big).min(dim=-1).values


def _last_true(mask: torch.Tensor) -> torch.Tensor:
    idx = torch.arange(mask.shape[-1], device=mask.device)
    return torch.where(mask, idx, torch.full_like(idx, -1)).max(dim=-1).values


def cams_to_boxes(
    cams: torch.Tensor,
    size: tuple[int, int],
    threshold: float,
    mode: str,
    margin: int,
) -> torch.Tensor:
    """Boxes around the hot region of each class activation map.

    Each map is upsampled bilinearly to ``size``, min-max normalised, and
    thresholded. ``mode="reference"`` reproduces the released code: the box
    spans the first and the last hot pixel in raster order, which collapses the
    horizontal extent to a few pixels near the peak column. ``mode="tight"``
    takes the bounding box of every hot pixel. The box then grows by ``margin``
    pixels on each side and is clipped to the image. A flat map (no pixel above
    the threshold, for instance a constant map) gives the whole image, where
    the released code raised an IndexError.

    Parameters
    ----------
    cams : Tensor of shape (k, h, w)
        One activation map per (image, candidate class) pair.
    size : (int, int)
        Height and width of the image the boxes refer to.
    threshold : float
        Threshold on the normalised map, in (0, 1).
    mode : {"reference", "tight"}
        Box rule.
    margin : int
        Pixels added on each side.

    Returns
    -------
    Tensor of shape (k, 4), dtype int64
        ``(x0, y0, x1, y1)`` with exclusive ends; every box has positive area.
    """
    height, width = size
    if cams.shape[0] == 0:
        return torch.zeros(0, 4, dtype=torch.long)
    maps = F.interpolate(
        cams[:, None].float(), size=size, mode="bilinear", align_corners=False
    )[:, 0]
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    flat = (flat - lo) / (hi - lo + 1e-5)
    hot = flat > threshold  # (k, H*W)
    found = hot.any(dim=1)
    hot = hot | ~found[:, None]  # a flat map: the whole image
    if mode == "reference":
        first, last = _first_true(hot), _last_true(hot)
        ys = torch.stack([first // width, last // width], dim=1)
        xs = torch.stack([first % width, last % width], dim=1)
        y0, y1 = ys.min(dim=1).values, ys.max(dim=1).values
        x0, x1 = xs.min(dim=1).values, xs.max(dim=1).values
    elif mode == "tight":
        grid = hot.view(-1, height, width)
        rows, cols = grid.any(dim=2), grid.any(dim=1)
        y0, y1 = _first_true(rows), _last_true(rows)
        x0, x1 = _first_true(cols), _last_true(cols)
    else:
        raise ValueError(f"box mode must be 'reference' or 'tight', got {mode!r}.")
    x0 = (x0 - margin).clamp(0, width - 1)
    y0 = (y0 - margin).clamp(0, height - 1)
    x1 = (x1 + margin + 1).clamp(1, width)
    y1 = (y1 + margin + 1).clamp(1, height)
    x1 = torch.maximum(x1, x0 + 1)
    y1 = torch.maximum(y1, y0 + 1)
    return torch.stack([x0, y0, x1, y1], dim=1).cpu()


def _crop_shape(box_h: int, box_w: int, long_side: int, multiple: int | None):
    if multiple is None:
        return long_side, long_side
    scale = long_side / max(box_h, box_w)
    h = max(multiple, int(round(box_h * scale / multiple)) * multiple)
    w = max(multiple, int(round(box_w * scale / multiple)) * multiple)
    return min(h, long_side), min(w, long_side)


def crop_groups(
    images: torch.Tensor,
    image_index: torch.Tensor,
    boxes: torch.Tensor,
    long_side: int,
    multiple: int | None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut boxes out of images and resize them, grouped by output shape.

    With ``multiple=None`` every crop is resized to a ``long_side`` square. With
    an integer, the aspect ratio is kept: the long side becomes ``long_side``
    and the short side is rounded to a multiple of ``multiple`` (at least one
    multiple), so crops fall into a few shapes that batch well. The released
    code kept the exact aspect ratio and encoded one crop at a time.

    Parameters
    ----------
    images : Tensor of shape (n, 3, H, W)
        Images the boxes refer to.
    image_index : Tensor of shape (k,)
        Which image each box belongs to.
    boxes : Tensor of shape (k, 4)
        ``(x0, y0, x1, y1)`` boxes with exclusive ends.
    long_side : int
        Long side of a resized crop.
    multiple : int or None
        Rounding of the short side; None makes square crops.

    Returns
    -------
    list of (Tensor, Tensor)
        For each output shape, a batch ``(m, 3, h, w)`` of crops and the
        positions (into ``boxes``) of those crops.
    """
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for j, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        groups[_crop_shape(y1 - y0, x1 - x0, long_side, multiple)].append(j)
    out = []
    for shape, members in groups.items():
        crops = []
        for j in members:
            x0, y0, x1, y1 = boxes[j].tolist()
            crop = images[int(image_index[j]), :, y0:y1, x0:x1][None].float()
            crops.append(
                F.interpolate(crop, size=shape, mode="bilinear", align_corners=False)
            )
        out.append((torch.cat(crops), torch.as_tensor(members)))
    return out


def aggregate_crop_scores(
    n_samples: int,
    image_index: np.ndarray,
    scores: np.ndarray,
    how: str = "max",
) -> tuple[np.ndarray, np.ndarray]:
    """Combine the teacher's scores of each image's crops into one row.

    Parameters
    ----------
    n_samples : int
        Number of images.
    image_index : ndarray of shape (k,)
        Image of each crop.
    scores : ndarray of shape (k, n_classes)
        Teacher softmax scores of each crop (the whole class vector).
    how : {"max", "mean"}
        Element-wise max (the method) or mean over an image's crops.

    Returns
    -------
    local : ndarray of shape (n_samples, n_classes)
        Aggregated scores; zero rows for images without crops.
    has_crop : ndarray of shape (n_samples,), dtype bool
        Whether each image had at least one crop.
    """
    scores = np.asarray(scores, dtype=np.float64)
    image_index = np.asarray(image_index, dtype=np.int64)
    local = np.zeros((n_samples, scores.shape[1]))
    counts = np.bincount(image_index, minlength=n_samples)
    if how == "max":
        np.maximum.at(local, image_index, scores)
    elif how == "mean":
        np.add.at(local, image_index, scores)
        local /= np.maximum(counts, 1)[:, None]
    else:
        raise ValueError(f"aggregation must be 'max' or 'mean', got {how!r}.")
    return local, counts > 0
