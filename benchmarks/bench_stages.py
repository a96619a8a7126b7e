"""Time each stage of fit and predict against a per-image reference loop.

On the embedded shapes benchmark, in one process, on the same data and models:

* the teacher's global pass as the library runs it (batched DataLoader pass at
  the estimator's ``inference_batch_size``), the same pass fed one image at a
  time as the released code does, bare ``encode`` on preloaded tensors at batch
  1 and at the library's batch size (decoding and resizing excluded), and
  decoding alone (the floor of any pass that reads the files);
* the local-view pass (student CAMs, boxes, crops, teacher scores) batched and
  one crop at a time;
* student training and prediction throughput; peak resident memory.

``--teacher RN50`` runs only the global-pass figures with open_clip's RN50
architecture at 224 px and random weights (no download): a real-sized teacher,
where the model rather than decoding dominates. Prints figures only; nothing
here is asserted. Usage::

    python benchmarks/bench_stages.py --n-images 400
    python benchmarks/bench_stages.py --teacher RN50 --n-images 64
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import warnings

import numpy as np
import torch

from ccd_estimator import CCDClassifier
from ccd_estimator._data import normalized_view, resize_to_tensor
from ccd_estimator._images import load_rgb
from ccd_estimator._teacher import Teacher, global_scores
from ccd_estimator._training import _candidate_probs, _local_scores
from ccd_estimator._views import cams_to_boxes, search_threshold
from ccd_estimator.datasets import make_shape_scenes, shapes_demo_params


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_global(teacher: Teacher, paths, size: int) -> np.ndarray:
    """The released code's pattern: decode, resize and score one image at a time."""
    view = normalized_view(size, teacher.mean, teacher.std)
    return np.concatenate([teacher.scores(view(load_rgb(p))[None]) for p in paths])


def reference_crops(clf, teacher, paths, tau, params) -> int:
    """One image through the student, then one crop at a time through the teacher."""
    size = params["cam_image_size"]
    to_tensor = resize_to_tensor(size)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    t_mean = torch.tensor(teacher.mean)[:, None, None]
    t_std = torch.tensor(teacher.std)[:, None, None]
    margin = int(round(params["crop_margin"] * size))
    n = 0
    with torch.inference_mode():
        for p in paths:
            image = to_tensor(load_rgb(p))
            cams = clf.student_.cams(((image - mean) / std)[None])[0]
            probs = torch.sigmoid(cams.mean(dim=(1, 2)))
            for c in torch.nonzero(probs >= tau).flatten().tolist():
                box = cams_to_boxes(cams[c : c + 1], (size, size), 0.9, "tight", margin)
                x0, y0, x1, y1 = box[0].tolist()
                crop = image[:, y0:y1, x0:x1][None]
                crop = torch.nn.functional.interpolate(
                    crop, size=(params["crop_size"],) * 2, mode="bilinear"
                )
                teacher.scores((crop - t_mean[None]) / t_std[None])
                n += 1
    return n


