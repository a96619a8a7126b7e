"""Image transforms and DataLoader wiring shared by the fit and predict passes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ccd_estimator._images import ImageDataset

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SquashView",
    "resize_to_tensor",
    "normalized_view",
    "TrainViews",
    "make_loader",
    "batch_lists",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SquashView:
    """Squash a PIL image to ``size x size`` (as the released code does) as a
    float tensor, in [0, 1] or normalised with ``mean`` and ``std``.

    One object applying torchvision's functional kernels (``pil_to_tensor``, an
    antialiased ``resize`` on the uint8 tensor, then one fused scale and shift)
    rather than a ``v2.Compose``: with a small teacher on a CPU the composed
    pipeline's per-image dispatch was a measurable share of the global pass
    (``benchmarks/bench_stages.py``). The values match the composed pipeline to
    float32 rounding.

    Parameters
    ----------
    size : int
        Side of the square output.
    mean, std : sequence of 3 floats or None
        Per-channel normalisation; ``None`` keeps values in [0, 1].
    """

    def __init__(
        self,
        size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.size = [int(size), int(size)]
        m = torch.zeros(3) if mean is None else torch.tensor(mean, dtype=torch.float32)
        s = torch.ones(3) if std is None else torch.tensor(std, dtype=torch.float32)
        self.scale = (1.0 / (255.0 * s))[:, None, None]
        self.shift = (-m / s)[:, None, None]

    def __call__(self, image: Image.Image) -> torch.Tensor:
        x = TF.resize(TF.pil_to_tensor(image), self.size, antialias=True)
        return x.to(torch.float32).mul_(self.scale).add_(self.shift)


def resize_to_tensor(size: int) -> SquashView:
    """Squash to ``size x size`` (as the released code does) as float in [0, 1]."""
    return SquashView(size)


def normalized_view(
    size: int, mean: Sequence[float], std: Sequence[float]
) -> SquashView:
    """Squash to ``size x size`` and normalise with ``mean`` and ``std``."""
    return SquashView(size, mean, std)


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
