"""Synthetic multi-label scenes of coloured shapes.

The scenes are the self-contained benchmark of the package: every image holds one
or more shapes (the labels) drawn in one of several colours (not the labels) on a
textured, cluttered background. A tiny CLIP-style teacher trained on single shapes
(``tools/train_shapes_teacher.py``) ships with the package, so the whole CCD
pipeline can run and be evaluated without downloading anything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from sklearn.utils import check_random_state

__all__ = ["SHAPE_CLASSES", "make_shape_scenes"]

# Outlines of each shape in unit coordinates (x right, y down), fitting in
# [-1, 1] x [-1, 1]. A shape is a list of (polygon, fill) pairs drawn in order on
# the alpha mask: fill=True paints the polygon, fill=False cuts it out (holes).


def _ngon(n: int, radius: float = 1.0, phase: float = 0.0, cx: float = 0.0):
    t = phase + 2.0 * np.pi * np.arange(n) / n
    return np.stack([cx + radius * np.cos(t), radius * np.sin(t)], axis=1)


def _star(points: int = 5, inner: float = 0.42) -> np.ndarray:
    t = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _plus(arm: float = 0.34) -> np.ndarray:
    a = arm
    return np.array(
        [
            [-a, -1],
            [a, -1],
            [a, -a],
            [1, -a],
            [1, a],
            [a, a],
            [a, 1],
            [-a, 1],
            [-a, a],
            [-1, a],
            [-1, -a],
            [-a, -a],
        ],
        dtype=float,
    )


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _heart() -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, 60, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / np.abs(pts).max()


def _semicircle() -> np.ndarray:
    t = np.linspace(np.pi, 2 * np.pi, 33)
    pts = np.stack([np.cos(t), np.sin(t) + 0.5], axis=1)
    return pts


_SHAPES: dict[str, list[tuple[np.ndarray, bool]]] = {
    "circle": [(_ngon(48), True)],
    "square": [(np.array([[-0.9, -0.9], [0.9, -0.9], [0.9, 0.9], [-0.9, 0.9]]), True)],
    "triangle": [(_ngon(3, 1.15, -np.pi / 2) + [0.0, 0.29], True)],
    "star": [(_star(), True)],
    "plus": [(_plus(), True)],
    "ring": [(_ngon(48), True), (_ngon(48, 0.55), False)],
    "diamond": [(np.array([[0, -1], [0.62, 0], [0, 1], [-0.62, 0]]), True)],
    "hexagon": [(_ngon(6, 1.0, 0.0), True)],
    "crescent": [(_ngon(48), True), (_ngon(48, 0.86, cx=0.5), False)],
    "heart": [(_heart(), True)],
    "arrow": [
        (
            np.array(
                [
                    [-1, -0.22],
                    [0.15, -0.22],
                    [0.15, -0.62],
                    [1, 0],
                    [0.15, 0.62],
                    [0.15, 0.22],
                    [-1, 0.22],
                ]
            ),
            True,
        )
    ],
    "hourglass": [
        (
            np.array(
                [[-0.8, -1], [0.8, -1], [0.14, 0], [0.8, 1], [-0.8, 1], [-0.14, 0]]
            ),
            True,
        )
    ],
    "semicircle": [(_semicircle(), True)],
    "trapezoid": [
        (np.array([[-1, 0.55], [1, 0.55], [0.45, -0.55], [-0.45, -0.55]]), True)
    ],
    "cross": [(_rotate(_plus(0.3) * 1.05, np.pi / 4), True)],
    "lightning": [
        (
            np.array(
                [
                    [0.05, -1],
                    [0.75, -1],
                    [0.25, -0.2],
                    [0.7, -0.2],
                    [-0.45, 1],
                    [-0.1, 0.1],
                    [-0.55, 0.1],
                ]
            ),
            True,
        )
    ],
}

#: Names of every shape ``make_shape_scenes`` can draw, in the default order.
SHAPE_CLASSES: tuple[str, ...] = tuple(_SHAPES)

#: Shapes drawn by default (the shipped teacher is trained on these).
DEFAULT_CLASSES: tuple[str, ...] = SHAPE_CLASSES

# Ten object colours; the colour never depends on the class.
_COLOURS = np.array(
    [
        [220, 40, 40],  # red
        [245, 140, 30],  # orange
        [240, 220, 50],  # yellow
        [50, 170, 60],  # green
        [40, 200, 210],  # cyan
        [40, 80, 220],  # blue
        [140, 60, 200],  # purple
        [240, 110, 180],  # pink
        [245, 245, 245],  # white
        [25, 25, 25],  # black
    ],
    dtype=np.float32,
)

_SUPERSAMPLE = 2
_MAX_ROTATION = np.deg2rad(15.0)
_FORMATS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg"}


# ---------------------------------------------------------------------------
# Drawing primitives shared by the scenes and the teacher's training images
# ---------------------------------------------------------------------------


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured noise background with clutter lines and dots, float32 (H, W, 3)."""
    base = rng.uniform(70, 190, size=3)
    grid = int(rng.integers(3, 7))
    low = rng.normal(0.0, 1.0, size=(grid, grid, 3)).astype(np.float32)
    low_img = [
        np.asarray(
            Image.fromarray(low[..., c], mode="F").resize(
                (size, size), Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    amp = rng.uniform(12, 30)
    img = base + amp * np.stack(low_img, axis=-1)
    img += rng.normal(0.0, rng.uniform(3, 9), size=(size, size, 1))
    img += rng.normal(0.0, 3.0, size=(size, size, 3))
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    scale = size / 128.0
    for _ in range(int(rng.integers(2, 7))):
        x0, y0, x1, y1 = rng.uniform(0, size, size=4)
        col = tuple(int(v) for v in rng.integers(0, 256, size=3))
        draw.line([(x0, y0), (x1, y1)], fill=col, width=int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(4, 14))):
        x, y = rng.uniform(0, size, size=2)
        r = rng.uniform(0.8, 2.5) * scale
        col = tuple(int(v) for v in rng.integers(0, 256, size=3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=col)
    return np.asarray(pil, dtype=np.float32).copy()


def _object_points(
    name: str, half_size: float, angle: float
) -> list[tuple[np.ndarray, bool]]:
    """Polygons of a shape rotated and scaled to pixels, centred on the origin."""
    return [(_rotate(p, angle) * half_size, fill) for p, fill in _SHAPES[name]]


def _extent(polys: list[tuple[np.ndarray, bool]]) -> tuple[float, float, float, float]:
    pts = np.concatenate([p for p, fill in polys if fill])
    lo, hi = pts.min(0), pts.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _draw_object(
    canvas: np.ndarray,
    polys: list[tuple[np.ndarray, bool]],
    cx: float,
    cy: float,
    rng: np.random.Generator,
) -> tuple[int, int, int, int] | None:
    """Alpha-composite one shaded shape onto ``canvas`` in place.

    Returns the tight pixel box ``(x0, y0, x1, y1)`` (``x1``/``y1`` exclusive) of
    the drawn object, or None when nothing of it lies inside the canvas.
    """
    h, w = canvas.shape[:2]
    ex0, ey0, ex1, ey1 = _extent(polys)
    px0 = max(int(math.floor(cx + ex0)) - 2, 0)
    py0 = max(int(math.floor(cy + ey0)) - 2, 0)
    px1 = min(int(math.ceil(cx + ex1)) + 3, w)
    py1 = min(int(math.ceil(cy + ey1)) + 3, h)
    if px1 <= px0 or py1 <= py0:
        return None
    pw, ph = px1 - px0, py1 - py0
    ss = _SUPERSAMPLE
    mask_img = Image.new("L", (pw * ss, ph * ss), 0)
    draw = ImageDraw.Draw(mask_img)
    for pts, fill in polys:
        xy = (pts + [cx - px0, cy - py0]) * ss
        draw.polygon([tuple(p) for p in xy], fill=255 if fill else 0)
    mask_img = mask_img.resize((pw, ph), Image.Resampling.BOX)
    outline = rng.random() < 0.5
    mask = np.asarray(mask_img, dtype=np.float32) / 255.0
    if outline:
        inner = (
            np.asarray(mask_img.filter(ImageFilter.MinFilter(3)), dtype=np.float32)
            / 255.0
        )
        edge = np.clip(mask - inner, 0.0, 1.0)
    # Colour: pick one that stands out from the local background.
    local_mean = canvas[py0:py1, px0:px1].reshape(-1, 3).mean(0)
    dist = np.linalg.norm(_COLOURS - local_mean, axis=1)
    choices = np.flatnonzero(dist > 90)
    if choices.size == 0:
        choices = np.arange(len(_COLOURS))
    colour = _COLOURS[rng.choice(choices)] + rng.uniform(-18, 18, size=3)
    # Shading: a linear gradient across the object in a random direction.
    theta = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.15, 0.4)
    radius = max(ex1 - ex0, ey1 - ey0) / 2 + 1e-6
    yy, xx = np.mgrid[py0:py1, px0:px1].astype(np.float32)
    grad = ((xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)) / radius
    shade = 1.0 + strength * np.clip(grad, -1.0, 1.0)
    fill = np.clip(colour[None, None, :] * shade[..., None], 0, 255)
    if outline:
        line_col = colour * 0.35 if colour.mean() > 80 else np.full(3, 230.0)
        e = edge[..., None]
        fill = fill * (1 - e) + line_col * e
    a = mask[..., None]
    region = canvas[py0:py1, px0:px1]
    region *= 1 - a
    region += a * fill
    ys, xs = np.nonzero(mask > 0.3)
    if ys.size == 0:
        return None
    return (
        px0 + int(xs.min()),
        py0 + int(ys.min()),
        px0 + int(xs.max()) + 1,
        py0 + int(ys.max()) + 1,
    )


def _render_single_objects(
    n: int,
    *,
    seed: int,
    classes: Sequence[str] = DEFAULT_CLASSES,
    object_size: tuple[float, float] = (0.15, 0.5),
    image_size: int = 128,
    out_size: int | None = 64,
    class_weights: np.ndarray | None = None,
    crop_proba: float = 0.0,
    crop_margin: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` single-object images in memory (teacher training data).

    The backgrounds and objects are drawn exactly as in ``make_shape_scenes``;
    one object of half-size ``object_size`` (relative to ``image_size``) sits at
    a random position inside the canvas (centred if it does not fit). The canvas
    is then resized to ``out_size`` by a bilinear squash, as the estimator does.
    With probability ``crop_proba`` the canvas is first cut to a box around the
    object (an independent margin per side), imitating the estimator's local
    views, whose squash to a square distorts the aspect ratio.

    Parameters
    ----------
    n : int
        Number of images.
    seed : int
        Seed of the generator; the same seed gives the same images.
    classes : sequence of str
        Shape names to draw from.
    object_size : tuple of float
        Range of the object's half-size as a fraction of ``image_size``.
    image_size : int
        Side of the canvas the object is drawn on.
    out_size : int or None
        Side of the returned images; None keeps ``image_size``.
    class_weights : ndarray of shape (n_classes,), optional
        Sampling probabilities of the classes; uniform when None.
    crop_proba : float
        Probability of cutting the canvas to a box around the object.
    crop_margin : float
        Largest margin per side of such a box, as a fraction of ``image_size``.

    Returns
    -------
    images : ndarray of shape (n, out_size, out_size, 3), dtype uint8
        The images.
    labels : ndarray of shape (n,), dtype int64
        Index into ``classes`` of each image's shape.
    """
    rng = np.random.default_rng(seed)
    names = list(classes)
    side = image_size if out_size is None else out_size
    images = np.empty((n, side, side, 3), dtype=np.uint8)
    labels = rng.choice(len(names), size=n, p=class_weights)
    for i in range(n):
        canvas = _background(rng, image_size)
        half = rng.uniform(*object_size) * image_size
        polys = _object_points(
            names[labels[i]], half, rng.uniform(-_MAX_ROTATION, _MAX_ROTATION)
        )
        ex0, ey0, ex1, ey1 = _extent(polys)
        lo_x, hi_x = -ex0, image_size - ex1
        lo_y, hi_y = -ey0, image_size - ey1
        cx = rng.uniform(lo_x, hi_x) if hi_x > lo_x else image_size / 2
        cy = rng.uniform(lo_y, hi_y) if hi_y > lo_y else image_size / 2
        box = _draw_object(canvas, polys, cx, cy, rng)
        img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
        if box is not None and crop_proba > 0 and rng.random() < crop_proba:
            m = rng.uniform(0, crop_margin * image_size, size=4)
            img = img.crop(
                (
                    max(0, round(box[0] - m[0])),
                    max(0, round(box[1] - m[1])),
                    min(image_size, round(box[2] + m[2])),
                    min(image_size, round(box[3] + m[3])),
                )
            )
        if img.size != (side, side):
            img = img.resize((side, side), Image.Resampling.BILINEAR)
        images[i] = np.asarray(img)
    return images, labels.astype(np.int64)


# ---------------------------------------------------------------------------
# Public generator
# ---------------------------------------------------------------------------


def _check_pair(name: str, value, low: float, high: float) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair (min, max) of floats, got {value!r}."
        ) from None
    if not (low < lo <= hi <= high):
        raise ValueError(
            f"{name} must satisfy {low} < min <= max <= {high}, got {value!r}."
        )
    return lo, hi


def _check_classes(classes: Sequence[str] | None) -> list[str]:
    if classes is None:
        return list(DEFAULT_CLASSES)
    if isinstance(classes, str):
        raise ValueError(
            f"classes must be a sequence of shape names, not the string {classes!r}."
        )
    names = list(classes)
    if not names:
        raise ValueError("classes must name at least one shape.")
    unknown = [c for c in names if c not in _SHAPES]
    if unknown:
        raise ValueError(
            f"classes contains unknown shape names {unknown}; available shapes: "
            f"{list(SHAPE_CLASSES)}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"classes contains duplicate names: {names}.")
    return names


def _check_n_objects(
    n_objects: Sequence[int], n_objects_proba: Sequence[float] | None, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(n_objects)
    if (
        counts.ndim != 1
        or counts.size == 0
        or not np.issubdtype(counts.dtype, np.integer)
        or (counts < 1).any()
    ):
        raise ValueError(
            f"n_objects must be a non-empty sequence of positive integers, "
            f"got {n_objects!r}."
        )
    if counts.max() > n_classes:
        raise ValueError(
            f"n_objects allows {counts.max()} objects per scene but only "
            f"{n_classes} classes are drawn (each object of a scene has its own "
            f"class); lower n_objects or add classes."
        )
    if n_objects_proba is None:
        proba = np.full(counts.size, 1.0 / counts.size)
    else:
        proba = np.asarray(n_objects_proba, dtype=float)
        if proba.shape != counts.shape:
            raise ValueError(
                f"n_objects_proba must have one entry per n_objects value "
                f"({counts.size}), got {n_objects_proba!r}."
            )
        if (proba < 0).any() or not np.isclose(proba.sum(), 1.0, atol=1e-6):
            raise ValueError(
                f"n_objects_proba must be non-negative and sum to 1, "
                f"got {n_objects_proba!r}."
            )
        proba = proba / proba.sum()
    return counts, proba


def _co_occurrence_groups(n_classes: int) -> np.ndarray:
    """Group index of each class: class k belongs to group k % n_groups."""
    n_groups = max(1, int(round(n_classes / 4)))
    return np.arange(n_classes) % n_groups


def _sample_scene_classes(
    rng: np.random.Generator,
    k: int,
    prior: np.ndarray,
    groups: np.ndarray,
    co_occurrence: float,
) -> list[int]:
    chosen = [int(rng.choice(prior.size, p=prior))]
    for _ in range(k - 1):
        free = np.ones(prior.size, dtype=bool)
        free[chosen] = False
        if rng.random() < co_occurrence:
            in_group = free & (groups == groups[chosen[0]])
            if in_group.any():
                free = in_group
        p = np.where(free, prior, 0.0)
        chosen.append(int(rng.choice(prior.size, p=p / p.sum())))
    return chosen


def _place_objects(
    rng: np.random.Generator,
    class_ids: list[int],
    names: list[str],
    object_size: tuple[float, float],
    image_size: int,
    allow_overlap: bool,
) -> list[tuple[int, list[tuple[np.ndarray, bool]], float, float]]:
    """Sample size, rotation and position of each object of a scene."""
    gap = 2.0
    shrink = 1.0
    for _ in range(30):
        placed: list[tuple[int, list, float, float]] = []
        boxes: list[tuple[float, float, float, float]] = []
        ok = True
        for cid in class_ids:
            half = rng.uniform(*object_size) * image_size * shrink
            polys = _object_points(
                names[cid], half, rng.uniform(-_MAX_ROTATION, _MAX_ROTATION)
            )
            ex0, ey0, ex1, ey1 = _extent(polys)
            for _ in range(40):
                cx = rng.uniform(-ex0, max(image_size - ex1, -ex0 + 1e-3))
                cy = rng.uniform(-ey0, max(image_size - ey1, -ey0 + 1e-3))
                box = (cx + ex0, cy + ey0, cx + ex1, cy + ey1)
                if allow_overlap or all(
                    box[0] > b[2] + gap
                    or b[0] > box[2] + gap
                    or box[1] > b[3] + gap
                    or b[1] > box[3] + gap
                    for b in boxes
                ):
                    break
            else:
                ok = False
                break
            placed.append((cid, polys, cx, cy))
            boxes.append(box)
        if ok:
            return placed
        shrink *= 0.93
    return placed  # pragma: no cover - only reached for absurd settings


def _render_scene(
    seed: int,
    counts: np.ndarray,
    count_proba: np.ndarray,
    prior: np.ndarray,
    groups: np.ndarray,
    names: list[str],
    object_size: tuple[float, float],
    image_size: int,
    co_occurrence: float,
    allow_overlap: bool,
) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    rng = np.random.default_rng(seed)
    k = int(rng.choice(counts, p=count_proba))
    class_ids = _sample_scene_classes(rng, k, prior, groups, co_occurrence)
    canvas = _background(rng, image_size)
    boxes = []
    for cid, polys, cx, cy in _place_objects(
        rng, class_ids, names, object_size, image_size, allow_overlap
    ):
        box = _draw_object(canvas, polys, cx, cy, rng)
        if box is not None:
            boxes.append((cid, *box))
    return np.clip(canvas, 0, 255).astype(np.uint8), boxes


def make_shape_scenes(
    n_images: int,
    *,
    out_dir: str | os.PathLike,
    random_state: int | np.random.RandomState | None = None,
    classes: Sequence[str] | None = None,
    n_objects: Sequence[int] = (1, 2, 3),
    n_objects_proba: Sequence[float] | None = (0.30, 0.40, 0.30),
    object_size: tuple[float, float] = (0.10, 0.24),
    image_size: int = 128,
    class_imbalance: float = 0.5,
    co_occurrence: float = 0.3,
    allow_overlap: bool = False,
    image_format: str = "png",
    return_boxes: bool = False,
):
    """Generate multi-label image files of coloured shapes on cluttered backgrounds.

    Each scene shows one or more shapes of distinct classes (``circle``,
    ``star``, ``ring``, ...). Every object has one of ten colours, which is
    independent of its class, a linear shading, a small rotation (up to 15
    degrees) and, half of the time, an outline. Backgrounds are low-frequency
    colour noise plus pixel noise with a few clutter lines and dots. The images
    are written to ``out_dir`` as ``scene_00000.png``, ``scene_00001.png``, ...

    Read more about the benchmark in the package documentation; the shipped
    teacher (``ccd_estimator.datasets.shapes_teacher_files``) is a tiny
    CLIP model trained on single shapes of the default classes.

    Parameters
    ----------
    n_images : int
        Number of scenes to generate.
    out_dir : str or path-like
        Folder the image files are written to; created if missing. Existing
        files with the same names are overwritten.
    random_state : int, RandomState instance or None, default=None
        Determines all random choices. Pass an int for reproducible output
        (identical labels and identical file bytes across calls).
    classes : sequence of str, default=None
        Shape names to draw, a subset of ``SHAPE_CLASSES``; the columns of
        ``Y`` follow this order. None means all of ``SHAPE_CLASSES``.
    n_objects : sequence of int, default=(1, 2, 3)
        Possible numbers of objects in a scene. Objects of one scene have
        distinct classes, so the largest value may not exceed the number of
        classes.
    n_objects_proba : sequence of float or None, default=(0.30, 0.40, 0.30)
        Probability of each entry of ``n_objects``; None means uniform.
    object_size : tuple of float, default=(0.10, 0.24)
        Range ``(min, max)`` of an object's half-size as a fraction of
        ``image_size``, sampled uniformly. Without overlap, objects of a scene
        that do not fit are shrunk until they do.
    image_size : int, default=128
        Side length in pixels of the square images.
    class_imbalance : float, default=0.5
        Zipf-like exponent of the class prior: the k-th class (0-based, in the
        order of ``classes``) is drawn with weight ``(k + 1) ** -class_imbalance``.
        0 gives uniform classes.
    co_occurrence : float, default=0.3
        Probability that each extra object of a scene is drawn from the
        co-occurrence group of the scene's first object instead of from the
        prior. Class ``k`` belongs to group ``k % round(n_classes / 4)``.
    allow_overlap : bool, default=False
        If False, the bounding boxes of a scene's objects do not overlap.
    image_format : {"png", "jpeg", "jpg"}, default="png"
        File format of the written images (JPEG files get a ``.jpg`` suffix and
        quality 95).
    return_boxes : bool, default=False
        If True, also return the pixel bounding box of every object.

    Returns
    -------
    paths : list of str
        Absolute paths of the written images, in scene order.
    Y : ndarray of shape (n_images, n_classes), dtype int64
        Multi-label indicator matrix: ``Y[i, k] = 1`` if scene ``i`` shows an
        object of class ``class_names[k]``.
    class_names : list of str
        Names of the label columns.
    boxes : list of list of tuple
        Only if ``return_boxes=True``. For each scene, one tuple
        ``(class_index, x0, y0, x1, y1)`` per object: the tight pixel box with
        exclusive ``x1``/``y1`` (usable as ``PIL.Image.crop((x0, y0, x1, y1))``).

    Examples
    --------
    >>> import tempfile
    >>> from ccd_estimator.datasets import make_shape_scenes
    >>> paths, Y, names = make_shape_scenes(
    ...     4, out_dir=tempfile.mkdtemp(), random_state=0
    ... )
    >>> len(paths), Y.shape == (4, len(names))
    (4, True)
    >>> bool(Y.sum(axis=1).min() >= 1)
    True
    """
    if (
        isinstance(n_images, bool)
        or not isinstance(n_images, int | np.integer)
        or n_images < 1
    ):
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}.")
    names = _check_classes(classes)
    counts, count_proba = _check_n_objects(n_objects, n_objects_proba, len(names))
    size_range = _check_pair("object_size", object_size, 0.0, 0.5)
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, int | np.integer)
        or image_size < 16
    ):
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}.")
    if not np.isfinite(class_imbalance) or class_imbalance < 0:
        raise ValueError(
            f"class_imbalance must be a finite float >= 0, got {class_imbalance!r}."
        )
    if not 0.0 <= co_occurrence <= 1.0:
        raise ValueError(f"co_occurrence must be in [0, 1], got {co_occurrence!r}.")
    fmt = str(image_format).lower()
    if fmt not in _FORMATS:
        raise ValueError(
            f"image_format must be one of {sorted(_FORMATS)}, got {image_format!r}."
        )
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)

    rs = check_random_state(random_state)
    seeds = rs.randint(0, 2**31 - 1, size=n_images)
    prior = np.arange(1, len(names) + 1, dtype=float) ** -float(class_imbalance)
    prior /= prior.sum()
    groups = _co_occurrence_groups(len(names))

    paths: list[str] = []
    Y = np.zeros((n_images, len(names)), dtype=np.int64)
    all_boxes: list[list[tuple[int, int, int, int, int]]] = []
    for i, seed in enumerate(seeds):
        img, boxes = _render_scene(
            int(seed),
            counts,
            count_proba,
            prior,
            groups,
            names,
            size_range,
            int(image_size),
            float(co_occurrence),
            bool(allow_overlap),
        )
        path = out / f"scene_{i:05d}{_FORMATS[fmt]}"
        pil = Image.fromarray(img)
        if fmt == "png":
            pil.save(path, format="PNG", compress_level=1)
        else:
            pil.save(path, format="JPEG", quality=95)
        paths.append(str(path))
        for cid, *_ in boxes:
            Y[i, cid] = 1
        all_boxes.append(boxes)
    if return_boxes:
        return paths, Y, names, all_boxes
    return paths, Y, names
