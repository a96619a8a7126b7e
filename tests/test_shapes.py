"""Tests of the synthetic shape scenes and the shipped shapes teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccd_estimator.datasets import (
    SHAPE_CLASSES,
    make_shape_scenes,
    shapes_teacher_files,
)
from ccd_estimator.datasets._shapes import DEFAULT_CLASSES, _render_single_objects


def test_outputs_shapes_and_dtypes(tmp_path):
    paths, Y, names = make_shape_scenes(12, out_dir=tmp_path / "new", random_state=0)
    assert len(paths) == 12
    assert names == list(DEFAULT_CLASSES)
    assert set(names) <= set(SHAPE_CLASSES)
    assert Y.shape == (12, len(names))
    assert np.issubdtype(Y.dtype, np.integer)
    assert set(np.unique(Y)) <= {0, 1}
    assert (Y.sum(axis=1) >= 1).all()
    assert [Path(p).name for p in paths[:2]] == ["scene_00000.png", "scene_00001.png"]
    for p in paths:
        assert Path(p).is_absolute() and Path(p).is_file()
    with Image.open(paths[0]) as img:
        assert img.size == (128, 128) and img.mode == "RGB"


def test_deterministic(tmp_path):
    a = make_shape_scenes(6, out_dir=tmp_path / "a", random_state=3)
    b = make_shape_scenes(6, out_dir=tmp_path / "b", random_state=3)
    np.testing.assert_array_equal(a[1], b[1])
    for pa, pb in zip(a[0], b[0], strict=True):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()
    c = make_shape_scenes(6, out_dir=tmp_path / "c", random_state=4)
    assert any(
        Path(pa).read_bytes() != Path(pc).read_bytes()
        for pa, pc in zip(a[0], c[0], strict=True)
    )


def test_n_objects_and_classes_subset(tmp_path):
    classes = ["star", "circle", "ring"]
    _, Y, names = make_shape_scenes(
        20,
        out_dir=tmp_path,
        random_state=0,
        classes=classes,
        n_objects=(1,),
        n_objects_proba=None,
    )
    assert names == classes
    assert Y.shape == (20, 3)
    np.testing.assert_array_equal(Y.sum(axis=1), 1)
    _, Y2, _ = make_shape_scenes(
        10, out_dir=tmp_path, random_state=0, n_objects=(3,), n_objects_proba=(1.0,)
    )
    np.testing.assert_array_equal(Y2.sum(axis=1), 3)


def test_image_size_and_format(tmp_path):
    paths, _, _ = make_shape_scenes(
        2, out_dir=tmp_path, random_state=0, image_size=96, image_format="jpeg"
    )
    assert paths[0].endswith(".jpg")
    with Image.open(paths[0]) as img:
        assert img.size == (96, 96) and img.format == "JPEG"


def test_class_imbalance(tmp_path):
    _, Y0, _ = make_shape_scenes(
        300, out_dir=tmp_path / "u", random_state=0, class_imbalance=0.0
    )
    _, Y1, _ = make_shape_scenes(
        300, out_dir=tmp_path / "z", random_state=0, class_imbalance=1.5
    )
    f0, f1 = Y0.sum(axis=0), Y1.sum(axis=0)
    assert f1.max() > 4 * max(f1.min(), 1)
    assert f1.max() / max(f1.min(), 1) > f0.max() / max(f0.min(), 1)
    assert f1[0] == f1.max()


def test_co_occurrence(tmp_path):
    # 8 classes -> 2 groups (even and odd class indices).
    kwargs = dict(
        classes=list(SHAPE_CLASSES[:8]),
        n_objects=(2,),
        n_objects_proba=(1.0,),
        class_imbalance=0.0,
        random_state=0,
    )
    _, Y1, _ = make_shape_scenes(
        150, out_dir=tmp_path / "a", co_occurrence=1.0, **kwargs
    )
    _, Y0, _ = make_shape_scenes(
        150, out_dir=tmp_path / "b", co_occurrence=0.0, **kwargs
    )

    def same_group(Y):
        idx = np.argwhere(Y)[:, 1].reshape(-1, 2)
        return np.mean(idx[:, 0] % 2 == idx[:, 1] % 2)

    assert same_group(Y1) == 1.0
    assert same_group(Y0) < 0.7


def test_boxes_inside_and_match_labels(tmp_path):
    paths, Y, _, boxes = make_shape_scenes(
        30, out_dir=tmp_path, random_state=1, return_boxes=True
    )
    assert len(boxes) == len(paths)
    for i, scene in enumerate(boxes):
        assert sorted(c for c, *_ in scene) == list(np.flatnonzero(Y[i]))
        for _, x0, y0, x1, y1 in scene:
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
        rects = [b[1:] for b in scene]
        for j, a in enumerate(rects):
            for b in rects[j + 1 :]:
                overlap = not (
                    a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                )
                assert not overlap


def test_object_size(tmp_path):
    def mean_box_side(size):
        _, _, _, boxes = make_shape_scenes(
            20,
            out_dir=tmp_path,
            random_state=0,
            n_objects=(1,),
            n_objects_proba=None,
            object_size=size,
            return_boxes=True,
        )
        return np.mean([max(b[3] - b[1], b[4] - b[2]) for s in boxes for b in s])

    assert mean_box_side((0.3, 0.4)) > 1.5 * mean_box_side((0.1, 0.15))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_images": 0}, "n_images"),
        ({"classes": ["circle", "blob"]}, "available shapes"),
        ({"classes": "circle"}, "classes"),
        ({"classes": []}, "classes"),
        ({"classes": ["circle", "circle"]}, "duplicate"),
        ({"n_objects": (0, 1)}, "n_objects"),
        ({"classes": ["circle", "star"], "n_objects": (3,)}, "n_objects"),
        ({"n_objects_proba": (0.5, 0.5)}, "n_objects_proba"),
        ({"n_objects_proba": (0.5, 0.5, 0.5)}, "n_objects_proba"),
        ({"object_size": (0.3, 0.1)}, "object_size"),
        ({"object_size": (0.1, 0.8)}, "object_size"),
        ({"object_size": 0.2}, "object_size"),
        ({"image_size": 8}, "image_size"),
        ({"class_imbalance": -1.0}, "class_imbalance"),
        ({"co_occurrence": 1.5}, "co_occurrence"),
        ({"image_format": "gif"}, "image_format"),
    ],
)
def test_invalid_parameters(tmp_path, kwargs, match):
    params = {"n_images": 2, "out_dir": tmp_path, "random_state": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_shape_scenes(**params)


def test_shipped_teacher_zero_shot():
    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    load_file = pytest.importorskip("safetensors.torch").load_file
    config_path, weights_path = shapes_teacher_files()
    assert Path(config_path).is_file() and Path(weights_path).is_file()
    assert Path(config_path).stem == "shapes_teacher"
    cfg = json.loads(Path(config_path).read_text())
    assert {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg)

    open_clip.add_model_config(config_path)
    model = open_clip.create_model("shapes_teacher", pretrained=weights_path).eval()
    tokenizer = open_clip.get_tokenizer("shapes_teacher")
    stored = load_file(weights_path)
    # Every tensor (fp16 on disk for the big ones) is restored, logit_scale too.
    torch.testing.assert_close(model.logit_scale.detach(), stored["logit_scale"])
    for key in ("visual.conv1.weight", "token_embedding.weight"):
        torch.testing.assert_close(
            model.state_dict()[key], stored[key].float(), rtol=0, atol=0
        )
    assert 5.0 < model.logit_scale.exp().item() <= 100.0

    images, labels = _render_single_objects(
        224, seed=123, classes=DEFAULT_CLASSES, out_size=64
    )
    pp = model.visual.preprocess_cfg
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(pp["mean"]).view(1, 3, 1, 1)) / torch.tensor(pp["std"]).view(
        1, 3, 1, 1
    )
    prompts = [f"a photo of the {c}" for c in DEFAULT_CLASSES]
    with torch.inference_mode():
        img = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        txt = torch.nn.functional.normalize(
            model.encode_text(tokenizer(prompts)), dim=-1
        )
        pred = (img @ txt.T).argmax(dim=1).numpy()
    assert (pred == labels).mean() >= 0.85
