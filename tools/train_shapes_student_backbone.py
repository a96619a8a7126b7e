"""Pretrain the demo student's backbone on single shapes (the ImageNet analogue).

The paper's student starts from ImageNet-pretrained weights. Nothing can be
downloaded here, so the demo's student starts from a backbone trained by this
script on the same kind of single-object images the shipped teacher was
trained on (different random draws), with plain cross-entropy over the shape
classes. The result (stem, layer1, layer2 of a narrow timm ResNet-18: the part
the demo's stride-8 student uses) is saved as
``ccd_estimator/datasets/data/shapes_student_backbone.safetensors``.

Usage::

    python tools/train_shapes_student_backbone.py [--steps 1500]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ccd_estimator._data import IMAGENET_MEAN, IMAGENET_STD
from ccd_estimator.datasets import shapes_demo_params
from ccd_estimator.datasets._shapes import DEFAULT_CLASSES, _render_single_objects

OUT = (
    Path(__file__).resolve().parents[1]
    / "ccd_estimator/datasets/data/shapes_student_backbone.safetensors"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pool", type=int, default=12000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    kwargs = dict(shapes_demo_params()["student_kwargs"])
    size = shapes_demo_params()["image_size"]

    start = time.perf_counter()
    images, labels = _render_single_objects(
        args.pool, seed=args.seed, object_size=(0.08, 0.3), out_size=size
    )
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    x = (torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    y = torch.as_tensor(labels, dtype=torch.long)
    print(f"rendered {len(x)} images in {time.perf_counter() - start:.0f}s")

    features = timm.create_model("resnet18", pretrained=False, **kwargs)
    head = torch.nn.Linear(features.feature_info.channels()[-1], len(DEFAULT_CLASSES))
    params = list(features.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    n_train = len(x) - 1000
    start = time.perf_counter()
    for step in range(args.steps):
        idx = torch.randint(0, n_train, (args.batch,))
        batch = x[idx]
        flip = torch.rand(len(idx)) < 0.5
        batch[flip] = batch[flip].flip(-1)
        logits = head(features(batch)[-1].mean(dim=(2, 3)))
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 250 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    features.eval()
    with torch.no_grad():
        pred = head(features(x[n_train:])[-1].mean(dim=(2, 3))).argmax(1)
    acc = float((pred == y[n_train:]).float().mean())
    print(
        f"trained {args.steps} steps in {time.perf_counter() - start:.0f}s; "
        f"held-out single-object accuracy {100 * acc:.1f}%"
    )
    state = {k: v.contiguous() for k, v in features.state_dict().items()}
    save_file(
        state,
        OUT,
        metadata={
            "steps": str(args.steps),
            "seed": str(args.seed),
            "accuracy": f"{acc:.4f}",
        },
    )
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
