"""The ``ccd`` command line, run as a user would.

One model is fitted per module, in a subprocess through ``python -m
ccd_estimator``; the round trip test drives predict, evaluate and explain the
same way, and the other tests call :func:`ccd_estimator.cli.main` in-process.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccd_estimator import CCDClassifier
from ccd_estimator.cli import build_parser, collect_images, main, read_class_names
from tests.conftest import write_images

CLASSES = ["red", "blue", "green"]
PROGRESS = re.compile(r"\d+%\|")  # a tqdm bar


def tiny_options(tiny_clip) -> list[str]:
    """The CLI spelling of conftest's ``tiny_params`` (without the classes)."""
    config, weights = tiny_clip
    return [
        "--model-name",
        config,
        "--pretrained",
        weights,
        "--logit-scale",
        "50",
        "--teacher-image-size",
        "32",
        "--cam-image-size",
        "64",
        "--crop-size",
        "32",
        "--student",
        "timm:resnet18",
        "--student-weights",
        "none",
        "--student-kwargs",
        '{"channels": [8, 16, 32, 64]}',
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "--update-epochs",
        "1",
        "--consistency-start",
        "1",
        "--candidate-bound",
        "1.0",
        "--seed",
        "0",
        "--device",
        "cpu",
    ]


def run_ccd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="")
    return subprocess.run(
        [sys.executable, "-m", "ccd_estimator", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_truth(path: Path, images: list[str], relative_to: Path) -> np.ndarray:
    """Ground truth of write_images: image i holds colour i % 3."""
    Y = np.zeros((len(images), 3), dtype=int)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "note", *CLASSES])
        for i, image in enumerate(images):
            Y[i, i % 3] = 1
            rel = os.path.relpath(image, relative_to)
            writer.writerow([rel, "x", *Y[i]])
    return Y


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_clip):
    """A folder with images, a class file, and a model fitted by ``ccd fit``."""
    root = tmp_path_factory.mktemp("cli")
    (root / "data" / "nested").mkdir(parents=True)
    images = write_images(root / "data", 9) + write_images(
        root / "data" / "nested", 6, seed=1
    )
    (root / "data" / "notes.txt").write_text("not an image")
    (root / "classes.txt").write_text(
        "# colours of the squares\nred\n\n  blue\n#x\ngreen\n"
    )
    fit = run_ccd(
        "fit",
        "--images",
        "data",
        "--classes",
        "classes.txt",
        *tiny_options(tiny_clip),
        "--out",
        "model.safetensors",
        cwd=root,
    )
    assert fit.returncode == 0, fit.stderr
    return {
        "root": root,
        "model": str(root / "model.safetensors"),
        "images": sorted(images),
        "fit": fit,
        "listing": sorted(os.listdir(root)),  # right after the fit
    }


