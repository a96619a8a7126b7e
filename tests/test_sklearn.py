"""CCDClassifier as a scikit-learn citizen: contract, model selection, caching.

X is a list of image paths, so ``check_estimator`` runs only the cloneability
check (the estimator's tags say ``input_tags.two_d_array=False``; scikit-learn
then emits a ``SkipTestWarning`` and skips everything else, see
``test_check_estimator_smoke``). The checks of
``sklearn.utils.estimator_checks`` that never fit on numeric data are called
directly in ``test_api_check`` (``API_CHECKS``). Every other check that
``check_estimator`` would run for an array estimator is excluded, with its
reason, in ``EXCLUDED_CHECKS`` below; ``test_excluded_checks_are_complete``
fails when a new scikit-learn adds a check that is in neither list. What the
excluded checks would have covered is tested here on generated images instead:
fit returns self, unfitted predict raises, pickling, clone, refit idempotence,
``predict_proba`` format, Pipeline and cross-validation.

Excluded checks (all fit or predict on random float matrices, which are not
image paths; ``check_paths`` rejects them, and the few that do not fail, such
as ``check_supervised_y_no_nan``, pass only vacuously):

- multilabel and classifier checks: ``check_classifiers_train``,
  ``check_classifiers_classes``, ``check_classifier_multioutput``,
  ``check_classifier_data_not_an_array``, ``check_classifiers_one_label``,
  ``check_classifiers_one_label_sample_weights``,
  ``check_classifiers_regression_target``,
  ``check_classifiers_multilabel_output_format_{predict,predict_proba,``
  ``decision_function}``, ``check_classifiers_multilabel_representation_invariance``,
  ``check_decision_proba_consistency``, ``check_supervised_y_no_nan``;
- input-validation checks about numeric X: ``check_dtype_object``,
  ``check_complex_data``, ``check_estimators_dtypes``,
  ``check_estimators_nan_inf``, ``check_estimators_empty_data_messages``,
  ``check_estimator_sparse_{array,matrix,tag}``,
  ``check_f_contiguous_array_estimator``, ``check_readonly_memmap_input``,
  ``check_positive_only_tag_during_fit``, ``check_fit1d``,
  ``check_fit2d_1sample``, ``check_fit2d_1feature``, ``check_fit2d_predict1d``,
  ``check_array_api_input``;
- fit-based API checks (covered on images here): ``check_estimators_fit_returns_self``,
  ``check_fit_score_takes_y``, ``check_estimators_overwrite_params``,
  ``check_dont_overwrite_parameters``, ``check_dict_unchanged``,
  ``check_fit_idempotent``, ``check_fit_check_is_fitted``,
  ``check_estimators_pickle``, ``check_pipeline_consistency``,
  ``check_non_transformer_estimators_n_iter``;
- ``n_features_in_`` checks (``check_n_features_in``,
  ``check_n_features_in_after_fitting``): a list of paths has no features;
- ``check_estimators_partial_fit_n_features``: there is no ``partial_fit``.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError, SkipTestWarning
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    cross_val_predict,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks as sk_checks
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from ccd_estimator import CCDClassifier
from ccd_estimator._teacher import Teacher
from tests.conftest import write_images

N_CV = 12  # images in cross-validation; colours cycle red, blue, green
COLOURS = ["red", "blue", "green"]
CV = KFold(3)  # every test fold holds every colour, positive and negative

API_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_get_params_invariance",
    "check_set_params",
    "check_parameters_default_constructible",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_valid_tag_types",
    "check_estimator_tags_renamed",
    "check_mixin_order",
    # calls predict & co. on an unfitted estimator: NotFittedError comes
    # before X is read, so numeric X does not matter
    "check_estimators_unfitted",
]

_FLOATS = "fits or predicts on random float matrices, which are not image paths"
_VACUOUS = "would pass only vacuously (nothing image-related is exercised)"
EXCLUDED_CHECKS: dict[str, str] = {
    name: _FLOATS
    for name in [
        "check_array_api_input",
        "check_classifier_data_not_an_array",
        "check_classifier_multioutput",
        "check_classifiers_classes",
        "check_classifiers_multilabel_output_format_decision_function",
        "check_classifiers_multilabel_output_format_predict",
        "check_classifiers_multilabel_output_format_predict_proba",
        "check_classifiers_multilabel_representation_invariance",
        "check_classifiers_one_label",
        "check_classifiers_regression_target",
        "check_classifiers_train",
        "check_complex_data",
        "check_decision_proba_consistency",
        "check_dict_unchanged",
        "check_dont_overwrite_parameters",
        "check_dtype_object",
        "check_estimator_sparse_array",
        "check_estimator_sparse_matrix",
        "check_estimator_sparse_tag",
        "check_estimators_dtypes",
        "check_estimators_empty_data_messages",
        "check_estimators_fit_returns_self",
        "check_estimators_nan_inf",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_fit1d",
        "check_fit2d_1feature",
        "check_fit2d_1sample",
        "check_fit2d_predict1d",
        "check_fit_check_is_fitted",
        "check_fit_idempotent",
        "check_fit_score_takes_y",
        "check_n_features_in",
        "check_pipeline_consistency",
        "check_positive_only_tag_during_fit",
        "check_readonly_memmap_input",
    ]
} | {
    "check_classifiers_one_label_sample_weights": _VACUOUS,
    "check_supervised_y_no_nan": _VACUOUS,
    "check_non_transformer_estimators_n_iter": _VACUOUS,
    "check_n_features_in_after_fitting": "a list of paths has no n_features_in_",
    "check_estimators_partial_fit_n_features": "there is no partial_fit",
}

# A valid value different from the default for every constructor parameter.
ALTERNATIVE_PARAMS: dict[str, Any] = {
    "class_names": ("cat", "dog"),
    "prompt_templates": ("a photo of a {}", "a picture of the {}"),
    "model_name": "RN50",
    "pretrained": None,
    "cache_dir": "/tmp/clip-cache",
    "precision": "fp32",
    "logit_scale": 30.0,
    "teacher_image_size": None,
    "cam_image_size": 320,
    "crop_size": None,
    "teacher_normalize": "imagenet",
    "entropy_threshold": 1.5,
    "label_floor": 0.0,
    "debias_global": False,
    "debias_local": False,
    "uncertain_weight": 0.5,
    "student": "timm:resnet18",
    "student_weights": None,
    "student_kwargs": {"drop_rate": 0.1},
    "image_size": 224,
    "cam_multiplier": 2.0,
    "learning_rate": 1e-4,
    "head_lr_multiplier": 1.0,
    "batch_size": 4,
    "inference_batch_size": 8,
    "max_epochs": 3,
    "consistency_weight": 0.0,
    "consistency_start": 0,
    "update_epochs": (1, 2),
    "candidate_bound": 2.0,
    "cam_threshold": 0.9,
    "box_mode": "tight",
    "crop_margin": 0.0,
    "aggregation": "mean",
    "blend_ratio": 0.5,
    "selection": "last",
    "threshold": 0.3,
    "memory": "/tmp/ccd-teacher-cache",
    "on_bad_image": "nan",
    "device": "cpu",
    "n_workers": 2,
    "compile": {"mode": "max-autotune"},
    "random_state": 7,
    "verbose": 1,
}


def _own_score(estimator: CCDClassifier, X: Any, y: Any) -> float:
    return estimator.score(X, y)


SCORINGS: dict[str, Any] = {
    "average_precision": "average_precision",
    "roc_auc": "roc_auc",
    "f1_samples": "f1_samples",
    "own": _own_score,  # what scoring=None uses: the estimator's score (mAP)
}


def _as_path_list(X: Any) -> list[str]:
    """Pipeline front step: any container of paths -> list of str (drops none)."""
    paths = [os.fspath(p) for p in X]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"missing images: {missing}")
    return paths


def colour_targets(n_classes: int, n: int = N_CV) -> np.ndarray:
    """Indicator matrix of the first ``n_classes`` colours of ``write_images``."""
    colour = np.arange(n) % 3
    return (colour[:, None] == np.arange(n_classes)[None, :]).astype(int)


@pytest.fixture(scope="module")
def cv_params(tiny_params):
    """One epoch, no label update: a fit takes a fraction of a second."""
    return {**tiny_params, "max_epochs": 1, "update_epochs": ()}


@pytest.fixture(scope="module")
def X_cv(images):
    return images[:N_CV]


@pytest.fixture(scope="module")
def cv_reference(cv_params, X_cv):
    """cross_validate with every scorer, for 1, 2 and 3 classes (list of str X)."""
    results = {}
    for n_classes in (1, 2, 3):
        scoring = dict(SCORINGS)
        if n_classes == 1:
            del scoring["f1_samples"]  # samplewise metrics need >= 2 columns
        est = CCDClassifier(**{**cv_params, "class_names": COLOURS[:n_classes]})
        results[n_classes] = cross_validate(
            est,
            X_cv,
            colour_targets(n_classes),
            cv=CV,
            scoring=scoring,
            error_score="raise",
        )
    return results


@pytest.fixture
def teacher_calls(monkeypatch):
    """Count Teacher loads and the rows scored by ``Teacher.scores``."""
    counts = {"loads": 0, "rows": 0}
    init, scores = Teacher.__init__, Teacher.scores

    def counting_init(self, *args, **kwargs):
        counts["loads"] += 1
        init(self, *args, **kwargs)

    def counting_scores(self, images):
        counts["rows"] += len(images)
        return scores(self, images)

    monkeypatch.setattr(Teacher, "__init__", counting_init)
    monkeypatch.setattr(Teacher, "scores", counting_scores)
    return counts


# ------------------------------------------------------------------ contract


@pytest.mark.parametrize("container", [list, tuple, np.array])
def test_clone_class_names_containers(container):
    names = container(["cat", "dog"])
    est = CCDClassifier(class_names=names, student_kwargs={"drop_rate": 0.1})
    cloned = clone(est)
    assert cloned is not est
    assert type(cloned.class_names) is type(names)
    assert list(cloned.class_names) == ["cat", "dog"]
    if not isinstance(names, tuple):  # deepcopy keeps an immutable tuple
        assert cloned.class_names is not names
    assert cloned.student_kwargs == est.student_kwargs
    assert cloned.student_kwargs is not est.student_kwargs


def test_clone_with_memory_object(tmp_path):
    memory = joblib.Memory(tmp_path, verbose=0)
    cloned = clone(CCDClassifier(class_names=["a"], memory=memory))
    assert isinstance(cloned.memory, joblib.Memory)
    assert cloned.memory.location == memory.location


def test_clone_of_fitted_is_unfitted_and_independent(fitted, cv_params, X_cv):
    P = fitted.predict_proba(X_cv)
    cloned = clone(fitted)
    with pytest.raises(NotFittedError):
        check_is_fitted(cloned)
    with pytest.raises(NotFittedError):
        cloned.predict_proba(X_cv)
    cloned.set_params(max_epochs=1, update_epochs=(), random_state=1).fit(X_cv[:6])
    assert cloned.student_ is not fitted.student_
    np.testing.assert_array_equal(fitted.predict_proba(X_cv), P)
    assert fitted.get_params()["max_epochs"] == 3


def test_get_params_lists_every_constructor_parameter():
    params = CCDClassifier().get_params()
    assert set(params) == set(ALTERNATIVE_PARAMS)
    assert params == CCDClassifier().get_params(deep=False)
    for name, value in ALTERNATIVE_PARAMS.items():
        assert params[name] != value, name  # the alternative is not the default


@pytest.mark.parametrize("name", sorted(ALTERNATIVE_PARAMS))
def test_set_params_round_trip(name):
    value = ALTERNATIVE_PARAMS[name]
    est = CCDClassifier()
    assert est.set_params(**{name: value}) is est
    assert est.get_params()[name] is value  # stored verbatim
    rebuilt = CCDClassifier(**est.get_params())
    assert rebuilt.get_params() == est.get_params()
    assert clone(est).get_params()[name] == value


def test_set_params_all_at_once():
    est = CCDClassifier().set_params(**ALTERNATIVE_PARAMS)
    assert est.get_params() == ALTERNATIVE_PARAMS
    assert clone(est).get_params() == ALTERNATIVE_PARAMS
    assert CCDClassifier(**ALTERNATIVE_PARAMS).get_params() == ALTERNATIVE_PARAMS
    with pytest.raises(ValueError, match="Invalid parameter 'colour'"):
        est.set_params(colour="red")


def test_is_classifier():
    est = CCDClassifier(class_names=["a"])
    assert is_classifier(est)
    assert is_classifier(Pipeline([("paths", FunctionTransformer()), ("ccd", est)]))
    assert get_tags(est).estimator_type == "classifier"


def test_tags():
    tags = get_tags(CCDClassifier(class_names=["a"]))
    assert tags.estimator_type == "classifier"
    assert tags.requires_fit
    assert tags.non_deterministic
    assert not tags.input_tags.two_d_array
    assert tags.input_tags.string
    assert not tags.input_tags.sparse
    assert not tags.target_tags.required  # unsupervised: fit(X) works
    assert tags.target_tags.two_d_labels
    assert tags.target_tags.multi_output
    assert not tags.target_tags.single_output
    assert tags.classifier_tags is not None
    assert tags.classifier_tags.multi_label
    assert tags.regressor_tags is None and tags.transformer_tags is None
    assert CCDClassifier().__sklearn_tags__() == tags


def test_repr_and_repr_html(fitted):
    est = CCDClassifier(class_names=["cat", "dog"], max_epochs=2)
    text = repr(est)
    assert text.startswith("CCDClassifier(") and "max_epochs=2" in text
    for obj in (est, fitted, Pipeline([("ccd", est)])):
        html = obj._repr_html_()
        assert isinstance(html, str) and "CCDClassifier" in html


def test_check_estimator_smoke():
    est = CCDClassifier(class_names=["a"])
    with pytest.warns(SkipTestWarning, match="Can't test estimator CCDClassifier"):
        results = sk_checks.check_estimator(est, on_fail=None)
    # two_d_array=False: scikit-learn runs exactly the cloneability check
    assert [r["check_name"] for r in results] == ["check_estimator_cloneable"]
    assert results[0]["status"] == "passed"


@pytest.mark.parametrize("check_name", API_CHECKS)
def test_api_check(check_name):
    check = getattr(sk_checks, check_name)
    est = CCDClassifier(class_names=["cat", "dog"], device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkipTestWarning)
        check(type(est).__name__, est)


class _ArrayTagged(CCDClassifier):
    """Tags of an array estimator: makes scikit-learn list all its checks."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


