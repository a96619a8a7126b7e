"""Image transforms and DataLoader wiring shared by the fit and predict passes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from ccd_estimator._images import ImageDataset

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "resize_to_tensor",
    "normalized_view",
    "TrainViews",
    "make_loader",
    "batch_lists",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_to_tensor(size: int) -> v2.Compose:
    """Squash to ``size x size`` (as the released code does) as float in [0, 1]."""
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize((size, size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def normalized_view(
    size: int, mean: Sequence[float], std: Sequence[float]
) -> v2.Compose:
    """Squash to ``size x size`` and normalise with ``mean`` and ``std``."""
    return v2.Compose(
        [resize_to_tensor(size), v2.Normalize(mean=list(mean), std=list(std))]
    )


class TrainViews:
    """Training views of one image: a flipped clean view and, optionally, a
    colour-jittered view with its own independent flip (the consistency view).

    Parameters
    ----------
    size : int
        Side of the square student input.
    jitter : bool
        Whether to also return the colour-jittered view.
    """

    def __init__(self, size: int, jitter: bool) -> None:
        self.jitter = jitter
        self.base = resize_to_tensor(size)
        self.flip = v2.RandomHorizontalFlip(p=0.5)
        self.color = v2.ColorJitter(
            brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5
        )
        self.norm = v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))

    def __call__(self, image: Image.Image) -> Any:
        base = self.base(image)
        clean = self.norm(self.flip(base))
        if not self.jitter:
            return clean
        return clean, self.norm(self.flip(self.color(base)))


def batch_lists(n: int, batch_size: int, order: np.ndarray | None = None) -> list:
    """Index batches where a trailing batch of one joins the previous batch.

    A batch of one sample breaks BatchNorm in training mode for some inputs;
    merging it keeps every sample without ever producing such a batch when
    ``n > 1``.
    """
    order = np.arange(n) if order is None else order
    batches = [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    return batches


def make_loader(
    paths: np.ndarray,
    transform: Any,
    batch_size: int,
    n_workers: int,
    device: torch.device,
    order: np.ndarray | None = None,
) -> DataLoader:
    """A DataLoader over ``paths`` yielding dicts of index, image, ok, error."""
    return DataLoader(
        ImageDataset(paths, transform),
        batch_sampler=batch_lists(len(paths), batch_size, order),
        num_workers=n_workers,
        pin_memory=device.type == "cuda",
    )
