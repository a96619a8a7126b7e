"""Figures of explanations, built from hand-made Explanation objects."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from PIL import Image

from ccd_estimator import Explanation
from ccd_estimator.plotting import _atomic_write, plot_explanations, save_figure

pytest.importorskip("matplotlib")

NAMES = ["red", "blue", "green"]


def make_explanation(with_teacher: bool = True, seed: int = 0) -> Explanation:
    rng = np.random.default_rng(seed)
    boxes = {0: (4, 6, 40, 30), 1: (20, 20, 64, 64), 2: (0, 0, 16, 16)}
    return Explanation(
        path=f"/somewhere/img_{seed}.png",
        image=rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
        probabilities=np.array([0.9, 0.6, 0.55]),
        cams=rng.normal(size=(3, 4, 4)).astype(np.float32),
        boxes=boxes,
        global_scores=np.array([0.5, 0.3, 0.2]) if with_teacher else None,
        crop_scores=(
            {c: np.roll(np.array([0.8, 0.1, 0.1]), c) for c in boxes}
            if with_teacher
            else {}
        ),
    )


def rectangles(ax) -> list:
    from matplotlib.patches import Rectangle

    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_layout_one_row_per_image_three_panels():
    from matplotlib.figure import Figure

    fig = plot_explanations([make_explanation(), make_explanation(seed=1)], NAMES)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6
    image_ax, bars_ax, cam_ax = fig.axes[:3]
    assert len(rectangles(image_ax)) == 3  # one box per candidate class
    labels = [t.get_text() for t in image_ax.texts]
    assert labels == ["red 0.90", "blue 0.60", "green 0.55"]
    # student, teacher whole image, teacher crop: three bars per class
    assert len(bars_ax.patches) == 9
    assert [t.get_text() for t in bars_ax.get_yticklabels()] == NAMES
    crop_bars = bars_ax.containers[2]
    assert [round(b.get_width(), 3) for b in crop_bars] == [0.8, 0.8, 0.8]
    assert cam_ax.get_title().startswith("CAM: red")
    assert len(cam_ax.images) == 2  # the image and the heat map over it


def test_without_teacher_and_without_cam():
    fig = plot_explanations(
        [make_explanation(with_teacher=False)], NAMES, show_cam=False
    )
    assert len(fig.axes) == 2
    assert len(fig.axes[1].patches) == 3  # student probabilities only
    assert fig.axes[1].get_title() == "student"


def test_max_boxes_keeps_the_most_probable():
    fig = plot_explanations([make_explanation()], NAMES, max_boxes=2)
    assert len(rectangles(fig.axes[0])) == 2
    assert [t.get_text() for t in fig.axes[0].texts] == ["red 0.90", "blue 0.60"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"explanations": []}, "empty"),
        ({"class_names": ["a", "b"]}, "class_names has 2 names"),
        ({"max_boxes": 0}, "max_boxes"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"explanations": [make_explanation()], "class_names": NAMES}
    args.update(kwargs)
    explanations = args.pop("explanations")
    names = args.pop("class_names")
    with pytest.raises(ValueError, match=match):
        plot_explanations(explanations, names, **args)


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"ccd-estimator\[plot\]"):
        plot_explanations([make_explanation()], NAMES)


def test_no_pyplot_state():
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plot_explanations([make_explanation()], NAMES)
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules


def test_save_figure_png_atomic_and_no_overwrite(tmp_path):
    fig = plot_explanations([make_explanation()], NAMES, figsize=(6, 2), dpi=50)
    out = tmp_path / "sub" / "fig.png"  # missing folders are created
    assert save_figure(fig, out) == str(out)
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (300, 100)
    assert os.listdir(out.parent) == ["fig.png"]  # no temporary file left

    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        save_figure(fig, out)
    assert out.read_bytes() == before
    assert os.listdir(out.parent) == ["fig.png"]

    save_figure(fig, out, force=True, dpi=100)
    with Image.open(out) as im:
        assert im.size == (600, 200)
    assert os.listdir(out.parent) == ["fig.png"]


def test_save_figure_other_formats(tmp_path):
    fig = plot_explanations([make_explanation()], NAMES)
    save_figure(fig, tmp_path / "fig.pdf")
    assert (tmp_path / "fig.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="cannot write figure format 'xyz'"):
        save_figure(fig, tmp_path / "fig.xyz")
    assert not (tmp_path / "fig.xyz").exists()


def test_atomic_write_failure_leaves_nothing(tmp_path):
    def fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _atomic_write(tmp_path / "out.csv", fail)
    assert os.listdir(tmp_path) == []

    target = tmp_path / "out.csv"
    target.write_text("original")
    with pytest.raises(RuntimeError):
        _atomic_write(target, fail, force=True)
    assert target.read_text() == "original"
    assert os.listdir(tmp_path) == ["out.csv"]
    with pytest.raises(IsADirectoryError):
        _atomic_write(tmp_path, fail, force=True)
