"""Grid search: tune CCD's settings with ``GridSearchCV`` on a labelled subset.

Training is annotation-free, but choosing hyper-parameters by a score needs
ground truth. When you hold a small labelled set, ``GridSearchCV`` works as
for any scikit-learn classifier: each candidate is fitted on the training folds
(without their labels) and scored on the held-out fold. This example searches
over the box rule of the local views (``box_mode``: the released code's
first/last-pixel box or the tight box of the hot CAM region) and the weight of
the old label in the update (``blend_ratio``), with a shared ``memory`` cache so
the teacher scores each image once for the whole search.

Use ``n_jobs=1`` with a GPU: parallel jobs are separate processes that each
load a teacher and a student onto the same device.

Run ``python examples/grid_search.py`` (tens of minutes on a CPU) or add
``--quick`` (or set ``CCD_EXAMPLE_QUICK=1``) for a tiny run whose numbers mean
nothing. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import joblib
from sklearn.model_selection import GridSearchCV, KFold

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
        classes = list(SHAPE_CLASSES[:4])
        n_images, n_splits = 40, 2
        params.update(
            class_names=classes, max_epochs=2, update_epochs=(1,), consistency_start=1
        )
        grid = {"box_mode": ["reference", "tight"]}
    else:
        classes = list(params["class_names"])
        n_images, n_splits = 900, 3
        grid = {"box_mode": ["reference", "tight"], "blend_ratio": [0.2, 0.5]}

    with tempfile.TemporaryDirectory() as folder:
        paths, Y, _ = make_shape_scenes(
            n_images, out_dir=f"{folder}/scenes", classes=classes, random_state=0
        )
        memory = joblib.Memory(location=f"{folder}/teacher_cache", verbose=0)
        clf = CCDClassifier(**params, memory=memory, random_state=0)
        search = GridSearchCV(
            clf,
            grid,
            scoring="average_precision",
            cv=KFold(n_splits=n_splits, shuffle=True, random_state=0),
            n_jobs=1,  # one process: a GPU is not shared between jobs
            refit=True,  # refit the best setting on all images (still label-free)
        )
        search.fit(paths, Y)

        results = search.cv_results_
        for rank, mean, std, candidate in sorted(
            zip(
                results["rank_test_score"],
                results["mean_test_score"],
                results["std_test_score"],
                results["params"],
                strict=True,
            ),
            key=lambda row: row[0],
        ):
            print(f"#{rank} mAP {100 * mean:.1f} +/- {100 * std:.1f}  {candidate}")
        print(f"best parameters: {search.best_params_}")
        best = search.best_estimator_
        print(f"best estimator fitted on {len(best.train_paths_)} images")


if __name__ == "__main__":
    main()
