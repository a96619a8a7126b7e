"""Shared fixtures: a tiny open_clip teacher saved to disk, tiny images, a fit.

The teacher is a real open_clip model built from a custom config, saved as a
safetensors file and loaded back through the same code path a user's
checkpoint takes. Its weights are random, so these fixtures test the wrapper,
not CLIP's accuracy; the shipped shapes teacher covers accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 64,
        "layers": [1, 1, 1, 1],
        "width": 16,
        "head_width": 8,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 32,
        "heads": 2,
        "layers": 1,
    },
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """(config path, checkpoint path) of a tiny random ModifiedResNet CLIP."""
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("teacher")
    config = folder / "tiny_clip.json"
    config.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(config)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.create_model("tiny_clip")
    weights = folder / "tiny_clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    return str(config), str(weights)


def write_images(folder, n, size=(40, 48), seed=0):
    """Write n noisy PNGs with a coloured square each; return their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 80, (*size, 3), dtype=np.uint8)
        colour = [(255, 0, 0), (0, 0, 255), (0, 255, 0)][i % 3]
        arr[8:24, 8:24] = colour
        path = folder / f"img_{i:03d}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images"), 18)


@pytest.fixture(scope="session")
def tiny_params(tiny_clip):
    """CCDClassifier keyword arguments for a fit of a few seconds on a CPU."""
    config, weights = tiny_clip
    return dict(
        class_names=["red", "blue", "green"],
        model_name=config,
        pretrained=weights,
        logit_scale=50.0,
        teacher_image_size=32,
        cam_image_size=64,
        crop_size=32,
        student="timm:resnet18",
        student_weights=None,
        student_kwargs={"channels": (8, 16, 32, 64)},
        image_size=32,
        batch_size=8,
        max_epochs=3,
        update_epochs=(1,),
        consistency_start=1,
        candidate_bound=1.0,
        random_state=0,
        device="cpu",
    )


@pytest.fixture(scope="session")
def fitted(tiny_params, images):
    """One fitted estimator shared by read-only tests: do not modify it."""
    from ccd_estimator import CCDClassifier

    return CCDClassifier(**tiny_params).fit(images)