def test_excluded_checks_are_complete():
    est = _ArrayTagged(class_names=["a"])
    names = {
        getattr(check, "func", check).__name__
        for _, check in sk_checks.estimator_checks_generator(est, mark=None)
    }
    unclassified = names - set(API_CHECKS) - set(EXCLUDED_CHECKS)
    assert not unclassified, f"classify these new checks: {sorted(unclassified)}"
    assert not set(API_CHECKS) & set(EXCLUDED_CHECKS)
    stale = set(EXCLUDED_CHECKS) - names
    assert not stale, f"no longer run by scikit-learn: {sorted(stale)}"


# ----------------------------------------------------------- model selection


def test_pipeline_with_path_step(cv_params, X_cv, cv_reference):
    Y = colour_targets(3)
    pipe = Pipeline(
        [
            ("paths", FunctionTransformer(_as_path_list)),
            ("ccd", CCDClassifier(**cv_params)),
        ]
    )
    X = np.array([Path(p) for p in X_cv], dtype=object)
    assert pipe.fit(X, Y) is pipe
    direct = CCDClassifier(**cv_params).fit(X_cv)
    np.testing.assert_array_equal(pipe.predict_proba(X), direct.predict_proba(X_cv))
    assert pipe.score(X, Y) == direct.score(X_cv, Y)
    scores = cross_val_score(pipe, X, Y, cv=CV, scoring="average_precision")
    np.testing.assert_array_equal(scores, cv_reference[3]["test_average_precision"])


