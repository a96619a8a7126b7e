"""CAM-to-box geometry, the candidate threshold search and crop aggregation."""

import numpy as np
import pytest
import torch

from ccd_estimator._views import (
    aggregate_crop_scores,
    cams_to_boxes,
    crop_groups,
    mean_candidates,
    search_threshold,
)


def _blob_cam() -> torch.Tensor:
    # a 4x4 map with a hot 2x3 region (rows 1-2, cols 0-2) and peak at (2, 1)
    cam = torch.zeros(1, 4, 4)
    cam[0, 1, 0:3] = 1.0
    cam[0, 2, 0:3] = 1.0
    return cam


def test_tight_box_covers_the_whole_hot_region():
    box = cams_to_boxes(_blob_cam(), (4, 4), 0.5, "tight", margin=0)
    assert box.tolist() == [[0, 1, 3, 3]]


def test_reference_box_uses_first_and_last_hot_pixel_in_raster_order():
    # hot pixels (0, 3), (3, 0), (3, 1): first in raster order is (0, 3), last
    # is (3, 1), so the box spans x in [1, 3] and misses the hot pixel (3, 0)
    cam = torch.zeros(1, 4, 4)
    cam[0, 0, 3] = cam[0, 3, 0] = cam[0, 3, 1] = 1.0
    ref = cams_to_boxes(cam, (4, 4), 0.5, "reference", margin=0)
    tight = cams_to_boxes(cam, (4, 4), 0.5, "tight", margin=0)
    assert ref.tolist() == [[1, 0, 4, 4]]
    # a horizontal bar: first and last hot pixels bound it exactly
    bar = torch.zeros(1, 4, 4)
    bar[0, 2, 1:4] = 1.0
    assert cams_to_boxes(bar, (4, 4), 0.5, "reference", 0).tolist() == [[1, 2, 4, 3]]
    assert tight.tolist() == [[0, 0, 4, 4]]


def test_reference_box_collapses_horizontally_on_a_blob():
    # upsampled compact blob: the released box spans only near the peak column
    yy, xx = torch.meshgrid(torch.arange(20.0), torch.arange(20.0), indexing="ij")
    cam = torch.exp(-((yy - 10) ** 2 + (xx - 10) ** 2) / 18.0)[None]
    ref = cams_to_boxes(cam, (640, 640), 0.95, "reference", margin=0)[0]
    tight = cams_to_boxes(cam, (640, 640), 0.95, "tight", margin=0)[0]
    ref_w, tight_w = int(ref[2] - ref[0]), int(tight[2] - tight[0])
    assert ref_w < tight_w / 5
    assert int(ref[3] - ref[1]) == int(tight[3] - tight[1])


def test_margin_grows_and_clips_to_the_image():
    box = cams_to_boxes(_blob_cam(), (4, 4), 0.5, "tight", margin=2)
    assert box.tolist() == [[0, 0, 4, 4]]


def test_flat_cam_gives_the_whole_image_not_an_error():
    box = cams_to_boxes(torch.full((2, 3, 3), 7.0), (9, 12), 0.95, "reference", 0)
    assert box.tolist() == [[0, 0, 12, 9], [0, 0, 12, 9]]
    assert not torch.isnan(box.float()).any()


def test_boxes_have_positive_area_on_degenerate_images():
    cam = torch.randn(5, 1, 1)
    for size in [(1, 1), (2, 300), (300, 2)]:
        for mode in ("reference", "tight"):
            box = cams_to_boxes(cam, size, 0.95, mode, margin=0)
            assert ((box[:, 2] - box[:, 0]) >= 1).all()
            assert ((box[:, 3] - box[:, 1]) >= 1).all()
            assert (box[:, 2] <= size[1]).all() and (box[:, 3] <= size[0]).all()


def test_unknown_box_mode_is_rejected():
    with pytest.raises(ValueError, match="box mode"):
        cams_to_boxes(_blob_cam(), (4, 4), 0.5, "loose", 0)


def test_threshold_search_lands_in_the_band():
    rng = np.random.default_rng(0)
    probs = rng.random((500, 20))
    tau = search_threshold(probs, bound=4, start=0.05)
    assert 4 < mean_candidates(probs, tau) < 6
    assert 0.05 <= tau <= 1.0


def test_threshold_search_keeps_start_when_band_unreachable():
    probs = np.full((10, 3), 0.9)  # only 3 classes: never more than 4 candidates
    assert search_threshold(probs, bound=4, start=0.05) == 0.05


def test_threshold_search_terminates_when_the_count_jumps_over_the_band():
    probs = np.full((10, 20), 0.5)  # count is 20 below 0.5 and 0 above
    tau = search_threshold(probs, bound=4, start=0.05, max_steps=30)
    assert mean_candidates(probs, tau) < 6


def test_crop_groups_keep_aspect_and_batch_by_shape():
    images = torch.rand(2, 3, 64, 64)
    boxes = torch.tensor([[0, 0, 64, 32], [0, 0, 32, 64], [10, 10, 42, 26]])
    groups = crop_groups(images, torch.tensor([0, 1, 1]), boxes, 64, 32)
    shapes = sorted((tuple(c.shape[2:]), m.tolist()) for c, m in groups)
    assert shapes == [((32, 64), [0, 2]), ((64, 32), [1])]
    square = crop_groups(images, torch.tensor([0, 1, 1]), boxes, 48, None)
    assert [tuple(c.shape) for c, _ in square] == [(3, 3, 48, 48)]
    # the crop content is the boxed region, resized
    full = crop_groups(
        images, torch.tensor([0]), torch.tensor([[0, 0, 64, 64]]), 64, 32
    )
    assert torch.allclose(full[0][0][0], images[0])


def test_max_and_mean_aggregation():
    scores = np.array([[0.1, 0.9], [0.6, 0.2], [0.3, 0.3]])
    idx = np.array([0, 0, 2])
    local, has = aggregate_crop_scores(4, idx, scores, "max")
    np.testing.assert_allclose(local, [[0.6, 0.9], [0, 0], [0.3, 0.3], [0, 0]])
    assert has.tolist() == [True, False, True, False]
    local, _ = aggregate_crop_scores(4, idx, scores, "mean")
    assert local[0].tolist() == pytest.approx([0.35, 0.55])
