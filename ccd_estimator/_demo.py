"""`ccd demo`: the method's ablation on the embedded shapes benchmark, offline.

Generates train and test scenes, fits CCDClassifier with the shipped teacher in
the configurations of the paper's ablation, and prints one table on the test
split plus the pseudo-label quality on the train split.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch
from sklearn.metrics import average_precision_score, f1_score

from ccd_estimator._data import resize_to_tensor
from ccd_estimator._estimator import CCDClassifier
from ccd_estimator._images import load_rgb
from ccd_estimator._teacher import Teacher, global_scores
from ccd_estimator._views import aggregate_crop_scores, crop_groups

__all__ = ["run_demo", "ablation_rows"]

logger = logging.getLogger(__name__)

DEMO_N_TRAIN = 1600
DEMO_N_TEST = 500


def ablation_rows(params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The student rows of the ablation, each as parameter overrides."""
    full_updates = tuple(params["update_epochs"])
    return [
        (
            "student, global pseudo-labels",
            dict(debias_global=False, update_epochs=(), consistency_weight=0.0),
        ),
        ("+ debiasing", dict(update_epochs=(), consistency_weight=0.0)),
        (
            "+ CAM-guided label update",
            dict(update_epochs=full_updates, consistency_weight=0.0),
        ),
        ("+ consistency (full CCD)", dict(update_epochs=full_updates)),
    ]


def _map(Y: np.ndarray, P: np.ndarray) -> float:
    keep = Y.any(axis=0)
    return 100.0 * float(average_precision_score(Y[:, keep], P[:, keep]))


def _f1(Y: np.ndarray, P: np.ndarray, threshold: float = 0.5) -> float:
    pred = (P >= threshold).astype(int)
    return 100.0 * float(f1_score(Y, pred, average="samples", zero_division=0))


def _teacher(params: dict[str, Any]) -> Teacher:
    return Teacher(
        params["model_name"],
        params["pretrained"],
        list(params["class_names"]),
        list(params.get("prompt_templates", ("a photo of the {}",))),
        torch.device("cpu"),
        logit_scale=params.get("logit_scale"),
    )


def _oracle_local_scores(
    teacher: Teacher,
    paths: list[str],
    boxes: list[list[tuple[int, int, int, int, int]]],
    params: dict[str, Any],
) -> np.ndarray:
    """Teacher scores, max over crops around each true object (the ceiling)."""
    size = params["cam_image_size"]
    to_tensor = resize_to_tensor(size)
    mean = torch.tensor(teacher.mean)[None, :, None, None]
    std = torch.tensor(teacher.std)[None, :, None, None]
    image_index, crop_scores = [], []
    for start in range(0, len(paths), 64):
        chunk = range(start, min(start + 64, len(paths)))
        rgb = [load_rgb(paths[i]) for i in chunk]
        images = torch.stack([to_tensor(im) for im in rgb])
        owner, rects = [], []
        for j, i in enumerate(chunk):
            w, h = rgb[j].size
            margin = params["crop_margin"] * size
            for _, x0, y0, x1, y1 in boxes[i]:
                sx, sy = size / w, size / h
                rects.append(
                    [
                        max(0, int(x0 * sx - margin)),
                        max(0, int(y0 * sy - margin)),
                        min(size, int(np.ceil(x1 * sx + margin))),
                        min(size, int(np.ceil(y1 * sy + margin))),
                    ]
                )
                owner.append(j)
        owner_t = torch.as_tensor(owner)
        for crops, members in crop_groups(
            images, owner_t, torch.as_tensor(rects), params["crop_size"], 32
        ):
            crop_scores.append(teacher.scores((crops - mean) / std))
            image_index.append(np.asarray(chunk)[owner_t[members].numpy()])
    local, _ = aggregate_crop_scores(
        len(paths), np.concatenate(image_index), np.concatenate(crop_scores)
    )
    return local