def _teacher_pass(teacher: Teacher, paths, size: int, batch_size: int) -> None:
    """Print the global-pass figures."""
    n = len(paths)
    arr = np.asarray(paths)
    # warm-up: the first call of each batch shape builds oneDNN kernels
    n_classes = teacher.text_features.shape[0]
    tail = n % batch_size or batch_size
    for part in (arr[:batch_size], arr[:tail]):
        global_scores(
            lambda: teacher, part, n_classes, size, batch_size, 0, teacher.device
        )
    reference_global(teacher, paths[:4], size)
    (batched, _, _), t_lib = _timed(
        global_scores, lambda: teacher, arr, n_classes, size, batch_size, 0,
        teacher.device,
    )  # fmt: skip
    ref, t_ref = _timed(reference_global, teacher, paths, size)
    decoded, t_decode = _timed(lambda: [load_rgb(p) for p in paths])
    view = normalized_view(size, teacher.mean, teacher.std)
    pre = torch.stack([view(image) for image in decoded])
    _, t_bare = _timed(
        lambda: [
            teacher.encode(pre[i : i + batch_size]) for i in range(0, n, batch_size)
        ]
    )
    _, t_bare1 = _timed(lambda: [teacher.encode(pre[i : i + 1]) for i in range(n)])
    print(f"teacher global pass ({n} images, batch {batch_size}):")
    print(f"  library pass           {n / t_lib:8.1f} img/s")
    print(
        f"  reference loop         {n / t_ref:8.1f} img/s   library speed-up "
        f"{t_ref / t_lib:4.1f}x (max |diff| {np.abs(batched - ref).max():.1e})"
    )
    print(
        f"  bare encode, batch {batch_size:<3} {n / t_bare:8.1f} img/s   library takes "
        f"{t_lib / t_bare:4.2f}x its time"
    )
    print(
        f"  bare encode, batch 1   {n / t_bare1:8.1f} img/s   batching alone: "
        f"{t_bare1 / t_bare:4.1f}x"
    )
    print(
        f"  decoding only          {n / t_decode:8.1f} img/s   a pass that only "
        f"decoded would be {t_ref / t_decode:4.1f}x the reference loop"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=400)
    parser.add_argument(
        "--batch-size", type=int, default=64, help="the library's inference batch"
    )
    parser.add_argument(
        "--teacher",
        default="shapes",
        choices=("shapes", "RN50"),
        help="RN50: open_clip's RN50 at 224 px, random weights, global pass only",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cpu")
    params = shapes_demo_params()
    folder = tempfile.mkdtemp(prefix="ccd-bench-")
    paths, _, names = make_shape_scenes(args.n_images, out_dir=folder, random_state=0)
    arr = np.asarray(paths)
    print(f"{args.n_images} scenes, torch threads {torch.get_num_threads()}")

    if args.teacher == "RN50":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights are the point here
            teacher = Teacher("RN50", None, names, ["a photo of the {}"], device)
        _teacher_pass(teacher, paths, 224, args.batch_size)
        print(f"peak resident memory: {_peak_rss_mb():.0f} MB")
        return

    teacher = Teacher(
        params["model_name"], params["pretrained"], names, ["a photo of the {}"], device
    )
    _teacher_pass(teacher, paths, params["teacher_image_size"], args.batch_size)
    n = len(paths)

    # student training and prediction
    clf = CCDClassifier(
        **{
            **params,
            "max_epochs": 1,
            "update_epochs": (),
            "device": "cpu",
            "inference_batch_size": args.batch_size,
            "random_state": 0,
        }
    )
    _, t_fit = _timed(clf.fit, paths)
    train_time = sum(r["seconds"] for r in clf.history_)
    print(f"student training: {n / train_time:8.1f} img/s (one epoch, clean view only)")
    _, t_pred = _timed(clf.predict_proba, paths)
    print(f"predict: {n / t_pred:8.1f} img/s")

    # local views: batched pass vs one crop at a time
    cfg = clf._train_config(lambda: teacher, [teacher], "fp32")
    probs = _candidate_probs(clf.student_, arr, cfg, device)
    tau = search_threshold(probs, params["candidate_bound"], 0.05)
    (_, _, n_crops), t_local = _timed(
        _local_scores, clf.student_, teacher, arr, probs, tau, cfg, device
    )
    n_ref, t_ref_crops = _timed(reference_crops, clf, teacher, paths, tau, params)
    print(
        f"local views: library {n_crops / t_local:8.1f} crops/s | reference loop "
        f"{n_ref / t_ref_crops:8.1f} crops/s | ratio "
        f"{(t_ref_crops / max(n_ref, 1)) / (t_local / max(n_crops, 1)):5.1f}x"
        f" ({n_crops} crops)"
    )
    print(f"peak resident memory: {_peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