@pytest.mark.parametrize("n_classes", [1, 2, 3])
def test_cross_validate_scores(cv_reference, n_classes):
    result = cv_reference[n_classes]
    keys = [k for k in result if k.startswith("test_")]
    expected = {"test_average_precision", "test_roc_auc", "test_own"}
    if n_classes > 1:
        expected.add("test_f1_samples")
    assert set(keys) == expected
    for key in keys:
        values = result[key]
        assert values.shape == (3,) and np.isfinite(values).all(), key
        assert ((values >= 0) & (values <= 1)).all(), key
    # every class is present in every test fold: score() is the macro AP scorer
    np.testing.assert_allclose(
        result["test_own"], result["test_average_precision"], rtol=1e-12
    )


@pytest.mark.parametrize(
    "n_classes, scoring",
    [
        (n, scoring)
        for n in (1, 2, 3)
        for scoring in ("average_precision", "roc_auc", "f1_samples", None)
        # f1_samples with one class: see test_f1_samples_is_not_applicable...
        if not (n == 1 and scoring == "f1_samples")
    ],
)
def test_cross_val_score(cv_params, X_cv, cv_reference, n_classes, scoring):
    est = CCDClassifier(**{**cv_params, "class_names": COLOURS[:n_classes]})
    scores = cross_val_score(
        est,
        X_cv,
        colour_targets(n_classes),
        cv=CV,
        scoring=scoring,
        error_score="raise",
    )
    key = "test_own" if scoring is None else f"test_{scoring}"
    np.testing.assert_array_equal(scores, cv_reference[n_classes][key])