def _format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'configuration':<40} {'test mAP':>9} {'test F1':>8} {'pseudo mAP':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        pseudo = "" if r["pseudo_map"] is None else f"{r['pseudo_map']:.1f}"
        lines.append(f"{r['name']:<40} {r['map']:>9.1f} {r['f1']:>8.1f} {pseudo:>11}")
    return "\n".join(lines)


def run_demo(
    out_dir: str | os.PathLike = "ccd_demo_output",
    *,
    quick: bool = False,
    random_state: int = 0,
    verbose: int = 1,
) -> dict[str, Any]:
    """Run the ablation of CCD on the embedded shapes benchmark.

    Parameters
    ----------
    out_dir : str or os.PathLike, default="ccd_demo_output"
        Where scenes, the cache, ``results.json``, ``results.md`` and
        ``explanations.png`` go.
    quick : bool, default=False
        A much smaller run (for tests and a first look); its numbers are not
        meaningful.
    random_state : int, default=0
        Seed of the scenes and of every fit.
    verbose : int, default=1
        Progress bars and the table when at least 1.

    Returns
    -------
    dict
        ``rows`` (name, test mAP, test F1, pseudo-label mAP on train), the
        teacher figures, timings and the paths written.
    """
    from ccd_estimator.datasets import make_shape_scenes, shapes_demo_params

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = shapes_demo_params()
    n_train, n_test = (120, 60) if quick else (DEMO_N_TRAIN, DEMO_N_TEST)
    if quick:
        params.update(max_epochs=3, update_epochs=(1,), consistency_start=1)
    train_paths, Y_train, names = make_shape_scenes(
        n_train, out_dir=out / "train", random_state=random_state
    )
    test_paths, Y_test, _, test_boxes = make_shape_scenes(
        n_test, out_dir=out / "test", random_state=random_state + 1, return_boxes=True
    )
    assert list(names) == list(params["class_names"])
    memory = joblib.Memory(out / "teacher_cache", verbose=0)

    # the teacher on the test split: global view and oracle local views
    teacher = _teacher(params)
    test_global, _, _ = global_scores(
        lambda: teacher,
        np.asarray(test_paths),
        len(names),
        params["teacher_image_size"],
        64,
        0,
        torch.device("cpu"),
        verbose=verbose,
    )
    oracle = _oracle_local_scores(teacher, test_paths, test_boxes, params)
    rows: list[dict[str, Any]] = [
        {
            "name": "teacher, global zero-shot",
            "map": _map(Y_test, test_global),
            "f1": _f1(Y_test, test_global),
            "pseudo_map": None,
        }
    ]
    fitted = None
    for name, overrides in ablation_rows(params):
        t0 = time.perf_counter()
        clf = CCDClassifier(
            **{**params, **overrides},
            memory=memory,
            random_state=random_state,
            verbose=verbose,
        )
        clf.fit(train_paths)
        P = clf.predict_proba(test_paths)
        rows.append(
            {
                "name": name,
                "map": _map(Y_test, P),
                "f1": _f1(Y_test, P),
                "pseudo_map": _map(Y_train, np.asarray(clf.pseudo_labels_)),
                "seconds": time.perf_counter() - t0,
                "history": clf.history_,
                "selected_epoch": clf.selected_epoch_,
            }
        )
        if verbose:
            print(
                f"{name}: test mAP {rows[-1]['map']:.1f} ({rows[-1]['seconds']:.0f}s)"
            )
        fitted = clf
    rows.append(
        {
            "name": "ceiling: teacher on oracle local views",
            "map": _map(Y_test, oracle),
            "f1": _f1(Y_test, oracle),
            "pseudo_map": None,
        }
    )
    raw_train = fitted.teacher_scores_ if fitted is not None else None
    result: dict[str, Any] = {
        "rows": rows,
        "train_teacher_global_map": None
        if raw_train is None
        else _map(Y_train, raw_train),
        "n_train": n_train,
        "n_test": n_test,
        "quick": quick,
        "random_state": random_state,
    }
    figure = _save_figure(fitted, test_paths[:4], names, out)
    result["figure"] = figure
    result["seconds"] = time.perf_counter() - start
    table = _format_table(rows)
    (out / "results.md").write_text(
        f"```\n{table}\n```\n\nTrain-split teacher global mAP: "
        f"{result['train_teacher_global_map']:.1f}. Total time "
        f"{result['seconds']:.0f}s.\n",
        encoding="utf-8",
    )
    (out / "results.json").write_text(json.dumps(result, indent=1, default=float))
    if verbose:
        print()
        print(table)
        print(
            "\npseudo mAP: mAP of the final pseudo-labels against the train ground "
            "truth; F1 (samples) at 0.5."
        )
        print(f"figure: {figure}\ntotal {result['seconds']:.0f}s")
    return result


def _save_figure(
    clf: CCDClassifier | None, paths: list[str], names: list[str], out: Path
) -> str | None:
    """Explanations of a few test scenes, if matplotlib is installed."""
    if clf is None:
        return None
    try:
        from ccd_estimator.plotting import plot_explanations, save_figure
    except ImportError:  # plotting is an optional extra
        logger.warning("matplotlib is not installed: no figure written")
        return None
    fig = plot_explanations(clf.explain(paths), names)
    path = out / "explanations.png"
    save_figure(fig, path, force=True)
    return str(path)
