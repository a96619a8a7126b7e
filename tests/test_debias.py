"""Hand-checked values for entropy flags, class bias and the label arithmetic."""

import numpy as np
import pytest

from ccd_estimator._debias import (
    blend_local_labels,
    class_bias,
    debias_labels,
    entropy,
    entropy_flags,
)


def test_entropy_matches_hand_value():
    probs = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert entropy(probs) == pytest.approx([np.log(2), 0.0], abs=1e-8)


def test_entropy_flags_threshold_is_inclusive():
    uniform4 = np.full((1, 4), 0.25)  # entropy ln 4 = 1.386
    assert entropy_flags(uniform4, 1.5).tolist() == [True]
    assert entropy_flags(uniform4, 1.3).tolist() == [False]


def test_bias_is_mean_top1_probability_over_confident_images():
    probs = np.array(
        [
            [0.8, 0.1, 0.1],  # top-1 class 0
            [0.6, 0.3, 0.1],  # top-1 class 0
            [0.2, 0.7, 0.1],  # top-1 class 1
            [0.1, 0.2, 0.7],  # top-1 class 2 but flagged uncertain below
        ]
    )
    flags = np.array([True, True, True, False])
    bias = class_bias(probs, flags)
    # class 0: (0.8 + 0.6) / 2; class 1: 0.7; class 2 never wins among the
    # confident images, so it takes the mean of the others, never NaN.
    assert bias[0] == pytest.approx(0.7)
    assert bias[1] == pytest.approx(0.7)
    assert bias[2] == pytest.approx(0.7)
    assert np.isfinite(bias).all()


def test_bias_of_class_that_never_wins_is_mean_of_the_others():
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.5, 0.4]])
    bias = class_bias(probs, np.array([True, True]))
    assert bias.tolist() == pytest.approx([0.9, 0.5, 0.7])


def test_bias_without_any_confident_image_is_one():
    probs = np.full((3, 2), 0.5)
    assert class_bias(probs, np.zeros(3, bool)).tolist() == [1.0, 1.0]


def test_floor_then_divide_then_clamp_order():
    probs = np.array([[0.01, 0.3, 0.69]])
    bias = np.array([0.5, 0.25, 0.5])
    labels = debias_labels(probs, bias, floor=0.05)
    # floor first: 0.01 -> 0.05, then / 0.5 = 0.1 (dividing first would give 0.05)
    # 0.3 / 0.25 = 1.2 -> clamped to 1; 0.69 / 0.5 = 1.38 -> 1
    assert labels[0].tolist() == pytest.approx([0.1, 1.0, 1.0])


def test_no_debias_only_floors():
    labels = debias_labels(np.array([[0.01, 0.99]]), None, floor=0.05)
    assert labels[0].tolist() == pytest.approx([0.05, 0.99])


def test_blend_uses_ratio_floor_and_bias():
    old = np.array([[1.0, 0.1], [0.5, 0.5]])
    local = np.array([[0.2, 0.01], [0.9, 0.9]])
    has_crop = np.array([True, False])
    bias = np.array([0.5, 0.5])
    new = blend_local_labels(old, local, has_crop, bias, floor=0.05, ratio=0.2)
    # row 0: 0.2*1 + 0.8*(0.2/0.5) = 0.52; 0.2*0.1 + 0.8*(0.05/0.5) = 0.1
    assert new[0].tolist() == pytest.approx([0.52, 0.1])
    # row 1 had no crop: its label is kept, not wiped
    assert new[1].tolist() == pytest.approx([0.5, 0.5])
