"""Train the tiny CLIP teacher shipped with ``ccd_estimator.datasets``.

The teacher is an open_clip ``CLIP`` built from a custom config (ModifiedResNet
image tower at 64 px, small text transformer) and trained contrastively with
``open_clip.ClipLoss`` on single shapes rendered by the same code as
:func:`ccd_estimator.datasets.make_shape_scenes`, captioned
``"a photo of the {shape}"``.

Usage (from the repository root; 2 min rendering + 4-10 min training on 2 CPU cores)::

    .venv/bin/python tools/train_shapes_teacher.py            # train + calibrate
    .venv/bin/python tools/train_shapes_teacher.py --calibrate-only

It writes ``ccd_estimator/datasets/data/shapes_teacher.json`` (open_clip model
config; registry name ``shapes_teacher``) and ``shapes_teacher.safetensors``,
then prints the zero-shot accuracy on held-out single objects and, on 1000
default test scenes, the teacher's global and oracle-local-view macro mAP.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file
from sklearn.metrics import average_precision_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ccd_estimator.datasets._shapes import (  # noqa: E402
    DEFAULT_CLASSES,
    _render_single_objects,
    make_shape_scenes,
)

DATA_DIR = REPO / "ccd_estimator" / "datasets" / "data"
NAME = "shapes_teacher"
TEMPLATE = "a photo of the {}"

MODEL_CFG = {
    "embed_dim": 64,
    "quick_gelu": False,
    "vision_cfg": {
        "image_size": 64,
        "layers": [1, 1, 1, 1],
        "width": 16,
        "head_width": 32,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 32,
        "heads": 4,
        "layers": 2,
    },
}


def _render_chunk(args: tuple[int, int, float]) -> tuple[np.ndarray, np.ndarray]:
    n, seed, crop_proba = args
    return _render_single_objects(
        n,
        seed=seed,
        classes=DEFAULT_CLASSES,
        object_size=(0.15, 0.5),
        crop_proba=crop_proba,
        crop_margin=0.2,
    )


def render_pool(
    n: int, seed: int, workers: int, crop_proba: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` single-object 64 px images in parallel chunks (deterministic)."""
    chunk = 2000
    jobs = [
        (min(chunk, n - i), seed * 100_003 + k, crop_proba)
        for k, i in enumerate(range(0, n, chunk))
    ]
    with ProcessPoolExecutor(workers) as ex:
        parts = list(ex.map(_render_chunk, jobs))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def to_tensor(images: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W), as ToTensor+Normalize."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


def write_config(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(MODEL_CFG, indent=2) + "\n")


@torch.inference_mode()
def class_text_features(model, tokenizer, classes) -> torch.Tensor:
    tokens = tokenizer([TEMPLATE.format(c) for c in classes])
    return torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)


@torch.inference_mode()
def predict_proba(model, text_feats, x: torch.Tensor, batch: int = 512) -> np.ndarray:
    scale = model.logit_scale.exp()
    out = []
    for i in range(0, len(x), batch):
        f = torch.nn.functional.normalize(model.encode_image(x[i : i + batch]), dim=-1)
        out.append((scale * f @ text_feats.T).softmax(-1))
    return torch.cat(out).numpy()


def zero_shot_accuracy(model, tokenizer, mean, std, n: int, seed: int) -> dict:
    images, labels = _render_single_objects(n, seed=seed, classes=DEFAULT_CLASSES)
    model.eval()
    text = class_text_features(model, tokenizer, DEFAULT_CLASSES)
    pred = predict_proba(model, text, to_tensor(images, mean, std)).argmax(1)
    per_class = {
        c: float((pred[labels == k] == k).mean()) for k, c in enumerate(DEFAULT_CLASSES)
    }
    return {"top1": float((pred == labels).mean()), "per_class": per_class}


