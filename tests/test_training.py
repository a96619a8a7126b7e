"""Selection without ground truth, train mAP and the student's CAM head."""

import numpy as np
import pytest
import torch
from torch import nn

from ccd_estimator._data import batch_lists
from ccd_estimator._student import CAMStudent, build_student
from ccd_estimator._training import select_epoch, train_map


def test_selection_rule_picks_first_positive_second_difference():
    # gains d: e1 = 10, e2 = 5, e3 = 7 (> 5), so epoch 3 is chosen
    assert select_epoch([50, 60, 65, 72, 73], "train_map") == 3


def test_selection_rule_never_picks_epochs_0_or_1():
    assert select_epoch([10, 90, 95, 96], "train_map") == 3  # d: 80, 5, 1 -> none
    assert select_epoch([10, 20, 40], "train_map") == 2  # d2 = 20 > d1 = 10


def test_selection_rule_falls_back_to_last_epoch():
    assert select_epoch([10, 30, 40, 45, 47], "train_map") == 4
    assert select_epoch([10, 30, 40], "last") == 2
    assert select_epoch([10], "train_map") == 0


def test_train_map_counts_only_saturated_labels_and_zero_for_empty_classes():
    labels = np.array([[1.0, 0.9], [0.05, 0.9], [1.0, 0.1]])
    scores = np.array([[0.9, 0.5], [0.1, 0.5], [0.8, 0.5]])
    # class 0: positives rows 0 and 2 ranked first -> AP 1; class 1: none -> 0
    assert train_map(scores, labels) == pytest.approx(50.0)


class _Identity(nn.Module):
    def forward(self, x):
        return x


def test_positive_cam_multiplier_scales_only_positive_part():
    student = CAMStudent(_Identity(), n_features=1, n_classes=1)
    with torch.no_grad():
        student.head.weight.fill_(1.0)
        student.head.bias.zero_()
    x = torch.tensor([[[[2.0, -1.0], [0.0, -3.0]]]])
    student.set_cam_multiplier(3.0)
    # CAM' = 3*relu(cam) - relu(-cam) = [6, -1, 0, -3]; logit = mean = 0.5
    assert student(x).item() == pytest.approx(0.5)
    assert student.cams(x).flatten().tolist() == [6.0, -1.0, 0.0, -3.0]


def test_build_student_from_timm_and_torchvision():
    timm_student = build_student(
        "timm:resnet18", 3, None, {"channels": (8, 16, 32, 64)}
    )
    assert timm_student(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    tv_student = build_student("torchvision:resnet18", 2, None, None)
    assert tv_student.cams(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 2, 2)


def test_build_student_rejects_unknown_names_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="neither a timm nor a torchvision"):
        build_student("no_such_net_xyz", 2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_student("timm:resnet18", 2, str(tmp_path / "w.safetensors"))


def test_batches_never_end_with_a_single_sample():
    assert [len(b) for b in batch_lists(9, 8)] == [9]
    assert [len(b) for b in batch_lists(17, 8)] == [8, 9]
    assert [len(b) for b in batch_lists(1, 8)] == [1]
    assert sorted(sum(batch_lists(10, 4), [])) == list(range(10))


def test_student_weights_file_loads_into_features_only_backbone(tmp_path):
    import timm
    from safetensors.torch import save_file

    kwargs = {"channels": (8, 16, 32, 64)}
    full = timm.create_model("resnet18", num_classes=5, **kwargs)
    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, path)
    student = build_student(
        "timm:resnet18",
        3,
        str(path),
        {**kwargs, "features_only": True, "out_indices": (2,)},
    )
    loaded = student.backbone.model.state_dict()
    assert torch.equal(loaded["conv1.weight"], full.state_dict()["conv1.weight"])
    assert torch.equal(
        loaded["layer2.1.bn2.weight"], full.state_dict()["layer2.1.bn2.weight"]
    )
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3, 3, 3)}, wrong)
    with pytest.raises(ValueError, match="does not match the student backbone"):
        build_student("timm:resnet18", 3, str(wrong), kwargs)


@pytest.mark.parametrize("shape", [(1, 1), (37, 91), (300, 200)])
def test_squash_view_matches_the_composed_torchvision_pipeline(shape):
    from PIL import Image
    from torchvision.transforms import v2

    from ccd_estimator._data import normalized_view, resize_to_tensor

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    mean, std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    composed = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize((24, 24), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    expected = composed(image)
    got = resize_to_tensor(24)(image)
    assert got.shape == (3, 24, 24) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    normalized = v2.Normalize(mean=list(mean), std=list(std))(expected)
    torch.testing.assert_close(
        normalized_view(24, mean, std)(image), normalized, rtol=0, atol=1e-5
    )


def test_progress_bars_only_where_watched(capsys, monkeypatch):
    from ccd_estimator import _progress

    def run(verbose):
        assert list(_progress.progress(range(3), verbose, "stage-x")) == [0, 1, 2]
        return capsys.readouterr().err

    # pytest captures stderr, which is not a terminal: no redraws in a log
    assert "stage-x" not in run(1)
    assert "stage-x" in run(2)
    assert run(0) == ""
    monkeypatch.setattr(_progress, "_watched", lambda: True)
    assert "stage-x" in run(1)
