"""Cross-validation: scikit-learn's ``cross_validate`` with a teacher cache.

``CCDClassifier.fit`` ignores ``y``, so ``cross_validate`` trains each fold
without labels and uses the held-out ground truth only to score. This example
shows:

* the multi-label scorers that work out of the box: ``"average_precision"``
  (macro mAP, from ``decision_function``) and ``"f1_samples"`` (from
  ``predict`` at ``threshold``);
* the ``memory`` parameter: a ``joblib.Memory`` cache of the teacher's global
  pass, keyed per image by the teacher settings and the file's path, size and
  modification time. Every image sits in several training folds, but the
  teacher scores it once; a second cross-validation of another student setting
  reuses every row.

Run ``python examples/cross_validation.py`` (several minutes on a CPU) or add
``--quick`` (or set ``CCD_EXAMPLE_QUICK=1``) for a tiny run whose numbers mean
nothing. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import joblib
from sklearn.model_selection import KFold, cross_validate

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
        n_images = 45
        params.update(
            class_names=classes, max_epochs=2, update_epochs=(1,), consistency_start=1
        )
    else:
        classes = list(params["class_names"])
        n_images = 1500

    with tempfile.TemporaryDirectory() as folder:
        paths, Y, _ = make_shape_scenes(
            n_images, out_dir=f"{folder}/scenes", classes=classes, random_state=0
        )
        memory = joblib.Memory(location=f"{folder}/teacher_cache", verbose=0)
        cv = KFold(n_splits=3, shuffle=True, random_state=0)
        scoring = {"mAP": "average_precision", "F1": "f1_samples"}

        # two student settings; the teacher's global pass is shared through memory
        for name, overrides in [
            ("full CCD", {}),
            ("without the label update", {"update_epochs": ()}),
        ]:
            clf = CCDClassifier(
                **{**params, **overrides}, memory=memory, random_state=0
            )
            start = time.perf_counter()
            result = cross_validate(clf, paths, Y, cv=cv, scoring=scoring, n_jobs=1)
            seconds = time.perf_counter() - start
            mAP, f1 = result["test_mAP"], result["test_F1"]
            print(
                f"{name}: mAP {100 * mAP.mean():.1f} +/- {100 * mAP.std():.1f}, "
                f"F1 {100 * f1.mean():.1f} +/- {100 * f1.std():.1f} "
                f"({seconds:.1f}s for {cv.get_n_splits()} folds)"
            )
        print("cross-validation done")


if __name__ == "__main__":
    main()