def test_f1_samples_is_not_applicable_to_one_class(cv_params, X_cv):
    # with one column, y is binary, not multilabel; sample-averaged F1 is
    # undefined and scikit-learn says so (use "f1" for a single label)
    est = CCDClassifier(**{**cv_params, "class_names": ["red"]})
    Y = colour_targets(1)
    with pytest.raises(ValueError, match="Samplewise metrics are not available"):
        cross_val_score(est, X_cv, Y, cv=CV, scoring="f1_samples", error_score="raise")
    scores = cross_val_score(est, X_cv, Y.ravel(), cv=CV, scoring="f1")
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("container", ["list_path", "object_array", "series"])
def test_x_containers_give_the_same_scores(cv_params, X_cv, cv_reference, container):
    X = {
        "list_path": [Path(p) for p in X_cv],
        "object_array": np.array(X_cv, dtype=object),
        "series": pd.Series(X_cv, index=np.arange(100, 100 + N_CV)),
    }[container]
    scores = cross_val_score(
        CCDClassifier(**cv_params),
        X,
        colour_targets(3),
        cv=CV,
        scoring="average_precision",
        error_score="raise",
    )
    np.testing.assert_array_equal(scores, cv_reference[3]["test_average_precision"])
    assert CCDClassifier(**cv_params).fit(X).train_paths_.tolist() == X_cv


