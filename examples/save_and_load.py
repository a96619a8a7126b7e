"""Persistence: joblib/pickle for your own use, ``save``/``load`` for sharing.

A fitted ``CCDClassifier`` keeps only the student (and the fitted arrays such
as the pseudo-labels); the CLIP teacher is a fit-time tool and is not stored.
Two ways to keep a fitted model:

* ``joblib.dump`` / ``pickle``: the usual scikit-learn way, works inside
  pipelines and grid searches. The student's weights are stored as CPU tensors,
  so a model fitted on a GPU loads on a CPU-only machine. Loading a pickle can
  run arbitrary code: only load pickles you made yourself or fully trust.
* ``clf.save(path)`` / ``CCDClassifier.load(path)``: one safetensors file (the
  weights and arrays as tensors, the parameters and class names as JSON). Loading
  never unpickles anything, so it is the format to share models with people who
  should not have to trust you.

Both give identical predictions, as this example checks. Run
``python examples/save_and_load.py`` or add ``--quick`` (or set
``CCD_EXAMPLE_QUICK=1``) for a tiny run. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import joblib
import numpy as np

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
        n_train, n_test = 40, 10
        params.update(
            class_names=classes, max_epochs=2, update_epochs=(1,), consistency_start=1
        )
    else:
        classes = list(params["class_names"])
        n_train, n_test = 600, 100

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train_paths, _, _ = make_shape_scenes(
            n_train, out_dir=folder / "train", classes=classes, random_state=0
        )
        test_paths, _, _ = make_shape_scenes(
            n_test, out_dir=folder / "test", classes=classes, random_state=1
        )
        clf = CCDClassifier(**params, random_state=0).fit(train_paths)
        P = clf.predict_proba(test_paths)

        # 1. joblib (pickle): for your own use, and for scikit-learn tooling
        joblib.dump(clf, folder / "tagger.joblib")
        from_joblib = joblib.load(folder / "tagger.joblib")
        same = np.allclose(from_joblib.predict_proba(test_paths), P, atol=1e-6)
        size = (folder / "tagger.joblib").stat().st_size
        print(f"joblib: {size / 1e6:.2f} MB, identical predictions: {same}")

        # 2. save/load: a safetensors file; loading never unpickles
        clf.save(folder / "tagger.safetensors")
        loaded = CCDClassifier.load(folder / "tagger.safetensors")
        same = np.allclose(loaded.predict_proba(test_paths), P, atol=1e-6)
        size = (folder / "tagger.safetensors").stat().st_size
        print(f"save/load: {size / 1e6:.2f} MB, identical predictions: {same}")

        # the loaded estimator keeps its parameters, classes and fitted arrays
        print(f"class names: {list(loaded.class_names_)}")
        print(f"selected epoch: {loaded.selected_epoch_}")
        print(f"pseudo-labels: {loaded.pseudo_labels_.shape}")
        print(f"teacher used: {loaded.teacher_info_['model_name']}")
        # and predicts on any device; the teacher is not needed to predict
        loaded.set_params(device="cpu")
        print(f"predictions on the CPU: {loaded.predict(test_paths[:3]).tolist()}")


if __name__ == "__main__":
    main()
