"""End to end: fit, predict, score, persistence, validation, degenerate data."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
import warnings

import joblib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from ccd_estimator import (
    BadImagesWarning,
    CCDClassifier,
    DeviceWarning,
    UnreadableImagesError,
)
from tests.conftest import write_images


def test_fit_sets_documented_attributes(fitted, images):
    n, c = len(images), 3
    assert fitted.class_names_.tolist() == ["red", "blue", "green"]
    assert fitted.classes_.tolist() == [[0, 1]] * c
    assert fitted.teacher_scores_.shape == (n, c)
    np.testing.assert_allclose(fitted.teacher_scores_.sum(axis=1), 1.0, atol=1e-5)
    assert fitted.bias_.shape == (c,) and np.isfinite(fitted.bias_).all()
    assert fitted.initial_pseudo_labels_.shape == (n, c)
    assert fitted.pseudo_labels_.shape == (n, c)
    assert set(fitted.pseudo_label_stages_) == {"initial", "update_1"}
    assert fitted.n_iter_ == 3 and len(fitted.history_) == 3
    assert "threshold" in fitted.history_[1] and "threshold" not in fitted.history_[0]
    assert fitted.history_[1]["crops_per_image"] > 0
    assert 0 <= fitted.selected_epoch_ < 3
    assert fitted.teacher_info_["tower"] == "ModifiedResNet"
    assert fitted.teacher_info_["logit_scale"] == 50.0
    assert fitted.bad_images_ == {}
    assert not hasattr(fitted, "teacher_")


def test_label_update_changes_labels_and_stays_in_range(fitted):
    before = fitted.pseudo_label_stages_["initial"]
    after = fitted.pseudo_labels_
    assert not np.allclose(before, after)
    assert after.min() >= 0 and after.max() <= 1


def test_predict_proba_is_multilabel(fitted, images):
    P = fitted.predict_proba(images)
    assert P.shape == (len(images), 3) and P.dtype == np.float64
    assert ((P >= 0) & (P <= 1)).all()
    assert not np.allclose(P.sum(axis=1), 1.0)  # independent sigmoids
    logits = fitted.decision_function(images)
    np.testing.assert_allclose(P, 1 / (1 + np.exp(-logits)))
    pred = fitted.predict(images)
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (P >= 0.5).astype(int))


def test_predict_keeps_input_order_and_batch_independence(fitted, images):
    P = fitted.predict_proba(images)
    reordered = fitted.predict_proba(images[::-1])
    np.testing.assert_allclose(reordered[::-1], P, atol=1e-5)
    single = fitted.predict_proba([images[3]])
    np.testing.assert_allclose(single[0], P[3], atol=1e-5)


def test_inference_batch_size_changes_speed_not_results(fitted, tiny_params, images):
    P = fitted.predict_proba(images)
    small = clone(fitted).set_params(inference_batch_size=5)
    small.__dict__.update(
        {k: v for k, v in fitted.__dict__.items() if k.endswith("_")}
    )  # the same fitted student, predicting 5 images at a time
    np.testing.assert_allclose(small.predict_proba(images), P, atol=1e-5)
    refit = CCDClassifier(**{**tiny_params, "inference_batch_size": 3}).fit(images)
    np.testing.assert_allclose(refit.teacher_scores_, fitted.teacher_scores_, atol=1e-5)
    update = refit.history_[1]  # the label update at epoch 1
    assert update["crops_per_image"] > 0
    assert update["crops_per_image"] == fitted.history_[1]["crops_per_image"]
    np.testing.assert_allclose(refit.pseudo_labels_, fitted.pseudo_labels_, atol=1e-4)


def test_models_run_channels_last(fitted, tiny_params):
    from ccd_estimator._teacher import Teacher

    conv = next(m for m in fitted.student_.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    restored = pickle.loads(pickle.dumps(fitted))
    conv = next(
        m for m in restored.student_.modules() if isinstance(m, torch.nn.Conv2d)
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    p = tiny_params
    teacher = Teacher(
        p["model_name"], p["pretrained"], ["a"], ["{}"], torch.device("cpu")
    )
    weight = teacher.model.visual.conv1.weight
    assert weight.shape[-1] == 3  # a 3x3 kernel, where the two layouts differ
    assert weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_runs_student_steps_and_teacher_through_torch_compile(
    fitted, tiny_params, images, tmp_path
):
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(str(gm.code))
        return gm.forward  # run the captured graph as it is

    torch._dynamo.reset()
    params = {**tiny_params, "compile": {"backend": recording_backend}}
    compiled = CCDClassifier(**params).fit(images)
    # graphs of the teacher's visual tower and of the student's backbone
    assert any("model_modules_visual" in code for code in graphs)
    assert any("modules_backbone" in code for code in graphs)
    np.testing.assert_allclose(
        compiled.teacher_scores_, fitted.teacher_scores_, atol=1e-5
    )
    np.testing.assert_allclose(
        compiled.predict_proba(images), fitted.predict_proba(images), atol=1e-3
    )
    with pytest.warns(UserWarning, match="cannot be written to JSON"):
        compiled.save(tmp_path / "m.safetensors")
    assert CCDClassifier.load(tmp_path / "m.safetensors").compile is False


def test_score_is_macro_ap_over_present_classes(fitted, images):
    from sklearn.metrics import average_precision_score

    Y = np.zeros((len(images), 3), int)
    Y[np.arange(len(images)), np.arange(len(images)) % 3] = 1
    P = fitted.predict_proba(images)
    assert fitted.score(images, Y) == pytest.approx(average_precision_score(Y, P))
    Y[:, 2] = 0
    with pytest.warns(UserWarning, match="skipped.*green"):
        s = fitted.score(images, Y)
    assert s == pytest.approx(average_precision_score(Y[:, :2], P[:, :2]))


def test_unfitted_predict_raises(images):
    with pytest.raises(NotFittedError):
        CCDClassifier(class_names=["a"]).predict_proba(images)


@pytest.mark.parametrize("dumper", ["pickle", "joblib"])
def test_pickle_round_trip_predicts_identically(fitted, images, tmp_path, dumper):
    P = fitted.predict_proba(images)
    if dumper == "pickle":
        blob = pickle.dumps(fitted)
        loaded = pickle.loads(blob)
        # the teacher is not pickled: a tiny student only
        assert b"Teacher" not in blob and len(blob) < 2_000_000
    else:
        joblib.dump(fitted, tmp_path / "m.joblib")
        loaded = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(images), P)


def test_pickled_state_holds_cpu_tensors_only(fitted):
    state = fitted.__getstate__()
    assert "student_" not in state
    assert all(t.device.type == "cpu" for t in state["_student_state"].values())


def test_pickled_on_cuda_loads_on_cpu(fitted, images, monkeypatch):
    # Simulate an estimator fitted on a GPU: device="cuda" and a student that
    # reports CUDA. Its pickle holds CPU tensors only, so a CPU-only machine
    # loads it and predicts with a warning that it falls back to the CPU.
    P = fitted.predict_proba(images)
    gpu = pickle.loads(pickle.dumps(fitted))
    gpu.device = "cuda"
    blob = pickle.dumps(gpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = pickle.loads(blob)
    with pytest.warns(DeviceWarning, match="CPU"):
        np.testing.assert_array_equal(loaded.predict_proba(images), P)


def test_safe_save_and_load(fitted, images, tmp_path):
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    loaded = CCDClassifier.load(path)
    np.testing.assert_array_equal(
        loaded.predict_proba(images), fitted.predict_proba(images)
    )
    assert loaded.get_params() == {**fitted.get_params(), "memory": None}
    np.testing.assert_array_equal(loaded.pseudo_labels_, fitted.pseudo_labels_)
    assert [r["train_map"] for r in loaded.history_] == [
        r["train_map"] for r in fitted.history_
    ]
    with pytest.raises(FileNotFoundError, match="no saved model"):
        CCDClassifier.load(tmp_path / "missing.safetensors")


def test_same_random_state_gives_identical_fits(tiny_params, images):
    a = CCDClassifier(**{**tiny_params, "max_epochs": 2, "update_epochs": (1,)}).fit(
        images
    )
    b = CCDClassifier(**{**tiny_params, "max_epochs": 2, "update_epochs": (1,)}).fit(
        images
    )
    np.testing.assert_array_equal(a.pseudo_labels_, b.pseudo_labels_)
    np.testing.assert_array_equal(a.predict_proba(images), b.predict_proba(images))
    for k, v in a.student_.state_dict().items():
        assert torch.equal(v, b.student_.state_dict()[k]), k


def test_clone_is_unfitted_and_independent(fitted):
    cloned = clone(fitted)
    assert not hasattr(cloned, "student_")
    assert cloned.get_params() == fitted.get_params()


def test_teacher_global_view_does_not_depend_on_batch(tiny_params, images):
    from ccd_estimator._teacher import Teacher

    p = tiny_params
    teacher = Teacher(
        p["model_name"],
        p["pretrained"],
        ["a", "b"],
        ["a photo of the {}"],
        torch.device("cpu"),
    )
    assert not teacher.model.training
    x = torch.rand(6, 3, 64, 64)
    np.testing.assert_allclose(teacher.scores(x)[:1], teacher.scores(x[:1]), atol=1e-5)


def test_any_input_size_for_resnet_teacher_matches_native(tiny_params):
    from ccd_estimator._teacher import Teacher

    p = tiny_params
    teacher = Teacher(
        p["model_name"], p["pretrained"], ["a"], ["{}"], torch.device("cpu")
    )
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        native = torch.nn.functional.normalize(teacher.model.encode_image(x), dim=-1)
    np.testing.assert_allclose(teacher.encode(x), native, atol=1e-5)
    assert teacher.encode(torch.rand(2, 3, 96, 160)).shape == (2, 32)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "param, value, match",
    [
        (
            "box_mode",
            "loose",
            "box_mode must be one of 'reference', 'tight'; got 'loose'",
        ),
        ("batch_size", 0, "batch_size must be an int >= 1; got 0"),
        ("inference_batch_size", 0, "inference_batch_size must be an int >= 1"),
        ("compile", "yes", "compile must be True, False or a dict"),
        ("compile", {"nonsense_kw": 1}, "compile must be True, .*backend.*mode"),
        ("precision", "fp8", "precision must be one of"),
        ("blend_ratio", 1.5, "blend_ratio must be a number in"),
        ("prompt_templates", "a photo of {}", "prompt_templates must be"),
        ("update_epochs", (0,), "update_epochs must be"),
    ],
)
def test_invalid_parameters_are_named(tiny_params, images, param, value, match):
    with pytest.raises(ValueError, match=match):
        CCDClassifier(**{**tiny_params, param: value}).fit(images)


@pytest.mark.parametrize(
    "names, match",
    [
        ("cat", "single string"),
        ([], "empty"),
        (["cat", " Cat "], "duplicates"),
        (["cat", ""], "empty"),
        (["cat", 3], "must be a string"),
        (None, "class_names is required"),
    ],
)
def test_class_names_validated(tiny_params, images, names, match):
    with pytest.raises(ValueError, match=match):
        CCDClassifier(**{**tiny_params, "class_names": names}).fit(images)


def test_unicode_class_names_kept(tiny_params, images):
    clf = CCDClassifier(
        **{
            **tiny_params,
            "class_names": ["chat", "Hund", "猫"],
            "max_epochs": 1,
            "update_epochs": (),
        }
    )
    assert clf.fit(images[:6]).class_names_.tolist() == ["chat", "Hund", "猫"]


def test_empty_input_is_a_clear_error(tiny_params):
    with pytest.raises(ValueError, match="empty"):
        CCDClassifier(**tiny_params).fit([])


def test_half_precision_on_cpu_falls_back_with_warning(tiny_params, images):
    clf = CCDClassifier(
        **{**tiny_params, "precision": "fp16", "max_epochs": 1, "update_epochs": ()}
    )
    with pytest.warns(DeviceWarning, match="float32"):
        clf.fit(images[:6])
    assert np.isfinite(clf.predict_proba(images[:6])).all()


def test_unknown_model_name_fails_fast(tiny_params, images):
    with pytest.raises(ValueError, match="Unknown open_clip model_name 'RN5O'.*RN50"):
        CCDClassifier(**{**tiny_params, "model_name": "RN5O"}).fit(images)


def test_missing_checkpoint_names_the_absolute_path(tiny_params, images, tmp_path):
    missing = tmp_path / "nowhere" / "w.safetensors"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        CCDClassifier(**{**tiny_params, "pretrained": str(missing)}).fit(images)


def test_offline_pretrained_tag_fails_fast_with_advice(tmp_path):
    code = (
        "from ccd_estimator._teacher import Teacher; import torch\n"
        "Teacher('RN50', 'openai', ['a'], ['{}'], torch.device('cpu'))"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert time.perf_counter() - start < 60
    assert "pass the checkpoint file as pretrained=" in out.stderr


def test_vit_tower_rejects_non_native_size(tiny_params, images):
    clf = CCDClassifier(**{**tiny_params, "model_name": "ViT-B-32", "pretrained": None})
    with (
        pytest.warns(UserWarning, match="random weights"),
        pytest.raises(ValueError, match="teacher_image_size=32 is not supported"),
    ):
        clf.fit(images)


# ------------------------------------------------------------- bad input data


def test_fit_skips_bad_files_with_one_warning(tiny_params, images, tmp_path):
    empty = tmp_path / "zero.jpg"
    empty.write_bytes(b"")
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"hello")
    missing = tmp_path / "missing.png"
    X = images[:8] + [str(empty), str(fake), str(missing)]
    clf = CCDClassifier(**{**tiny_params, "max_epochs": 1, "update_epochs": ()})
    with pytest.warns(BadImagesWarning) as record:
        clf.fit(X)
    assert len(record) == 1
    message = str(record[0].message)
    for path in (empty, fake, missing):
        assert str(path) in message
    assert set(clf.bad_images_) == {str(empty), str(fake), str(missing)}
    assert clf.train_paths_.tolist() == images[:8]
    assert clf.pseudo_labels_.shape == (8, 3)


def test_fit_stops_when_too_few_images_are_readable(tiny_params, tmp_path):
    bad = []
    for i in range(4):
        (tmp_path / f"b{i}.png").write_bytes(b"nope")
        bad.append(str(tmp_path / f"b{i}.png"))
    with pytest.warns(BadImagesWarning), pytest.raises(ValueError, match="Only 0 of 4"):
        CCDClassifier(**tiny_params).fit(bad)


def test_predict_lists_every_bad_file_or_returns_nan_rows(fitted, images, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    a.write_bytes(b"x")
    X = [images[0], str(a), images[1], str(b)]
    with pytest.raises(UnreadableImagesError, match="2 of 4") as info:
        fitted.predict_proba(X)
    assert str(a) in str(info.value) and str(b) in str(info.value)
    lenient = clone(fitted).set_params(on_bad_image="nan")
    lenient.__dict__.update(
        {k: v for k, v in fitted.__dict__.items() if k.endswith("_")}
    )
    with pytest.warns(BadImagesWarning):
        P = lenient.predict_proba(X)
    assert P.shape == (4, 3)
    assert np.isnan(P[[1, 3]]).all() and np.isfinite(P[[0, 2]]).all()
    np.testing.assert_allclose(P[[0, 2]], fitted.predict_proba(images[:2]), atol=1e-6)


@pytest.mark.parametrize("n", [1, 9])
def test_tiny_datasets_and_last_batch_of_one(tiny_params, images, n):
    clf = CCDClassifier(**{**tiny_params, "batch_size": 8}).fit(images[:n])
    assert clf.predict_proba(images[:1]).shape == (1, 3)


def test_degenerate_images_give_no_nan(tiny_params, tmp_path):
    paths = []
    for name, size, value in [
        ("one", (1, 1), 128),
        ("strip", (2, 300), 50),
        ("tall", (300, 2), 200),
        ("black", (64, 64), 0),
        ("white", (64, 64), 255),
    ]:
        arr = np.full((*size, 3), value, dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    clf = CCDClassifier(**{**tiny_params, "candidate_bound": 2.0}).fit(paths)
    for arr in (clf.bias_, clf.teacher_scores_, clf.pseudo_labels_):
        assert np.isfinite(arr).all()
    assert all(np.isfinite(r["bce_loss"]) for r in clf.history_)
    assert np.isfinite(clf.predict_proba(paths)).all()


def test_input_files_are_not_modified(tiny_params, tmp_path):
    paths = write_images(tmp_path, 4)
    before = [
        (open(p, "rb").read(), __import__("os").stat(p).st_mtime_ns) for p in paths
    ]
    CCDClassifier(**{**tiny_params, "max_epochs": 1, "update_epochs": ()}).fit(paths)
    after = [
        (open(p, "rb").read(), __import__("os").stat(p).st_mtime_ns) for p in paths
    ]
    assert before == after


def test_no_warnings_on_a_clean_fit(tiny_params, images):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CCDClassifier(**{**tiny_params, "max_epochs": 2}).fit(images[:6])


def test_update_epochs_beyond_the_schedule_warn(tiny_params, images):
    clf = CCDClassifier(**{**tiny_params, "max_epochs": 1, "update_epochs": (1,)})
    with pytest.warns(UserWarning, match=r"update_epochs \[1\] are not below"):
        clf.fit(images[:6])
    assert "threshold" not in clf.history_[0]


def test_explain_returns_cams_boxes_and_teacher_scores(fitted, images):
    (item,) = fitted.explain(images[:1], threshold=0.0)
    assert item.image.shape == (64, 64, 3) and item.image.dtype == np.uint8
    assert item.cams.shape[0] == 3
    assert set(item.boxes) == {0, 1, 2}  # threshold 0: every class is a candidate
    for x0, y0, x1, y1 in item.boxes.values():
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    assert set(item.crop_scores) == {0, 1, 2}
    np.testing.assert_allclose(item.global_scores.sum(), 1.0, atol=1e-5)
    # the labels of the figure are the probabilities predict_proba gives
    np.testing.assert_allclose(
        item.probabilities, fitted.predict_proba(images[:1])[0], atol=1e-6
    )
    assert item.cam_probabilities.shape == (3,)
    (bare,) = fitted.explain(images[:1], threshold=1.0, with_teacher=False)
    assert len(bare.boxes) == 1 and bare.global_scores is None


def test_class_name_too_long_for_the_text_context_warns(tiny_params, images):
    long_name = " ".join(["very"] * 20) + " long class"  # context is 16 tokens
    clf = CCDClassifier(
        **{
            **tiny_params,
            "class_names": ["red", long_name],
            "max_epochs": 1,
            "update_epochs": (),
        }
    )
    with pytest.warns(UserWarning, match="longer than the text encoder's context"):
        clf.fit(images[:6])
    assert clf.predict_proba(images[:2]).shape == (2, 2)


def test_save_without_any_label_update(tiny_params, images, tmp_path):
    # without an update the pseudo-labels equal the initial ones; both must save
    clf = CCDClassifier(**{**tiny_params, "max_epochs": 1, "update_epochs": ()})
    clf.fit(images[:6])
    assert not np.shares_memory(clf.pseudo_labels_, clf.initial_pseudo_labels_)
    clf.save(tmp_path / "m.safetensors")
    loaded = CCDClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.pseudo_labels_, clf.initial_pseudo_labels_)


@pytest.mark.parametrize("debias", [True, False])
def test_epoch_line_says_why_train_map_is_zero(tiny_params, images, caplog, debias):
    params = {**tiny_params, "debias_global": debias, "update_epochs": ()}
    with caplog.at_level("INFO", logger="ccd_estimator"):
        clf = CCDClassifier(**{**params, "max_epochs": 1}).fit(images)
    saturated = bool((clf.pseudo_labels_ >= 1.0).any())
    noted = "(no pseudo-label is 1)" in caplog.text
    assert "epoch 1:" in caplog.text
    assert noted == (not saturated)
    if noted:
        assert clf.history_[0]["train_map"] == 0.0
