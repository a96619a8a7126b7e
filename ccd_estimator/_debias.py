"""Soft pseudo-labels from teacher scores: entropy flags, class bias, debiasing.

Pure array functions (numpy), testable with hand-computed values. See
method.md sections 1.4-1.6 and 1.11.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "entropy",
    "entropy_flags",
    "class_bias",
    "debias_labels",
    "blend_local_labels",
]

_EPS_LOG = 1e-10


def entropy(probs: np.ndarray) -> np.ndarray:
    """Natural-log entropy of each row of a probability matrix.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Rows of a softmax over classes.

    Returns
    -------
    ndarray of shape (n_samples,)
        ``-sum_c p_c * ln(p_c + 1e-10)``, as in the released code.
    """
    probs = np.asarray(probs, dtype=np.float64)
    return -(probs * np.log(probs + _EPS_LOG)).sum(axis=1)


def entropy_flags(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Flag confident teacher predictions.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Teacher softmax scores.
    threshold : float
        Rows whose entropy is above ``threshold`` are uncertain.

    Returns
    -------
    ndarray of shape (n_samples,), dtype bool
        True where the entropy is at most ``threshold`` (confident).
    """
    return entropy(probs) <= threshold


def class_bias(probs: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Per-class bias: mean top-1 probability over confident images.

    For each class ``c``, the mean of ``max(p)`` over the confident images whose
    top-1 class is ``c``. A class that is never top-1 among them has no estimate
    of its own; it gets the mean of the classes that have one (1.0 when no class
    has one), so no NaN is ever produced (the released code divides by zero
    here).

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Teacher softmax scores.
    flags : ndarray of shape (n_samples,), dtype bool
        Confidence flags from ``entropy_flags``.

    Returns
    -------
    ndarray of shape (n_classes,), dtype float64
        Strictly positive bias per class.
    """
    probs = np.asarray(probs, dtype=np.float64)
    flags = np.asarray(flags, dtype=bool)
    n_classes = probs.shape[1]
    confident = probs[flags]
    top = confident.argmax(axis=1)
    sums = np.bincount(top, weights=confident.max(axis=1), minlength=n_classes)
    counts = np.bincount(top, minlength=n_classes)
    bias = np.full(n_classes, np.nan)
    seen = counts > 0
    bias[seen] = sums[seen] / counts[seen]
    bias[~seen] = bias[seen].mean() if seen.any() else 1.0
    return bias


def debias_labels(
    probs: np.ndarray,
    bias: np.ndarray | None,
    floor: float,
) -> np.ndarray:
    """Apply the label-smoothing floor, divide by the class bias, clamp to [0, 1].

    The order matters and follows the released code: the floor is applied
    first, so after the division each class has its own effective floor
    ``floor / bias_c``.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Teacher scores.
    bias : ndarray of shape (n_classes,) or None
        Class bias; None skips the division (no debiasing).
    floor : float
        Entries below ``floor`` are raised to it; 0 disables the floor.

    Returns
    -------
    ndarray of shape (n_samples, n_classes), dtype float32
        Soft pseudo-labels.
    """
    labels = np.maximum(np.asarray(probs, dtype=np.float64), floor)
    if bias is not None:
        labels = labels / np.asarray(bias, dtype=np.float64)[None, :]
    return np.clip(labels, 0.0, 1.0).astype(np.float32)


def blend_local_labels(
    old_labels: np.ndarray,
    local_scores: np.ndarray,
    has_crop: np.ndarray,
    bias: np.ndarray | None,
    floor: float,
    ratio: float,
) -> np.ndarray:
    """Blend aggregated local-view scores into the pseudo-labels.

    ``new = clamp(ratio * old + (1 - ratio) * max(local, floor) / bias, 0, 1)``
    for images that had at least one crop. Images with no candidate class keep
    their old label (the released code replaced it with ``floor / bias``, wiping
    every positive).

    Parameters
    ----------
    old_labels : ndarray of shape (n_samples, n_classes)
        Current pseudo-labels.
    local_scores : ndarray of shape (n_samples, n_classes)
        Aggregated (for instance max over crops) teacher scores of the local
        views of each image.
    has_crop : ndarray of shape (n_samples,), dtype bool
        Whether the image had at least one local view.
    bias : ndarray of shape (n_classes,) or None
        Class bias to divide by; None skips local debiasing.
    floor : float
        Label-smoothing floor applied to the local scores before debiasing.
    ratio : float
        Weight of the old label, in [0, 1].

    Returns
    -------
    ndarray of shape (n_samples, n_classes), dtype float32
        Updated pseudo-labels.
    """
    local = np.maximum(np.asarray(local_scores, dtype=np.float64), floor)
    if bias is not None:
        local = local / np.asarray(bias, dtype=np.float64)[None, :]
    old = np.asarray(old_labels, dtype=np.float64)
    blended = np.clip(ratio * old + (1.0 - ratio) * local, 0.0, 1.0)
    has_crop = np.asarray(has_crop, dtype=bool)
    return np.where(has_crop[:, None], blended, old).astype(np.float32)