@pytest.mark.parametrize("method", ["predict_proba", "decision_function"])
def test_cross_val_predict_scores_with_y(cv_params, X_cv, method):
    P = cross_val_predict(
        CCDClassifier(**cv_params), X_cv, colour_targets(3), cv=CV, method=method
    )
    assert P.shape == (N_CV, 3)


@pytest.mark.parametrize("n_classes", [1, 2, 3])
def test_cross_val_predict_shape(cv_params, X_cv, n_classes):
    est = CCDClassifier(**{**cv_params, "class_names": COLOURS[:n_classes]})
    # y=None works today (fit ignores y) and does not touch classes_
    P = cross_val_predict(est, X_cv, None, cv=CV, method="predict_proba")
    assert P.shape == (N_CV, n_classes) and P.dtype == np.float64
    assert ((P >= 0) & (P <= 1)).all()
    pred = cross_val_predict(est, X_cv, colour_targets(n_classes), cv=CV)
    assert pred.shape == (N_CV, n_classes)
    np.testing.assert_array_equal(pred, (P >= 0.5).astype(int))


def test_grid_search_n_jobs_2_shares_the_teacher_cache(
    cv_params, X_cv, tmp_path, teacher_calls
):
    cache = str(tmp_path / "teacher-cache")
    search = GridSearchCV(
        CCDClassifier(**{**cv_params, "memory": cache}),
        {"threshold": [0.3, 0.7]},
        cv=KFold(2),
        scoring="f1_samples",
        n_jobs=2,
        refit=False,
        error_score="raise",
    )
    search.fit(X_cv, colour_targets(3))
    assert len(search.cv_results_["params"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["threshold"] in (0.3, 0.7)
    # the two worker processes wrote every image's row to the shared cache
    teacher_calls.update(loads=0, rows=0)
    CCDClassifier(**{**cv_params, "memory": cache}).fit(X_cv)
    assert teacher_calls == {"loads": 0, "rows": 0}


def test_grid_search_refit(cv_params, X_cv):
    search = GridSearchCV(
        CCDClassifier(**cv_params),
        {"threshold": [0.3, 0.7]},
        cv=KFold(2),
        scoring="f1_samples",
        error_score="raise",
    ).fit(X_cv, colour_targets(3))
    assert search.predict(X_cv).shape == (N_CV, 3)
    assert search.best_estimator_.threshold == search.best_params_["threshold"]


# ----------------------------------------------------------- reproducibility


def test_refit_and_clone_refit_are_identical(cv_params, X_cv):
    est = CCDClassifier(**cv_params).fit(X_cv)
    P = est.predict_proba(X_cv)
    state = {k: v.clone() for k, v in est.student_.state_dict().items()}
    assert est.fit(X_cv) is est  # fit again on the same object
    np.testing.assert_array_equal(est.predict_proba(X_cv), P)
    for k, v in est.student_.state_dict().items():
        assert torch.equal(v, state[k]), k
    np.testing.assert_array_equal(clone(est).fit(X_cv).predict_proba(X_cv), P)
    other = CCDClassifier(**{**cv_params, "random_state": 1}).fit(X_cv)
    assert not np.array_equal(other.predict_proba(X_cv), P)


def test_random_state_instance_is_not_consumed_by_clone(cv_params, X_cv):
    # a RandomState parameter is deep-copied by clone, so clones fit alike
    est = CCDClassifier(**{**cv_params, "random_state": np.random.RandomState(3)})
    a = clone(est).fit(X_cv[:6]).predict_proba(X_cv[:6])
    b = clone(est).fit(X_cv[:6]).predict_proba(X_cv[:6])
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------- persistence


def test_unfitted_estimator_pickles():
    est = CCDClassifier(
        class_names=np.array(["cat", "dog"]), student_kwargs={"drop_rate": 0.1}
    )
    for loaded in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        assert set(loaded.get_params()) == set(est.get_params())
        assert loaded.class_names.tolist() == ["cat", "dog"]
        with pytest.raises(NotFittedError):
            check_is_fitted(loaded)


def test_pickle_dumps_before_and_after_fit(cv_params, X_cv, tmp_path):
    est = CCDClassifier(**{**cv_params, "memory": joblib.Memory(tmp_path)})
    pickle.dumps(est)
    est.fit(X_cv[:6])
    blob = pickle.dumps(est)  # fails on a stored lambda or local function
    for value in vars(est).values():
        qualname = getattr(value, "__qualname__", "")
        assert "<lambda>" not in qualname and "<locals>" not in qualname
    loaded = pickle.loads(blob)
    np.testing.assert_array_equal(
        loaded.predict_proba(X_cv[:6]), est.predict_proba(X_cv[:6])
    )


_SPAWN_SCRIPT = textwrap.dedent(
    """
    import ast
    import multiprocessing
    import pickle
    import sys


    def main():
        multiprocessing.set_start_method("spawn", force=True)
        from ccd_estimator import CCDClassifier

        params = ast.literal_eval(sys.argv[1])
        paths = ast.literal_eval(sys.argv[2])
        est = CCDClassifier(**params).fit(paths)  # global pass and one epoch
        est = pickle.loads(pickle.dumps(est))
        print("OK", est.pseudo_labels_.shape)


    if __name__ == "__main__":
        main()
    """
)


@pytest.mark.slow
def test_fit_with_spawned_workers(cv_params, X_cv, tmp_path):
    # case C06: DataLoader workers started by "spawn" (Windows, macOS) must be
    # able to unpickle the dataset and its transforms. Slow: each DataLoader
    # pass starts 2 fresh interpreters that import torch and ccd_estimator.
    script = tmp_path / "spawn_fit.py"
    script.write_text(_SPAWN_SCRIPT)
    params = {**cv_params, "n_workers": 2, "update_epochs": ()}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script), repr(params), repr(X_cv[:6])],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK (6, 3)" in out.stdout


