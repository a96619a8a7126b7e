"""Quickstart: tag images without annotation and evaluate against ground truth.

This example shows the whole workflow of ``CCDClassifier`` offline, on the
embedded benchmark of coloured shapes:

1. generate labelled scenes with ``make_shape_scenes`` (the labels are used only
   for evaluation, never for training);
2. fit ``CCDClassifier`` on the training image paths alone, with the small CLIP
   teacher that ships with the package (``shapes_demo_params``);
3. predict independent per-class probabilities on test images;
4. score them with scikit-learn's ``average_precision_score`` (macro mAP).

Run ``python examples/quickstart.py`` for the full example (a few minutes on a
laptop CPU) or ``python examples/quickstart.py --quick`` (or set
``CCD_EXAMPLE_QUICK=1``) for a tiny run of a few seconds whose numbers mean
nothing. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from sklearn.metrics import average_precision_score, f1_score

from ccd_estimator import CCDClassifier
from ccd_estimator.datasets import (
    SHAPE_CLASSES,
    make_shape_scenes,
    shapes_demo_params,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("CCD_EXAMPLE_QUICK", "") not in ("", "0"),
        help="a tiny run for smoke tests (also: CCD_EXAMPLE_QUICK=1)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    params = shapes_demo_params()
    if args.quick:
        # a few classes, a few images, two epochs with one label update
        classes = list(SHAPE_CLASSES[:4])
        n_train, n_test = 40, 20
        params.update(
            class_names=classes, max_epochs=2, update_epochs=(1,), consistency_start=1
        )
    else:
        classes = list(params["class_names"])
        n_train, n_test = 2000, 500

    with tempfile.TemporaryDirectory() as folder:
        # 1. data: image paths plus an indicator matrix we keep for evaluation
        train_paths, _, names = make_shape_scenes(
            n_train, out_dir=f"{folder}/train", classes=classes, random_state=0
        )
        test_paths, Y_test, _ = make_shape_scenes(
            n_test, out_dir=f"{folder}/test", classes=classes, random_state=1
        )
        print(f"{len(train_paths)} training scenes, {len(test_paths)} test scenes")
        print(f"classes: {', '.join(names)}")

        # 2. fit on paths only: no labels
        clf = CCDClassifier(**params, random_state=0, verbose=0)
        start = time.perf_counter()
        clf.fit(train_paths)
        print(f"fitted in {time.perf_counter() - start:.1f}s on {clf.device_}")
        print(f"teacher: {clf.teacher_info_['model_name']}")
        print(f"class bias: {np.round(clf.bias_, 3)}")
        print(f"selected epoch (no ground truth): {clf.selected_epoch_}")

        # 3. predict: (n_images, n_classes) independent sigmoid probabilities
        P = clf.predict_proba(test_paths)
        print(f"predict_proba shape: {P.shape}")

        # 4. evaluate with scikit-learn, skipping classes absent from the test set
        present = Y_test.any(axis=0)
        ap = average_precision_score(Y_test[:, present], P[:, present])
        f1 = f1_score(
            Y_test, clf.predict(test_paths), average="samples", zero_division=0
        )
        print(f"test mAP: {100 * ap:.1f}")
        print(f"test F1 (samples, threshold {clf.threshold}): {100 * f1:.1f}")
        print(f"score() (the same mAP): {100 * clf.score(test_paths, Y_test):.1f}")


if __name__ == "__main__":
    main()