def read_csv_text(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def check_predictions(rows, paths, est, threshold=None, base=""):
    """One row per input, in order; probabilities and labels as the estimator's.

    ``paths`` are the paths the CSV should hold, relative to ``base``.
    """
    threshold = est.threshold if threshold is None else threshold
    assert [r["path"] for r in rows] == list(paths)
    assert list(rows[0]) == ["path", *CLASSES, "labels"]
    proba = np.array([[float(r[c]) for c in CLASSES] for r in rows])
    expected_proba = est.predict_proba([os.path.join(base, p) for p in paths])
    np.testing.assert_allclose(proba, expected_proba, rtol=1e-6)
    for r, p in zip(rows, proba, strict=True):
        expected = [c for c, v in zip(CLASSES, p, strict=True) if v >= threshold]
        assert (r["labels"].split(";") if r["labels"] else []) == expected


# ------------------------------------------------------------------ round trip


def test_round_trip_python_m(work, tiny_clip):
    root, model = work["root"], work["model"]
    fit = work["fit"]
    # stderr is a pipe here: no progress-bar redraws in what a log would keep
    assert not PROGRESS.search(fit.stderr) and "teacher global pass" not in fit.stderr
    assert "wrote model.safetensors: 3 classes, 15 training images" in fit.stdout
    assert "Traceback" not in fit.stderr
    assert work["listing"] == ["classes.txt", "data", "model.safetensors"]
    est = CCDClassifier.load(model)
    assert list(est.class_names_) == CLASSES  # comments and blanks skipped
    assert sorted(est.train_paths_) == sorted(
        os.path.join("data", os.path.relpath(p, root / "data")) for p in work["images"]
    )
    assert os.path.isabs(est.model_name) and os.path.isabs(est.pretrained)
    assert est.student_kwargs == {"channels": (8, 16, 32, 64)}

    # predict from a list file; a relative entry is relative to the list
    lst = root / "lists" / "some.txt"
    lst.parent.mkdir()
    lst.write_text("# two images\n../data/img_000.png\n\n" + work["images"][4] + "\n")
    predict = run_ccd(
        "predict", "model.safetensors", "--images", "lists/some.txt", "--out",
        "out/pred.csv", "--quiet", cwd=root,
    )  # fmt: skip
    assert predict.returncode == 0, predict.stderr
    assert predict.stderr == "" and predict.stdout == ""
    rows = read_csv_text((root / "out" / "pred.csv").read_text())
    listed = [os.path.join("lists", "../data/img_000.png"), work["images"][4]]
    check_predictions(rows, listed, est, base=str(root))
    assert os.listdir(root / "out") == ["pred.csv"]

    truth = root / "truth.csv"
    Y = write_truth(truth, work["images"], root)
    evaluate = run_ccd(
        "evaluate", "model.safetensors", "--labels", "truth.csv", cwd=root
    )
    assert evaluate.returncode == 0, evaluate.stderr
    mean_ap = float(re.search(r"^mAP\s+([0-9.]+)", evaluate.stdout, re.M).group(1))
    expected = est.score(work["images"], Y)
    assert mean_ap == pytest.approx(expected, abs=6e-5)
    for name in CLASSES:
        assert re.search(rf"^{name}\s+[0-9.]+\s+5$", evaluate.stdout, re.M)

    explain = run_ccd(
        "explain", "model.safetensors", work["images"][0], work["images"][1],
        "--out", "explain.png", cwd=root,
    )  # fmt: skip
    assert explain.returncode == 0, explain.stderr
    with Image.open(root / "explain.png") as im:
        assert im.format == "PNG"
        width, height = im.size
    assert 600 <= width <= 3000 and 400 <= height <= 3000 and height > width / 3


# ------------------------------------------------------------------- inputs


def test_class_names_from_file_or_list(tmp_path):
    f = tmp_path / "names.txt"
    f.write_text("\ufeff# header\r\ncat\r\n\r\n dog house \r\n")
    assert read_class_names(str(f)) == ["cat", "dog house"]
    assert read_class_names("cat, dog ,,bird") == ["cat", "dog", "bird"]
    assert read_class_names("cat") == ["cat"]


def test_collect_images_folder_recursive_sorted(tmp_path):
    for rel in ["b/2.PNG", "a.jpg", "b/1.Jpeg", "c/d/e.webp", "x.txt", ".hid/h.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "z.TIFF").write_bytes(b"")
    found = collect_images([str(tmp_path)])
    rel = [os.path.relpath(p, tmp_path) for p in found]
    assert rel == ["a.jpg", "b/1.Jpeg", "b/2.PNG", "c/d/e.webp", "z.TIFF"]
    # image files and lists mix with folders, in the order given
    lst = tmp_path / "c" / "list.txt"
    lst.write_text("d/e.webp\n# skip\n/abs/x.png\n")
    assert collect_images([str(tmp_path / "a.jpg"), str(lst)]) == [
        str(tmp_path / "a.jpg"),
        os.path.join(str(tmp_path / "c"), "d/e.webp"),
        "/abs/x.png",
    ]


# ------------------------------------------------------------------ predict


def test_predict_csv_in_process(work, capsys, monkeypatch):
    from ccd_estimator import _progress

    monkeypatch.setattr(_progress, "_watched", lambda: True)  # as on a terminal
    out = work["root"] / "inproc" / "pred.csv"
    code = main(["predict", work["model"], "--images", str(work["root"] / "data"),
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert PROGRESS.search(captured.err)  # default: progress bars on a terminal
    assert "predict" in captured.err
    assert captured.out.startswith(f"wrote {out}")
    est = CCDClassifier.load(work["model"])
    check_predictions(read_csv_text(out.read_text()), work["images"], est)
    assert os.listdir(out.parent) == ["pred.csv"]


def test_predict_stdout_threshold_and_quiet(work, capsys):
    images = work["images"][:4]
    code = main(["predict", work["model"], "--images", *images, "--out", "-",
                 "--threshold", "0.1", "--quiet"])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress bar
    rows = read_csv_text(captured.out)
    est = CCDClassifier.load(work["model"])
    check_predictions(rows, images, est, threshold=0.1)


def test_refuses_to_overwrite_without_force(work, capsys, tiny_clip):
    root = work["root"] / "overwrite"
    root.mkdir()
    out = root / "pred.csv"
    out.write_text("precious")
    args = ["predict", work["model"], "--images", work["images"][0], "--out", str(out)]
    assert main([*args, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccd: error: ") and "--force" in err and "exists" in err
    assert out.read_text() == "precious"
    assert main([*args, "-q", "--force"]) == 0
    assert out.read_text().startswith("path,red,blue,green,labels\n")
    assert os.listdir(root) == ["pred.csv"]

    # fit checks its output before any work
    model = root / "model.safetensors"
    model.write_text("precious")
    code = main(["fit", "--images", work["images"][0], "--classes", "a,b",
                 *tiny_options(tiny_clip), "--out", str(model)])  # fmt: skip
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert model.read_text() == "precious"
    assert sorted(os.listdir(root)) == ["model.safetensors", "pred.csv"]


def test_bad_image_warning_is_readable(work, capsys):
    bad = work["root"] / "broken.png"
    bad.write_bytes(b"not a png")
    images = [work["images"][0], str(bad)]
    code = main(["predict", work["model"], "--images", *images,
                 "--on-bad-image", "nan", "-q"])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert captured.err.count("ccd: warning: 1 of 2 images could not be read") == 1
    assert "broken.png" in captured.err
    assert "BadImagesWarning" not in captured.err and ".py:" not in captured.err
    rows = read_csv_text(captured.out)
    assert rows[1]["path"] == str(bad) and rows[1]["red"] == "" and rows[0]["red"]

    # the default is to stop, naming the file
    assert main(["predict", work["model"], "--images", *images, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccd: error: 1 of 2 images could not be read")
    assert "broken.png" in err and "Traceback" not in err


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "missing.safetensors", "--images", "."], "does not exist"),
        (["predict", "{model}", "--images", "nowhere"], "'nowhere' does not exist"),
        (["predict", "{model}", "--images", "{empty}"], "no images found"),
        (["predict", "{model}", "--images", "{binary}"], "not a UTF-8 text file"),
        (["predict", "{model}"], "--images"),
        (["predict", "{model}", "--images", ".", "--threshold", "2"], "[0, 1]"),
        (["fit", "--images", "{data}", "--out", "m"], "--classes is required"),
        (["fit", "--images", "{data}", "--classes", "no/such.txt", "--out", "m"],
         "class file 'no/such.txt' does not exist"),
        (["fit", "--images", "{data}", "--classes", "a,b", "--batch-size", "0",
          "--out", "m"], "--batch-size (batch_size) must be an int >= 1"),
        (["fit", "--images", "{data}", "--classes", "a,A", "--out", "m"],
         "duplicates"),
        (["fit", "--images", "{data}", "--classes", "a", "--box-mode", "x",
          "--out", "m"], "invalid choice"),
        (["fit", "--images", "{data}", "--classes", "a", "--student-kwargs", "[1]",
          "--out", "m"], "JSON object"),
        (["fit", "--images", "{data}", "--classes", "a", "--update-epochs", "x",
          "--out", "m"], "epoch numbers"),
        (["evaluate", "{model}", "--labels", "{nolabel}"], "'green'"),
        (["evaluate", "{model}", "--labels", "{partial}", "--images", "{data}"],
         "12 of the images have no row in"),
        (["evaluate", "{model}", "--labels", "{binary}"], "cannot read labels"),
        (["explain", "{model}", "{data}/notes.txt", "--out", "x.png"],
         "could not read image"),
        (["bogus"], "invalid choice"),
        ([], "choose a command"),
    ],
)  # fmt: skip
def test_bad_input_exit_2(work, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    partial = tmp_path / "partial.csv"
    write_truth(partial, work["images"][:3], tmp_path)
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("path,red,Blue\nx.png,1,0\n")
    binary = tmp_path / "binary.lst"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    values = {
        "model": work["model"],
        "data": str(work["root"] / "data"),
        "empty": str(empty),
        "partial": str(partial),
        "nolabel": str(nolabel),
        "binary": str(binary),
    }
    args = [a.format(**values) for a in args]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("ccd: error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) <= 3
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.png").exists()


def test_traceback_option(capsys, tmp_path):
    assert main(["predict", str(tmp_path / "none"), "--images", ".",
                 "--traceback"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("ccd: error: ")


def test_log_level(work, capsys):
    args = ["predict", work["model"], "--images", work["images"][0], "-q"]
    assert main([*args, "--log-level", "debug"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"DEBUG ccd_estimator\.cli: loaded", err)
    assert re.search(r"INFO ccd_estimator\._student: student timm:resnet18", err)
    assert main(args) == 0
    assert capsys.readouterr().err == ""  # WARNING by default


# ----------------------------------------------------------------- evaluate


def test_evaluate_in_process_subset(work, capsys, tmp_path):
    truth = tmp_path / "labels" / "truth.csv"
    truth.parent.mkdir()
    Y = write_truth(truth, work["images"], truth.parent)
    subset = work["images"][:6]
    code = main(["evaluate", work["model"], "--labels", str(truth), "--images",
                 *subset, "--threshold", "0.6", "-q"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    est = CCDClassifier.load(work["model"])
    mean_ap = float(re.search(r"^mAP\s+([0-9.]+)", out, re.M).group(1))
    assert mean_ap == pytest.approx(est.score(subset, Y[:6]), abs=6e-5)
    assert "threshold 0.60" in out
    lines = out.splitlines()
    table = lines[lines.index("class      AP  positives") :]
    assert [line.split()[0] for line in table[1:]] == CLASSES


# ------------------------------------------------------------------ explain


def test_explain_in_process(work, capsys, tmp_path):
    out = tmp_path / "fig.png"
    code = main(["explain", work["model"], work["images"][2], "--out", str(out),
                 "--no-teacher", "--max-boxes", "1", "-q"])  # fmt: skip
    assert code == 0
    with Image.open(out) as im:
        assert im.size[0] > 500 and im.size[1] > 200
    assert os.listdir(tmp_path) == ["fig.png"]
    assert main(["explain", work["model"], work["images"][2], "--out", str(out),
                 "-q"]) == 2  # fmt: skip
    assert "already exists" in capsys.readouterr().err


# ------------------------------------------------------------- help and misc


def subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


@pytest.mark.parametrize("command", ["fit", "predict", "evaluate", "explain", "demo"])
def test_help_mentions_every_option(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    options = {s for a in subparsers()[command]._actions for s in a.option_strings}
    assert options
    for option in options:
        assert option in text, option
    if command == "fit":
        for option in ("--model-name", "--pretrained", "--cache-dir", "--precision",
                       "--teacher-image-size", "--cam-image-size", "--crop-size",
                       "--prompt", "--student", "--student-weights",
                       "--student-kwargs", "--image-size", "--batch-size",
                       "--epochs", "--update-epochs", "--box-mode",
                       "--consistency-weight", "--device", "--workers", "--seed",
                       "--demo-teacher", "--force", "--quiet", "--log-level",
                       "--traceback"):  # fmt: skip
            assert option in text, option


def test_top_level_help_and_version(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("fit", "predict", "evaluate", "explain", "demo"):
        assert command in text
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ccd 0.")


def test_fit_options_map_to_parameters(tiny_clip, monkeypatch, tmp_path):
    from ccd_estimator import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.safetensors").write_bytes(b"")
    args = build_parser().parse_args(
        [
            "fit",
            "--images",
            ".",
            "--classes",
            "a,b",
            "--out",
            "m",
            *tiny_options(tiny_clip),
            "--pretrained",
            "w.safetensors",
            "--prompt",
            "a {}",
            "--prompt",
            "the {}",
            "--no-debias-local",
            "--teacher-image-size",
            "native",
            "--update-epochs",
            "1,3",
            "--quiet",
        ]  # fmt: skip
    )
    params = cli._estimator_params(args)
    assert params["class_names"] == ["a", "b"]
    assert params["pretrained"] == str(tmp_path / "w.safetensors")
    assert params["prompt_templates"] == ("a {}", "the {}")
    assert params["debias_local"] is False and "debias_global" not in params
    assert params["teacher_image_size"] is None
    assert params["update_epochs"] == (1, 3)
    assert params["student_weights"] is None
    assert params["student_kwargs"] == {"channels": (8, 16, 32, 64)}
    assert params["max_epochs"] == 3 and "n_workers" not in params
    CCDClassifier(**params)._validate_params()  # all accepted


def test_demo_teacher_fills_parameters():
    import ccd_estimator.datasets as datasets

    if not hasattr(datasets, "shapes_demo_params"):
        pytest.skip("ccd_estimator.datasets.shapes_demo_params is not there yet")
    from ccd_estimator import cli

    demo = datasets.shapes_demo_params()
    args = build_parser().parse_args(
        [
            "fit",
            "--demo-teacher",
            "--images",
            ".",
            "--out",
            "m",
            "--epochs",
            "1",
            "--classes",
            "circle,square",
        ]  # fmt: skip
    )
    params = cli._estimator_params(args)
    assert params["max_epochs"] == 1
    assert params["class_names"] == ["circle", "square"]
    for key, value in demo.items():
        if key in ("max_epochs", "class_names", "verbose") or params[key] == value:
            continue
        assert isinstance(value, str) and os.path.abspath(value) == params[key], key
    args = build_parser().parse_args(
        ["fit", "--demo-teacher", "--images", ".", "--out", "m"]
    )
    assert list(cli._estimator_params(args)["class_names"]) == list(demo["class_names"])


def test_demo_command_calls_run_demo(monkeypatch, tmp_path, capsys):
    import types

    calls = []
    fake = types.ModuleType("ccd_estimator._demo")
    fake.run_demo = lambda **kwargs: calls.append(kwargs) or {"map": 0.9}
    monkeypatch.setitem(sys.modules, "ccd_estimator._demo", fake)
    assert main(["demo", "--out", str(tmp_path), "--quick", "--seed", "3"]) == 0
    assert calls == [
        {"out_dir": str(tmp_path), "quick": True, "random_state": 3, "verbose": 1}
    ]
    assert main(["--quiet", "demo"]) == 0
    assert calls[-1] == {"quick": False, "random_state": 0, "verbose": 0}