# ---------------------------------------------------------- teacher caching


def test_second_fit_with_same_memory_computes_nothing(
    cv_params, X_cv, tmp_path, teacher_calls, caplog
):
    caplog.set_level(logging.INFO, logger="ccd_estimator._teacher")
    params = {**cv_params, "memory": str(tmp_path / "cache")}
    first = CCDClassifier(**params).fit(X_cv)
    assert teacher_calls == {"loads": 1, "rows": N_CV}
    assert f"0 of {N_CV} rows cached" in caplog.text
    caplog.clear()
    second = CCDClassifier(**params).fit(X_cv)
    assert teacher_calls == {"loads": 1, "rows": N_CV}  # unchanged: no teacher
    assert f"{N_CV} of {N_CV} rows cached" in caplog.text
    np.testing.assert_array_equal(second.teacher_scores_, first.teacher_scores_)
    np.testing.assert_array_equal(
        second.initial_pseudo_labels_, first.initial_pseudo_labels_
    )


def test_cache_is_per_image_and_sees_changed_files(cv_params, tmp_path, teacher_calls):
    (tmp_path / "imgs").mkdir()
    paths = write_images(tmp_path / "imgs", 8, seed=5)
    params = {**cv_params, "memory": joblib.Memory(tmp_path / "cache", verbose=0)}
    full = CCDClassifier(**params).fit(paths)
    assert teacher_calls["rows"] == 8

    # a subset of cached images: nothing new to compute
    subset = paths[1:6]
    part = CCDClassifier(**params).fit(subset)
    assert teacher_calls["rows"] == 8
    np.testing.assert_array_equal(part.teacher_scores_, full.teacher_scores_[1:6])

    # rewrite one image: new content, size and modification time
    changed = paths[2]
    st = os.stat(changed)
    Image.fromarray(np.full((40, 56, 3), 200, np.uint8)).save(changed)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = CCDClassifier(**params).fit(subset)
    assert teacher_calls["rows"] == 9  # only the changed file was scored
    assert not np.array_equal(again.teacher_scores_[1], full.teacher_scores_[2])
    np.testing.assert_array_equal(
        np.delete(again.teacher_scores_, 1, axis=0),
        np.delete(full.teacher_scores_[1:6], 1, axis=0),
    )


