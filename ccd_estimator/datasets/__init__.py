"""Datasets: the synthetic shape scenes and their shipped CLIP teacher."""

from __future__ import annotations

from pathlib import Path

from ccd_estimator.datasets._shapes import SHAPE_CLASSES, make_shape_scenes

__all__ = ["SHAPE_CLASSES", "make_shape_scenes", "shapes_teacher_files"]

_DATA_DIR = Path(__file__).resolve().parent / "data"


def shapes_teacher_files() -> tuple[str, str]:
    """Return the files of the tiny CLIP teacher trained on single shapes.

    The teacher is an open_clip model with a custom config (a small
    ModifiedResNet image tower at 64 px and a 2-layer text transformer),
    trained by ``tools/train_shapes_teacher.py`` on single objects captioned
    ``"a photo of the {shape}"``. Its registry name is the config file's stem,
    ``"shapes_teacher"``.

    Returns
    -------
    config_path : str
        Absolute path of the open_clip model config (JSON).
    weights_path : str
        Absolute path of the weights (safetensors).

    Examples
    --------
    >>> import open_clip
    >>> from ccd_estimator.datasets import shapes_teacher_files
    >>> config_path, weights_path = shapes_teacher_files()
    >>> open_clip.add_model_config(config_path)
    >>> model = open_clip.create_model("shapes_teacher", pretrained=weights_path)
    """
    return (
        str(_DATA_DIR / "shapes_teacher.json"),
        str(_DATA_DIR / "shapes_teacher.safetensors"),
    )
