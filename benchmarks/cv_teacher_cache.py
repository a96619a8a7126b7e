"""How much the ``memory`` teacher cache saves in cross-validation.

Runs ``cross_validate`` (k folds, the estimator's own score, mAP over the
classes present in each test fold) on generated images three times: without
``memory``, with an empty cache, and again with the now filled cache (what a
second grid-search candidate sees). For each run it prints the number of
teacher loads, the rows the teacher's global pass scored (``Teacher.scores`` is
wrapped to count them), the rows scored for local views at label updates (not
cached), the wall time (the best of ``--repeats``) and the mean score.

Without a cache each fold scores its own training images, so k folds score
``(k - 1) * n`` rows; with a cache every image is scored once, ``n`` rows in
all, and a warm cache scores none.

The images are the synthetic shape scenes and the teacher is the shipped
shapes teacher when ``ccd_estimator.datasets`` provides them; otherwise noisy
coloured squares and a tiny randomly initialised open_clip model. Everything
runs in this process (``n_jobs=1``) so that the counters see every call.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/cv_teacher_cache.py --n-images 60
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, cross_validate

import ccd_estimator._estimator as estimator_module
from ccd_estimator import CCDClassifier
from ccd_estimator._teacher import Teacher

TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16},
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 32,
        "heads": 2,
        "layers": 1,
    },
}


def make_images(n: int, folder: Path, seed: int) -> tuple[list[str], np.ndarray, list]:
    """Shape scenes if available, else noisy images with one coloured square."""
    try:
        from ccd_estimator.datasets import make_shape_scenes
    except ImportError:
        make_shape_scenes = None
    if make_shape_scenes is not None:
        paths, Y, names = make_shape_scenes(n, out_dir=folder, random_state=seed)
        return paths, Y, list(names)

    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}
    paths, Y = [], np.zeros((n, len(colours)), dtype=int)
    for i in range(n):
        arr = rng.integers(0, 80, (64, 64, 3), dtype=np.uint8)
        k = i % len(colours)
        arr[16:48, 16:48] = list(colours.values())[k]
        Y[i, k] = 1
        path = folder / f"img_{i:04d}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths, Y, list(colours)


def teacher_params(folder: Path) -> tuple[dict[str, Any], str]:
    """Estimator settings with the shipped shapes teacher, or a tiny random one."""
    try:
        from ccd_estimator.datasets import shapes_demo_params

        return shapes_demo_params(), "shipped shapes teacher (shapes_demo_params)"
    except ImportError:
        pass
    try:
        from ccd_estimator.datasets import shapes_teacher_files

        config, weights = shapes_teacher_files()
        teacher = {"model_name": config, "pretrained": weights}
        label = "shipped shapes teacher"
    except ImportError:
        import open_clip
        import torch
        from safetensors.torch import save_file

        config = folder / "tiny_clip.json"
        config.write_text(json.dumps(TINY_CLIP_CFG))
        open_clip.add_model_config(config)
        torch.manual_seed(0)
        model = open_clip.create_model("tiny_clip")
        weights = folder / "tiny_clip.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
        teacher = {"model_name": str(config), "pretrained": str(weights)}
        label = "tiny random open_clip teacher"
    params = dict(
        teacher,
        teacher_image_size=64,
        cam_image_size=128,
        crop_size=64,
        student="timm:resnet18",
        student_weights=None,
        student_kwargs={"channels": (16, 32, 64, 128)},
        image_size=64,
        learning_rate=1e-3,
        batch_size=16,
    )
    return params, label


class Counters:
    """Teacher loads and rows scored, split into global pass and local views."""

    def __init__(self) -> None:
        self.loads = 0
        self.global_rows = 0
        self.local_rows = 0
        self._in_global = False

    def reset(self) -> None:
        self.loads = self.global_rows = self.local_rows = 0


@contextmanager
def counting(counters: Counters) -> Iterator[None]:
    """Wrap ``Teacher.__init__``, ``Teacher.scores`` and the global pass."""
    init, scores = Teacher.__init__, Teacher.scores
    global_scores = estimator_module.global_scores

    def counting_init(self: Teacher, *args: Any, **kwargs: Any) -> None:
        counters.loads += 1
        init(self, *args, **kwargs)

    def counting_scores(self: Teacher, images: Any) -> np.ndarray:
        if counters._in_global:
            counters.global_rows += len(images)
        else:
            counters.local_rows += len(images)
        return scores(self, images)

    def flagged_global_scores(*args: Any, **kwargs: Any) -> Any:
        counters._in_global = True
        try:
            return global_scores(*args, **kwargs)
        finally:
            counters._in_global = False

    Teacher.__init__ = counting_init
    Teacher.scores = counting_scores
    estimator_module.global_scores = flagged_global_scores
    try:
        yield
    finally:
        Teacher.__init__ = init
        Teacher.scores = scores
        estimator_module.global_scores = global_scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=60)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument(
        "--update-epochs",
        type=int,
        nargs="*",
        default=[],
        help="label-update epochs (local views; not cached)",
    )
    parser.add_argument(
        "--teacher-image-size",
        type=int,
        default=None,
        help="side of the teacher's global view (default: the demo's 64)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="best of N timings")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log cache hits")
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="  %(name)s: %(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "images").mkdir()
        paths, Y, names = make_images(args.n_images, tmp_path / "images", args.seed)
        params, label = teacher_params(tmp_path)
        params.update(
            class_names=names,
            max_epochs=args.max_epochs,
            update_epochs=tuple(args.update_epochs),
            consistency_start=min(params.get("consistency_start", 2), args.max_epochs),
            device=args.device,
            random_state=args.seed,
            verbose=0,
        )
        if args.teacher_image_size is not None:
            params["teacher_image_size"] = args.teacher_image_size
        cv = KFold(args.folds, shuffle=True, random_state=args.seed)
        print(
            f"{args.n_images} images, {len(names)} classes, {args.folds}-fold "
            f"cross_validate, max_epochs={args.max_epochs}, "
            f"update_epochs={tuple(args.update_epochs)}, device={args.device}"
        )
        print(
            f"teacher: {label}, global view {params['teacher_image_size']} px; "
            f"best of {args.repeats}"
        )
        # classes absent from a small test fold are skipped by score(), with a
        # warning per fold
        warnings.filterwarnings("ignore", message="score: classes without")
        CCDClassifier(**params).fit(paths[:4])  # warm-up, not timed

        counters = Counters()
        names_ = ["no memory", "memory, cold", "memory, warm"]
        best: dict[str, tuple] = {}
        with counting(counters):
            for rep in range(args.repeats):
                cache = str(tmp_path / f"teacher-cache-{rep}")
                for name, memory in zip(names_, [None, cache, cache], strict=True):
                    counters.reset()
                    est = CCDClassifier(**params, memory=memory)
                    start = time.perf_counter()
                    result = cross_validate(est, paths, Y, cv=cv)
                    seconds = time.perf_counter() - start
                    row = (
                        name,
                        counters.loads,
                        counters.global_rows,
                        counters.local_rows,
                        seconds,
                        float(np.mean(result["fit_time"])),
                        float(np.mean(result["test_score"])),
                    )
                    if name not in best or seconds < best[name][4]:
                        best[name] = row
        rows = [best[name] for name in names_]

    header = (
        f"{'run':<14}{'teacher loads':>14}{'global rows':>13}{'local rows':>12}"
        f"{'wall s':>9}{'fit s/fold':>12}{'mean mAP':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, loads, g, loc, sec, fit_s, ap in rows:
        print(
            f"{name:<14}{loads:>14d}{g:>13d}{loc:>12d}{sec:>9.2f}{fit_s:>12.2f}"
            f"{ap:>10.3f}"
        )
    base, cold, warm = rows
    print()
    print(
        f"global-pass rows: {base[2]} without memory, {cold[2]} with a cold cache "
        f"({1 - cold[2] / base[2]:.0%} fewer), {warm[2]} with a warm one"
    )
    print(
        f"wall time: {base[4]:.2f} s without memory, {cold[4]:.2f} s cold "
        f"({base[4] - cold[4]:+.2f} s saved), {warm[4]:.2f} s warm "
        f"({base[4] - warm[4]:+.2f} s saved)"
    )


if __name__ == "__main__":
    main()