def test_cache_key_includes_teacher_settings(cv_params, X_cv, tmp_path, teacher_calls):
    params = {**cv_params, "memory": str(tmp_path / "cache")}
    CCDClassifier(**params).fit(X_cv[:6])
    CCDClassifier(**{**params, "logit_scale": 10.0}).fit(X_cv[:6])
    CCDClassifier(**{**params, "class_names": ["red", "blue"]}).fit(X_cv[:6])
    assert teacher_calls["rows"] == 18  # each setting scored its own rows
    student_only = {"threshold": 0.2, "learning_rate": 1e-3, "image_size": 48}
    CCDClassifier(**{**params, **student_only}).fit(X_cv[:6])
    assert teacher_calls["rows"] == 18  # student settings reuse the rows


def test_cached_and_uncached_fits_give_identical_pseudo_labels(
    tiny_params, X_cv, tmp_path
):
    params = {**tiny_params, "max_epochs": 2, "update_epochs": (1,)}
    plain = CCDClassifier(**params).fit(X_cv)
    cached = {**params, "memory": str(tmp_path / "cache")}
    cold = CCDClassifier(**cached).fit(X_cv)
    warm = CCDClassifier(**cached).fit(X_cv)
    for est in (cold, warm):
        for name in (
            "teacher_scores_",
            "confident_",
            "bias_",
            "initial_pseudo_labels_",
        ):
            np.testing.assert_array_equal(getattr(est, name), getattr(plain, name))
    # a cold cache runs the same global pass as no cache: identical to the end
    np.testing.assert_array_equal(cold.pseudo_labels_, plain.pseudo_labels_)
    np.testing.assert_array_equal(cold.predict_proba(X_cv), plain.predict_proba(X_cv))