def train(args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg_path = DATA_DIR / f"{NAME}.json"
    write_config(cfg_path)
    open_clip.add_model_config(cfg_path)
    model = open_clip.create_model(NAME)
    tokenizer = open_clip.get_tokenizer(NAME)
    mean, std = model.visual.preprocess_cfg["mean"], model.visual.preprocess_cfg["std"]

    t0 = time.perf_counter()
    images, labels = render_pool(args.pool, args.seed, args.workers, args.crop_proba)
    t_render = time.perf_counter() - t0
    print(f"rendered {len(images)} training images in {t_render:.1f} s", flush=True)

    tokens = tokenizer([TEMPLATE.format(c) for c in DEFAULT_CLASSES])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit" in n]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": 0.1},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * t))

    loss_fn = open_clip.ClipLoss()
    gen = torch.Generator().manual_seed(args.seed)
    model.train()
    t0 = time.perf_counter()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = torch.randint(len(images), (args.batch,), generator=gen).numpy()
        x = to_tensor(images[idx], mean, std)
        flip = torch.rand(args.batch, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        img_f, txt_f, scale = model(x, tokens[labels[idx]])[:3]
        loss = loss_fn(img_f, txt_f, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 100 == 0 or step == args.steps - 1:
            print(
                f"step {step:5d} loss {loss.item():.3f} "
                f"scale {model.logit_scale.exp().item():.2f} "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    t_train = time.perf_counter() - t0
    model.eval()

    acc32 = zero_shot_accuracy(model, tokenizer, mean, std, args.eval_n, 987654)
    # Store big tensors in fp16 (the embedding table dominates), small ones fp32.
    state = {
        k: (v.half() if v.is_floating_point() and v.numel() >= 4096 else v).contiguous()
        for k, v in model.state_dict().items()
    }
    meta = {
        "classes": json.dumps(list(DEFAULT_CLASSES)),
        "template": TEMPLATE,
        "image_mean": json.dumps(list(mean)),
        "image_std": json.dumps(list(std)),
        "train_steps": str(args.steps),
        "train_batch": str(args.batch),
        "seed": str(args.seed),
        "crop_proba": str(args.crop_proba),
    }
    weights = DATA_DIR / f"{NAME}.safetensors"
    save_file(state, str(weights), metadata=meta)
    print(
        f"training: {t_train:.0f} s ({args.steps} steps x {args.batch}), "
        f"rendering {t_render:.0f} s; fp32 zero-shot top-1 {acc32['top1']:.3f}; "
        f"file {weights.stat().st_size / 1e6:.2f} MB",
        flush=True,
    )


def load_teacher():
    cfg_path = DATA_DIR / f"{NAME}.json"
    open_clip.add_model_config(cfg_path)
    model = open_clip.create_model(
        NAME, pretrained=str(DATA_DIR / f"{NAME}.safetensors")
    )
    model.eval()
    return model, open_clip.get_tokenizer(NAME)


def calibrate(args) -> None:
    torch.set_num_threads(args.threads)
    model, tokenizer = load_teacher()
    mean, std = model.visual.preprocess_cfg["mean"], model.visual.preprocess_cfg["std"]
    print(f"logit scale {model.logit_scale.exp().item():.2f}")
    acc = zero_shot_accuracy(model, tokenizer, mean, std, args.eval_n, 987654)
    print(f"single-object zero-shot top-1 (reloaded): {acc['top1']:.3f}")
    print("  " + ", ".join(f"{c} {a:.2f}" for c, a in acc["per_class"].items()))

    text = class_text_features(model, tokenizer, DEFAULT_CLASSES)
    with tempfile.TemporaryDirectory() as tmp:
        paths, Y, names, boxes = make_shape_scenes(
            args.n_scenes, out_dir=tmp, random_state=20250101, return_boxes=True
        )
        assert names == list(DEFAULT_CLASSES)
        size = 64
        glob, crops, owner = [], [], []
        for i, p in enumerate(paths):
            img = Image.open(p).convert("RGB")
            glob.append(np.asarray(img.resize((size, size), Image.Resampling.BILINEAR)))
            margin = 0.125 * img.width
            for _, x0, y0, x1, y1 in boxes[i]:
                box = (
                    max(0, round(x0 - margin)),
                    max(0, round(y0 - margin)),
                    min(img.width, round(x1 + margin)),
                    min(img.height, round(y1 + margin)),
                )
                crop = img.crop(box).resize((size, size), Image.Resampling.BILINEAR)
                crops.append(np.asarray(crop))
                owner.append(i)
    p_glob = predict_proba(model, text, to_tensor(np.stack(glob), mean, std))
    p_crop = predict_proba(model, text, to_tensor(np.stack(crops), mean, std))
    p_local = np.zeros_like(p_glob)
    np.maximum.at(p_local, np.asarray(owner), p_crop)
    map_glob = 100 * average_precision_score(Y, p_glob, average="macro")
    map_local = 100 * average_precision_score(Y, p_local, average="macro")
    single = Y.sum(1) == 1
    map_glob_1 = 100 * average_precision_score(
        Y[single], p_glob[single], average="macro"
    )
    map_glob_m = 100 * average_precision_score(
        Y[~single], p_glob[~single], average="macro"
    )
    print(f"test scenes: {len(paths)} ({single.mean():.0%} single-object)")
    print(f"global zero-shot macro mAP: {map_glob:.1f}")
    print(f"  single-object scenes {map_glob_1:.1f}, multi-object {map_glob_m:.1f}")
    print(f"oracle local-view macro mAP: {map_local:.1f}")
    top1 = p_glob.argmax(1)
    for k, c in enumerate(names):
        print(
            f"  {c:11s} freq {Y[:, k].mean():.3f} "
            f"top-1 share {(top1 == k).mean():.3f} "
            f"AP global {100 * average_precision_score(Y[:, k], p_glob[:, k]):.0f} "
            f"local {100 * average_precision_score(Y[:, k], p_local[:, k]):.0f}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--pool", type=int, default=48000, help="rendered images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--crop-proba",
        type=float,
        default=0.0,
        help="share of training images cut to a box around the object and squashed "
        "to a square (imitates local views; the shipped teacher used 0)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--eval-n", type=int, default=2800)
    parser.add_argument("--n-scenes", type=int, default=1000)
    parser.add_argument("--calibrate-only", action="store_true")
    parser.add_argument("--no-calibrate", action="store_true")
    args = parser.parse_args(argv)
    if not args.calibrate_only:
        train(args)
    if not args.no_calibrate:
        calibrate(args)


if __name__ == "__main__":
    main()