@pytest.mark.parametrize("max_epochs", [1, 2])
def test_warm_cache_fit_is_identical_to_uncached(
    tiny_params, X_cv, tmp_path, max_epochs
):
    # with one epoch there is no label update, so a warm fit never loads the teacher
    updates = (1,) if max_epochs > 1 else ()
    params = {**tiny_params, "max_epochs": max_epochs, "update_epochs": updates}
    plain = CCDClassifier(**params).fit(X_cv)
    cached = {**params, "memory": str(tmp_path / "cache")}
    CCDClassifier(**cached).fit(X_cv)
    warm = CCDClassifier(**cached).fit(X_cv)
    np.testing.assert_array_equal(warm.pseudo_labels_, plain.pseudo_labels_)
    np.testing.assert_array_equal(warm.predict_proba(X_cv), plain.predict_proba(X_cv))


def test_cross_validate_scores_each_image_once_with_memory(
    cv_params, X_cv, tmp_path, teacher_calls
):
    Y = colour_targets(3)
    cross_val_score(CCDClassifier(**cv_params), X_cv, Y, cv=CV)
    assert teacher_calls["rows"] == 3 * (N_CV * 2 // 3)  # each fold's train set
    teacher_calls["rows"] = 0
    est = CCDClassifier(**{**cv_params, "memory": str(tmp_path / "cache")})
    scores = cross_val_score(est, X_cv, Y, cv=CV)
    assert teacher_calls["rows"] == N_CV  # each image once
    assert np.isfinite(scores).all()


def test_cross_validate_with_memory_gives_the_same_scores(
    cv_params, X_cv, tmp_path, cv_reference
):
    # the third fold finds all its rows cached
    est = CCDClassifier(**{**cv_params, "memory": str(tmp_path / "cache")})
    scores = cross_val_score(
        est, X_cv, colour_targets(3), cv=CV, scoring="average_precision"
    )
    np.testing.assert_array_equal(scores, cv_reference[3]["test_average_precision"])
