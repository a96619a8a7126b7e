"""The ``ccd`` command line: fit, predict, evaluate, explain and demo.

Run ``ccd --help`` or ``ccd COMMAND --help`` for the options. Every command is
also available as ``python -m ccd_estimator COMMAND``. :func:`main` can be
called from Python with a list of arguments; it returns the exit status instead
of exiting: 0 on success, 2 for a usage or input error, 1 for any other failure
and 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import re
import sys
import textwrap
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

if TYPE_CHECKING:
    from ccd_estimator._estimator import CCDClassifier

__all__ = [
    "IMAGE_EXTENSIONS",
    "CLIError",
    "build_parser",
    "collect_images",
    "main",
    "read_class_names",
    "read_labels",
]

logger = logging.getLogger(__name__)

#: File extensions (lower case) taken as images when a folder is searched.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)

_PROG = "ccd"
_EXIT_INPUT = 2
_EXIT_FAILURE = 1
_EXIT_INTERRUPTED = 130
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_RESERVED_COLUMNS = ("path", "labels")
# Suffixes that make a --classes argument a file name rather than a list of names.
_TEXT_SUFFIXES = (".txt", ".csv", ".lst", ".list", ".names", ".tsv")


class CLIError(Exception):
    """A usage or input error: reported in one paragraph, exit status 2."""


class _Formatter(argparse.HelpFormatter):
    """Wraps each paragraph of a description; keeps indented examples as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.split("\n\n"):
            if "\n " in para or para.startswith(" "):
                out.append("\n".join(indent + line for line in para.splitlines()))
            else:
                out.append(
                    textwrap.fill(
                        " ".join(para.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                    )
                )
        return "\n\n".join(out)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`CLIError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------- inputs


def _read_text_lines(path: str, what: str) -> list[str]:
    """Non-blank, non-comment lines of a UTF-8 text file, stripped."""
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a folder, not a text file.")
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise CLIError(
            f"{what} {path!r} is not a UTF-8 text file ({exc.reason} at byte "
            f"{exc.start})."
        ) from exc
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path!r}: {exc.strerror or exc}.") from exc
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def read_class_names(spec: str) -> list[str]:
    """Class names from a class file or a comma-separated list.

    Parameters
    ----------
    spec : str
        An existing file, holding one name per line (blank lines and lines
        starting with ``#`` are ignored), or names separated by commas
        (``"cat,dog"``).

    Returns
    -------
    list of str
        The names, in order.

    Raises
    ------
    CLIError
        If the file cannot be read or no name is given; also when ``spec``
        looks like a file name (it has a folder separator or a text-file
        suffix) but no such file exists.
    """
    if os.path.isfile(spec) or os.path.isdir(spec):
        names = _read_text_lines(spec, "class file")
        if not names:
            raise CLIError(f"class file {spec!r} holds no class names.")
        logger.debug("read %d class names from %s", len(names), spec)
        return names
    looks_like_file = (
        os.sep in spec
        or "/" in spec
        or (spec.lower().endswith(_TEXT_SUFFIXES) and "," not in spec)
    )
    if looks_like_file:
        raise CLIError(
            f"class file {spec!r} does not exist. To give the names directly, "
            "separate them with commas: --classes cat,dog"
        )
    names = [name.strip() for name in spec.split(",")]
    names = [name for name in names if name]
    if not names:
        raise CLIError(f"--classes {spec!r} holds no class names.")
    return names


def _scan_folder(folder: str) -> list[str]:
    """Image files under ``folder``, recursively, sorted; hidden entries skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.join(root, name))
    return sorted(found)


def _read_image_list(path: str) -> list[str]:
    folder = os.path.dirname(path)
    entries = _read_text_lines(path, "image list")
    if not entries:
        raise CLIError(f"image list {path!r} names no images.")
    out = []
    for entry in entries:
        entry = os.path.expanduser(entry)
        out.append(entry if os.path.isabs(entry) else os.path.join(folder, entry))
    return out


def collect_images(specs: Sequence[str]) -> list[str]:
    """Expand ``--images`` arguments into a list of image paths.

    Parameters
    ----------
    specs : sequence of str
        Each one is a folder, searched recursively for files with an extension
        in :data:`IMAGE_EXTENSIONS` (any case; hidden files and folders are
        skipped; sorted), an image file (by its extension), or a text file
        listing image paths, one per line (blank lines and lines starting with
        ``#`` ignored; relative paths are relative to the list file's folder).

    Returns
    -------
    list of str
        The image paths, in the order of ``specs``. Files named in a list are
        not checked here; unreadable ones are reported when they are loaded.

    Raises
    ------
    CLIError
        If an argument does not exist, a folder holds no image, or a list is
        empty or unreadable.
    """
    paths: list[str] = []
    for spec in specs:
        spec = os.path.expanduser(spec)
        if os.path.isdir(spec):
            found = _scan_folder(spec)
            if not found:
                raise CLIError(
                    f"no images found in folder {spec!r} (searched recursively for "
                    f"{', '.join(sorted(IMAGE_EXTENSIONS))})."
                )
            logger.debug("found %d images in %s", len(found), spec)
            paths.extend(found)
        elif os.path.isfile(spec):
            if os.path.splitext(spec)[1].lower() in IMAGE_EXTENSIONS:
                paths.append(spec)
            else:
                listed = _read_image_list(spec)
                logger.debug("read %d image paths from %s", len(listed), spec)
                paths.extend(listed)
        else:
            raise CLIError(
                f"{spec!r} does not exist; --images takes folders, image files or "
                "text files listing image paths."
            )
    if not paths:
        raise CLIError("no images given.")
    return paths


def _key(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _parse_flag(text: str) -> int | None:
    value = text.strip().lower()
    if value in ("1", "1.0", "true", "yes", "y"):
        return 1
    if value in ("0", "0.0", "false", "no", "n"):
        return 0
    return None


def read_labels(path: str, class_names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Read a ground-truth CSV: a ``path`` column and one 0/1 column per class.

    Columns are matched to ``class_names`` by header (exactly, else ignoring
    case and repeated spaces); other columns are ignored. Relative paths are
    relative to the CSV file's folder.

    Parameters
    ----------
    path : str
        The CSV file (UTF-8, with a header row).
    class_names : sequence of str
        The model's classes, in column order.

    Returns
    -------
    paths : list of str
        One image path per row.
    Y : ndarray of shape (n_rows, n_classes), dtype int
        The indicator matrix, columns in ``class_names`` order.

    Raises
    ------
    CLIError
        If the file cannot be read, has no ``path`` column, lacks a class
        column (all missing ones are named), has no rows, repeats a path, or a
        cell is not 0/1.
    """
    if not os.path.isfile(path):
        raise CLIError(f"labels file {path!r} does not exist.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise CLIError(f"cannot read labels file {path!r}: {exc}") from exc
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise CLIError(f"labels file {path!r} is empty.")
    header = [cell.strip() for cell in rows[0]]
    if "path" not in header:
        raise CLIError(
            f"labels file {path!r} has no 'path' column (its columns: "
            f"{', '.join(header)})."
        )
    exact = {name: i for i, name in enumerate(header)}
    loose = {_name_key(name): i for i, name in enumerate(header)}
    columns: list[int] = []
    missing: list[str] = []
    for name in class_names:
        index = exact.get(name, loose.get(_name_key(name)))
        if index is None:
            missing.append(name)
        else:
            columns.append(index)
    if missing:
        raise CLIError(
            f"labels file {path!r} has no column for the classes "
            f"{', '.join(repr(m) for m in missing)}; it needs a 'path' column and "
            "one 0/1 column per class of the model."
        )
    folder = os.path.dirname(path)
    path_col = exact["path"]
    paths, Y = [], []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        row = row + [""] * (len(header) - len(row))
        entry = os.path.expanduser(row[path_col].strip())
        if not entry:
            raise CLIError(f"{path}, line {line}: the path is empty.")
        entry = entry if os.path.isabs(entry) else os.path.join(folder, entry)
        if _key(entry) in seen:
            raise CLIError(
                f"{path}, line {line}: {entry!r} already appears on line "
                f"{seen[_key(entry)]}."
            )
        seen[_key(entry)] = line
        values = []
        for name, index in zip(class_names, columns, strict=True):
            value = _parse_flag(row[index])
            if value is None:
                raise CLIError(
                    f"{path}, line {line}, column {name!r}: expected 0 or 1, got "
                    f"{row[index]!r}."
                )
            values.append(value)
        paths.append(entry)
        Y.append(values)
    if not paths:
        raise CLIError(f"labels file {path!r} has a header but no rows.")
    return paths, np.asarray(Y, dtype=int).reshape(len(paths), len(class_names))


# -------------------------------------------------------------- option types


def _none_or(convert: Callable[[str], Any], *words: str) -> Callable[[str], Any]:
    """An argparse type accepting ``words`` (meaning None) or ``convert(text)``."""

    def parse(text: str) -> Any:
        if text.strip().lower() in words:
            return None
        return convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _epochs(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epoch numbers such as 2 or 2,5; got {text!r}"
        ) from None


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"drop_rate\": 0.1}}'; got {text!r}"
        )
    return _tuples(value)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


# --------------------------------------------------------------------- parser

_SIZE = _none_or(int, "none", "native")
_BOOL = "bool"
_APPEND = "append"

# The estimator options of ``ccd fit``: (group, parameter, flag or None for
# --parameter-name, type / choices tuple / _BOOL / _APPEND, metavar, help). The
# estimator's default is appended to the help, or the text in _SHOWN_DEFAULTS.
_FIT_OPTIONS: tuple[tuple[str, str, str | None, Any, str | None, str], ...] = (
    ("teacher", "model_name", None, str, "NAME",
     "open_clip model name, hf-hub:/local-dir: reference, or path of a JSON "
     "model config"),
    ("teacher", "pretrained", None, _none_or(str, "none"), "TAG_OR_FILE",
     "open_clip pretrained tag, a local checkpoint file, or 'none'"),
    ("teacher", "cache_dir", None, str, "DIR", "download cache for pretrained tags"),
    ("teacher", "precision", None, ("auto", "fp32", "fp16", "bf16"), None,
     "autocast precision on CUDA"),
    ("teacher", "logit_scale", None, _none_or(float, "none", "learned"), "X",
     "teacher softmax scale; 'learned' uses the model's own"),
    ("teacher", "teacher_image_size", None, _SIZE, "PX",
     "side of the teacher's whole-image view, or 'native'"),
    ("teacher", "cam_image_size", None, int, "PX",
     "side of the view on which crops are chosen"),
    ("teacher", "crop_size", None, _SIZE, "PX",
     "long side of a crop given to the teacher, or 'native'"),
    ("teacher", "prompt_templates", "--prompt", _APPEND, "TEMPLATE",
     "prompt template with one {} for the class name; repeat the option for "
     "several"),
    ("teacher", "teacher_normalize", None, ("teacher", "imagenet"), None,
     "normalisation of teacher inputs"),
    ("teacher", "memory", None, str, "DIR",
     "cache folder for the teacher's whole-image scores, so that refits score "
     "each image once"),
    ("pseudo-labels", "entropy_threshold", None, float, "NATS",
     "images whose teacher entropy is above this are uncertain"),
    ("pseudo-labels", "label_floor", None, float, "X",
     "label-smoothing floor applied before debiasing"),
    ("pseudo-labels", "debias_global", None, _BOOL, None,
     "divide the whole-image pseudo-labels by the class bias"),
    ("pseudo-labels", "debias_local", None, _BOOL, None,
     "divide the crop scores by the class bias"),
    ("pseudo-labels", "uncertain_weight", None, float, "W",
     "loss weight of uncertain images"),
    ("student", "student", None, str, "NAME",
     "backbone: timm:NAME, torchvision:NAME or a bare name"),
    ("student", "student_weights", None, _none_or(str, "none"), "NAME_OR_FILE",
     "initial weights: a named set, a local file, or 'none' (random)"),
    ("student", "student_kwargs", None, _json_object, "JSON",
     "extra backbone constructor arguments as a JSON object; lists become "
     "tuples, e.g. '{\"channels\": [8, 16, 32, 64]}'"),
    ("student", "image_size", None, int, "PX", "side of the student's input"),
    ("student", "cam_multiplier", None, float, "X",
     "multiplier of each CAM's positive part"),
    ("training", "learning_rate", None, float, "LR", "backbone learning rate"),
    ("training", "head_lr_multiplier", None, float, "X",
     "CAM head learning-rate multiplier"),
    ("training", "batch_size", None, int, "N", "batch size of training steps"),
    ("training", "inference_batch_size", None, int, "N",
     "batch size of the passes that do not train (teacher, CAMs, predict)"),
    ("training", "max_epochs", "--epochs", int, "N", "training epochs"),
    ("training", "consistency_weight", None, float, "W",
     "consistency-loss weight; 0 disables it"),
    ("training", "consistency_start", None, int, "EPOCH",
     "first epoch (0-based) with the consistency loss"),
    ("training", "selection", None, ("train_map", "last"), None,
     "which epoch's weights to keep"),
    ("label update", "update_epochs", None, _epochs, "E[,E...]",
     "comma-separated epochs (0-based, >= 1) that start with a CAM-guided "
     "label update, or 'none'"),
    ("label update", "candidate_bound", None, float, "X",
     "target mean number of candidate classes per image"),
    ("label update", "cam_threshold", None, float, "X",
     "threshold on the normalised CAM"),
    ("label update", "box_mode", None, ("reference", "tight"), None,
     "how a box is drawn around the hot region"),
    ("label update", "crop_margin", None, float, "X",
     "margin around a box, as a fraction of --cam-image-size"),
    ("label update", "aggregation", None, ("max", "mean"), None,
     "how an image's crop scores combine"),
    ("label update", "blend_ratio", None, float, "X",
     "weight of the old label in the blend"),
    ("prediction and runtime", "threshold", None, float, "T",
     "probability threshold saved with the model"),
    ("prediction and runtime", "device", None, str, "DEVICE",
     "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("prediction and runtime", "n_workers", "--workers", int, "N",
     "data-loading worker processes"),
    ("prediction and runtime", "compile", None, _BOOL, None,
     "torch.compile the student's training steps and the teacher's encoder "
     "(for a GPU)"),
    ("prediction and runtime", "random_state", "--seed", int, "N", "random seed"),
)  # fmt: skip

_SHOWN_DEFAULTS = {
    "cache_dir": "open_clip's",
    "logit_scale": "learned",
    "memory": "no cache",
    "student_kwargs": "none",
    "random_state": "none, a different run each time",
}

# Estimator parameter -> command-line option, for messages.
_PARAM_OPTIONS: dict[str, str] = {
    "class_names": "--classes",
    **{p: f or "--" + p.replace("_", "-") for _, p, f, *_ in _FIT_OPTIONS},
}


def _add_fit_options(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """Add the estimator options to ``ccd fit``, with dest=PARAMETER and
    default=SUPPRESS, so that the namespace holds only the options given."""
    groups: dict[str, Any] = {}
    for group, param, _, kind, metavar, text in _FIT_OPTIONS:
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        shown = _SHOWN_DEFAULTS.get(param, defaults[param])
        if isinstance(shown, tuple):
            shown = ",".join(str(v) for v in shown) if shown else "none"
            if param == "prompt_templates":
                shown = " ".join(repr(t) for t in defaults[param])
        elif isinstance(shown, bool):
            shown = "on" if shown else "off"
        kwargs: dict[str, Any] = {"help": f"{text} (default: {shown})"}
        if kind is _BOOL:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind is _APPEND:
            kwargs.update(action="append", metavar=metavar)
        elif isinstance(kind, tuple):
            kwargs["choices"] = kind
        else:
            kwargs.update(type=kind, metavar=metavar)
        groups[group].add_argument(
            _PARAM_OPTIONS[param], dest=param, default=argparse.SUPPRESS, **kwargs
        )


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Global options; SUPPRESS keeps a subcommand from resetting them."""
    group = parser.add_argument_group("global options")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars or summaries (warnings and errors still show)",
    )
    group.add_argument(
        "--log-level",
        type=str.upper,
        choices=_LOG_LEVELS,
        default=argparse.SUPPRESS,
        help="level of the ccd_estimator log messages shown on stderr "
        "(default: WARNING)",
    )
    group.add_argument(
        "--traceback",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )


def _add_runtime(parser: argparse.ArgumentParser, *, bad_images: bool) -> None:
    group = parser.add_argument_group("runtime")
    group.add_argument(
        "--device",
        metavar="DEVICE",
        help="'auto', 'cpu', 'cuda' or 'cuda:N' (default: the model's setting)",
    )
    group.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive_int,
        help="batch size (default: the model's setting)",
    )
    group.add_argument(
        "--workers",
        metavar="N",
        type=int,
        help="data-loading worker processes (default: the model's setting)",
    )
    if bad_images:
        group.add_argument(
            "--on-bad-image",
            choices=("raise", "nan"),
            help="unreadable images: stop with an error listing them ('raise'), "
            "or warn and give them empty rows, left out of any score ('nan') "
            "(default: the model's setting, normally raise)",
        )


_IMAGES_HELP = (
    "a folder (searched recursively for .jpg .jpeg .png .bmp .gif .tif .tiff "
    ".webp files), an image file, or a text file listing image paths one per "
    "line (relative to the list's folder); several may be given"
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``ccd`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser; its error method raises :class:`CLIError`.
    """
    from ccd_estimator import __version__
    from ccd_estimator._estimator import CCDClassifier

    defaults = CCDClassifier().get_params()
    formatter = _Formatter
    parser = _Parser(
        prog=_PROG,
        description="Annotation-free multi-label image tagging: a CLIP teacher "
        "distilled into a CNN student (Classifier-guided CLIP Distillation).",
        epilog="Run 'ccd COMMAND --help' for the options of a command.",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"ccd {__version__}")
    _add_common(parser)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )

    # fit
    fit = commands.add_parser(
        "fit",
        help="train a tagger on unlabeled images",
        description="Train a tagger on unlabeled images and save it as a "
        "safetensors file. Options not given keep the estimator's defaults (those "
        "of the paper: a large CLIP teacher and a ResNet-50 student).",
        epilog="example:\n  ccd fit --images photos/ --classes cat,dog,car "
        "--out tagger.safetensors\n  ccd fit --demo-teacher --images scenes/ "
        "--out shapes.safetensors",
        formatter_class=formatter,
    )
    io = fit.add_argument_group("input and output")
    io.add_argument(
        "--images",
        required=True,
        nargs="+",
        action="extend",
        metavar="PATH",
        help=_IMAGES_HELP,
    )
    io.add_argument(
        "--classes",
        metavar="FILE_OR_LIST",
        help="a text file with one class name per line (blank lines and lines "
        "starting with # are ignored) or comma-separated names such as cat,dog; "
        "required unless --demo-teacher gives them",
    )
    io.add_argument(
        "--out", required=True, metavar="MODEL", help="the model file to write"
    )
    io.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    io.add_argument(
        "--demo-teacher",
        action="store_true",
        help="use the shipped shapes teacher and its demo settings "
        "(ccd_estimator.datasets.shapes_demo_params); options given explicitly "
        "override them",
    )
    _add_fit_options(fit, defaults)
    _add_common(fit)
    fit.set_defaults(handler=_cmd_fit)

    # predict
    predict = commands.add_parser(
        "predict",
        help="tag images with a fitted model, as CSV",
        description="Tag images with a fitted model. Writes a CSV with one row "
        "per image: 'path', one probability column per class (headed by the "
        "class name) and 'labels', the predicted classes joined by ';'.",
        epilog="example:\n  ccd predict tagger.safetensors --images photos/ "
        "--out tags.csv",
        formatter_class=formatter,
    )
    predict.add_argument("model", metavar="MODEL", help="a model written by ccd fit")
    predict.add_argument(
        "--images",
        required=True,
        nargs="+",
        action="extend",
        metavar="PATH",
        help=_IMAGES_HELP,
    )
    predict.add_argument(
        "--out",
        default="-",
        metavar="CSV",
        help="the CSV file to write; '-' writes to stdout (default: -)",
    )
    predict.add_argument(
        "--force", action="store_true", help="overwrite --out if it exists"
    )
    predict.add_argument(
        "--threshold",
        metavar="T",
        type=_unit_float,
        help="probability from which a class is in 'labels' (default: the "
        "model's threshold)",
    )
    _add_runtime(predict, bad_images=True)
    _add_common(predict)
    predict.set_defaults(handler=_cmd_predict)

    # evaluate
    evaluate = commands.add_parser(
        "evaluate",
        help="score a model against ground-truth labels",
        description="Score a fitted model against ground truth: mean average "
        "precision (macro over the classes with a positive, as "
        "CCDClassifier.score), sample-averaged F1 at the threshold (an image "
        "with neither true nor predicted labels counts as 1), and the AP of "
        "each class.",
        epilog="The labels CSV has a 'path' column (relative paths are relative "
        "to the CSV's folder) and one 0/1 column per class, headed by the class "
        "name; other columns are ignored.\n\nexample:\n  ccd evaluate "
        "tagger.safetensors --labels truth.csv",
        formatter_class=formatter,
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model written by ccd fit")
    evaluate.add_argument(
        "--labels", required=True, metavar="CSV", help="the ground-truth CSV"
    )
    evaluate.add_argument(
        "--images",
        nargs="+",
        action="extend",
        metavar="PATH",
        help=_IMAGES_HELP + "; each must have a row in --labels (default: every "
        "path of --labels)",
    )
    evaluate.add_argument(
        "--threshold",
        metavar="T",
        type=_unit_float,
        help="threshold of the F1 score (default: the model's threshold)",
    )
    _add_runtime(evaluate, bad_images=True)
    _add_common(evaluate)
    evaluate.set_defaults(handler=_cmd_evaluate)

    # explain
    explain = commands.add_parser(
        "explain",
        help="draw the regions the model uses and the teacher's view of them",
        description="Draw, for each image, the crop box of each candidate "
        "class with the student's probability, the teacher's score of the class "
        "on the whole image and on its crop, and the CAM of the top class. The "
        "teacher is loaded again from the model's settings (use --no-teacher "
        "when its files are not available).",
        epilog="example:\n  ccd explain tagger.safetensors a.jpg b.jpg "
        "--out explain.png",
        formatter_class=formatter,
    )
    explain.add_argument("model", metavar="MODEL", help="a model written by ccd fit")
    explain.add_argument(
        "images",
        metavar="IMAGE",
        nargs="+",
        help="images to explain (folders and image lists work too)",
    )
    explain.add_argument(
        "--out",
        required=True,
        metavar="FIGURE",
        help="the figure to write; the extension picks the format (.png, .pdf, "
        ".svg, ...)",
    )
    explain.add_argument(
        "--force", action="store_true", help="overwrite --out if it exists"
    )
    explain.add_argument(
        "--no-teacher",
        action="store_true",
        help="do not load the teacher; show student probabilities only",
    )
    explain.add_argument(
        "--threshold",
        metavar="T",
        type=_unit_float,
        help="candidate threshold (default: the one of the last label update)",
    )
    explain.add_argument(
        "--max-boxes",
        metavar="N",
        type=_positive_int,
        help="draw at most N boxes per image (default: all candidates)",
    )
    explain.add_argument(
        "--no-cam", action="store_true", help="leave out the CAM panel"
    )
    _add_runtime(explain, bad_images=False)
    _add_common(explain)
    explain.set_defaults(handler=_cmd_explain)

    # demo
    demo = commands.add_parser(
        "demo",
        help="fit and evaluate on synthetic shape scenes, offline",
        description="Generate synthetic scenes of shapes, fit a tagger with the "
        "shipped shapes teacher, and print how well it does. Needs no download.",
        formatter_class=formatter,
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the generated scenes and the results (default: "
        "./ccd_demo_output)",
    )
    demo.add_argument(
        "--quick", action="store_true", help="a smaller, faster run (a smoke test)"
    )
    demo.add_argument(
        "--seed", type=int, default=0, metavar="N", help="random seed (default: 0)"
    )
    _add_common(demo)
    demo.set_defaults(handler=_cmd_demo)
    return parser


# ------------------------------------------------------------------- commands


def _verbosity(args: argparse.Namespace) -> int:
    return 0 if getattr(args, "quiet", False) else 1


def _say(args: argparse.Namespace, message: str) -> None:
    """A summary line on stdout, unless --quiet."""
    if _verbosity(args):
        print(message)


def _check_output(path: str, force: bool) -> None:
    """Fail early, before long work, on an output that would be refused."""
    if os.path.isdir(path):
        raise CLIError(f"--out {path!r} is a folder; give a file name.")
    if not force and os.path.lexists(path):
        raise CLIError(f"{path!r} already exists; use --force to overwrite it.")


def _absolute_if_file(value: Any, *, json_only: bool = False) -> Any:
    if not isinstance(value, str):
        return value
    path = os.path.expanduser(value)
    if json_only and not path.endswith(".json"):
        return value
    return os.path.abspath(path) if os.path.isfile(path) else value


def _estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    """CCDClassifier keyword arguments from ``ccd fit`` options.

    With ``--demo-teacher`` the demo settings come first and explicit options
    override them. Local files (model config, checkpoints, caches) are made
    absolute, so that the saved model works from any folder.
    """
    params: dict[str, Any] = {}
    if getattr(args, "demo_teacher", False):
        try:
            from ccd_estimator.datasets import shapes_demo_params
        except ImportError as exc:
            raise CLIError(
                "--demo-teacher needs ccd_estimator.datasets.shapes_demo_params, "
                "which this installation lacks."
            ) from exc
        params.update(shapes_demo_params())
    from ccd_estimator._estimator import CCDClassifier

    known = set(CCDClassifier().get_params()) - {"class_names", "verbose"}
    # every estimator option of fit has dest=PARAMETER and default=SUPPRESS, so
    # the namespace holds exactly the ones given on the command line
    params.update({k: v for k, v in vars(args).items() if k in known})
    if "prompt_templates" in params:
        params["prompt_templates"] = tuple(params["prompt_templates"])
    if args.classes is not None:
        params["class_names"] = read_class_names(args.classes)
    elif not params.get("class_names"):
        raise CLIError(
            "--classes is required: a class file or comma-separated names such "
            "as --classes cat,dog (or use --demo-teacher)."
        )
    if "model_name" in params:
        params["model_name"] = _absolute_if_file(params["model_name"], json_only=True)
    for key in ("pretrained", "student_weights"):
        if key in params:
            params[key] = _absolute_if_file(params[key])
    for key in ("cache_dir", "memory"):
        if isinstance(params.get(key), str):
            params[key] = os.path.abspath(os.path.expanduser(params[key]))
    return params


def _translate_params(message: str) -> str:
    """Name the command-line options in the estimator's parameter errors."""

    def option(match: re.Match) -> str:
        name = match.group(1)
        flag = _PARAM_OPTIONS.get(name)
        return f"- {flag} ({name}) must" if flag else match.group(0)

    return re.sub(r"^- (\w+) must", option, message, flags=re.MULTILINE)


def _cmd_fit(args: argparse.Namespace) -> int:
    from ccd_estimator._estimator import CCDClassifier
    from ccd_estimator.plotting import _atomic_write

    params = _estimator_params(args)
    _check_output(args.out, args.force)
    paths = collect_images(args.images)
    params["verbose"] = _verbosity(args)
    logger.info(
        "fitting on %d images, %d classes", len(paths), len(params["class_names"])
    )
    est = CCDClassifier(**params)
    try:
        est.fit(paths)
    except ValueError as exc:
        if str(exc).startswith("Invalid parameters"):
            raise CLIError(_translate_params(str(exc))) from exc
        raise
    _atomic_write(args.out, est.save, force=args.force)
    skipped = len(est.bad_images_)
    _say(
        args,
        f"wrote {args.out}: {len(est.class_names_)} classes, "
        f"{len(est.train_paths_)} training images"
        + (f" ({skipped} unreadable skipped)" if skipped else "")
        + f", epoch {est.selected_epoch_ + 1} of {est.n_iter_} kept",
    )
    return 0


def _load(args: argparse.Namespace, *, set_threshold: bool = True) -> CCDClassifier:
    from ccd_estimator._estimator import CCDClassifier

    path = os.path.expanduser(args.model)
    if not os.path.isfile(path):
        raise CLIError(f"model file {path!r} does not exist.")
    try:
        est = CCDClassifier.load(path)
    except (ValueError, OSError):
        raise
    except Exception as exc:  # safetensors raises its own error types
        raise CLIError(
            f"cannot load model {path!r}: {exc} (is it a file written by ccd fit?)"
        ) from exc
    updates: dict[str, Any] = {"verbose": _verbosity(args)}
    for option, param in (
        ("device", "device"),
        ("batch_size", "inference_batch_size"),
        ("workers", "n_workers"),
        ("on_bad_image", "on_bad_image"),
        ("threshold", "threshold" if set_threshold else None),
    ):
        if param is None:
            continue
        value = getattr(args, option, None)
        if value is not None:
            updates[param] = value
    est.set_params(**updates)
    logger.debug("loaded %s with %s", path, updates)
    return est


def _class_names(est: CCDClassifier) -> list[str]:
    return [str(n) for n in est.class_names_]


def _write_csv(out: str, rows: list[list[str]], force: bool) -> None:
    from ccd_estimator.plotting import _atomic_write

    def write(target: str | TextIO) -> None:
        if isinstance(target, str):
            with open(target, "w", encoding="utf-8", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows(rows)
        else:
            csv.writer(target, lineterminator="\n").writerows(rows)

    if out == "-":
        write(sys.stdout)
        sys.stdout.flush()
    else:
        _atomic_write(out, write, force=force)


def _cmd_predict(args: argparse.Namespace) -> int:
    est = _load(args)
    names = _class_names(est)
    clash = [n for n in names if n in _RESERVED_COLUMNS]
    if clash:
        raise CLIError(
            f"the model has a class named {clash[0]!r}, which clashes with the "
            "CSV's own columns 'path' and 'labels'."
        )
    if args.out != "-":
        _check_output(args.out, args.force)
    paths = collect_images(args.images)
    proba = est.predict_proba(paths)
    threshold = float(est.threshold)
    rows = [["path", *names, "labels"]]
    for path, p in zip(paths, proba, strict=True):
        if np.isnan(p).any():
            rows.append([path, *([""] * len(names)), ""])
            continue
        labels = ";".join(n for n, v in zip(names, p, strict=True) if v >= threshold)
        rows.append([path, *(repr(float(v)) for v in p), labels])
    _write_csv(args.out, rows, args.force)
    if args.out != "-":
        _say(args, f"wrote {args.out}: {len(paths)} images, {len(names)} classes")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from sklearn.metrics import average_precision_score, f1_score

    est = _load(args)
    names = _class_names(est)
    clash = [n for n in names if n == "path"]
    if clash:
        raise CLIError(
            "the model has a class named 'path', which clashes with the "
            "labels CSV's 'path' column."
        )
    label_paths, Y = read_labels(args.labels, names)
    if args.images:
        rows = {_key(p): i for i, p in enumerate(label_paths)}
        paths = collect_images(args.images)
        missing = [p for p in paths if _key(p) not in rows]
        if missing:
            shown = ", ".join(repr(p) for p in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise CLIError(
                f"{len(missing)} of the images have no row in {args.labels!r}: "
                f"{shown}{more}."
            )
        Y = Y[[rows[_key(p)] for p in paths]]
    else:
        paths = label_paths
    proba = est.predict_proba(paths)
    threshold = float(est.threshold)
    valid = ~np.isnan(proba).any(axis=1)
    if not valid.any():
        raise CLIError("no image could be read; nothing to evaluate.")
    keep = np.asarray((Y > 0).any(axis=0))
    ap = np.full(len(names), np.nan)
    if keep.any():
        ap[keep] = average_precision_score(
            Y[valid][:, keep], proba[valid][:, keep], average=None
        )
    mean_ap = float(np.mean(ap[keep])) if keep.any() else float("nan")
    f1 = float(
        f1_score(
            Y[valid],
            (proba[valid] >= threshold).astype(int),
            average="samples",
            zero_division=1.0,
        )
    )
    _print_report(args, paths, valid, keep, ap, mean_ap, f1, threshold, names, Y)
    return 0


def _print_report(
    args: argparse.Namespace,
    paths: list[str],
    valid: np.ndarray,
    keep: np.ndarray,
    ap: np.ndarray,
    mean_ap: float,
    f1: float,
    threshold: float,
    names: list[str],
    Y: np.ndarray,
) -> None:
    bad = int((~valid).sum())
    summary = [
        ("model", args.model),
        ("images", f"{len(paths)}" + (f" ({bad} unreadable, left out)" if bad else "")),
        (
            "mAP",
            f"{mean_ap:.4f}  (macro over {int(keep.sum())} of {len(names)} classes "
            "with a positive)",
        ),
        ("F1", f"{f1:.4f}  (samples average at threshold {threshold:.2f})"),
    ]
    width = max(len(k) for k, _ in summary)
    for key, value in summary:
        print(f"{key:<{width}}  {value}")
    print()
    table = [("class", "AP", "positives")] + [
        (
            name,
            f"{a:.4f}" if k else "n/a",
            str(int(Y[:, j].sum())),
        )
        for j, (name, a, k) in enumerate(zip(names, ap, keep, strict=True))
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}")
    if not keep.all():
        print("(n/a: no positive among the labels, so AP is undefined)")


def _cmd_explain(args: argparse.Namespace) -> int:
    from ccd_estimator.plotting import _figure_format, plot_explanations, save_figure

    _check_output(args.out, args.force)
    _figure_format(args.out)  # fail before the work on an unknown format
    est = _load(args, set_threshold=False)
    paths = collect_images(args.images)
    if len(paths) > 16:
        warnings.warn(
            f"explaining {len(paths)} images makes a figure {len(paths)} rows high.",
            UserWarning,
            stacklevel=2,
        )
    explanations = est.explain(
        paths, threshold=args.threshold, with_teacher=not args.no_teacher
    )
    fig = plot_explanations(
        explanations,
        _class_names(est),
        max_boxes=args.max_boxes,
        show_cam=not args.no_cam,
    )
    save_figure(fig, args.out, force=args.force)
    _say(args, f"wrote {args.out}: {len(paths)} images")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from ccd_estimator._demo import run_demo
    except ImportError as exc:
        if exc.name != "ccd_estimator._demo":
            raise
        raise CLIError("the demo is not part of this installation.") from exc
    kwargs: dict[str, Any] = {} if args.out is None else {"out_dir": args.out}
    run_demo(
        **kwargs, quick=args.quick, random_state=args.seed, verbose=_verbosity(args)
    )
    return 0


# ------------------------------------------------------------------ plumbing


class _TqdmHandler(logging.Handler):
    """Log records on the current stderr, without breaking progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


@contextlib.contextmanager
def _logging(level: str) -> Iterator[None]:
    """Show ``ccd_estimator`` log records at ``level`` and above on stderr."""
    package = logging.getLogger("ccd_estimator")
    handler = _TqdmHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    saved = package.level, package.propagate
    package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved[0])
        package.propagate = saved[1]


@contextlib.contextmanager
def _readable_warnings() -> Iterator[None]:
    """Show each distinct warning once on stderr as ``ccd: warning: ...``."""
    from ccd_estimator.exceptions import CCDWarning

    shown: set[tuple[type, str]] = set()

    def show(message: Any, category: type, *_: Any, **__: Any) -> None:
        text = str(message)
        if (category, text) in shown:
            return
        shown.add((category, text))
        kind = "" if issubclass(category, (CCDWarning,)) else f" [{category.__name__}]"
        try:
            from tqdm import tqdm

            tqdm.write(f"{_PROG}: warning: {text}{kind}", file=sys.stderr)
        except Exception:  # pragma: no cover
            print(f"{_PROG}: warning: {text}{kind}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.filterwarnings("default", category=CCDWarning)
        warnings.showwarning = show
        yield


def _report(exc: BaseException, show_traceback: bool) -> None:
    if show_traceback:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    message = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (FileNotFoundError, FileExistsError, PermissionError)):
        if exc.filename is not None and exc.strerror:
            message = f"{exc.strerror}: {exc.filename!r}"
            if isinstance(exc, FileExistsError):
                message += "; use --force to overwrite it"
    elif not isinstance(exc, (CLIError, ValueError, ImportError)):
        message = f"{type(exc).__name__}: {message}"
        if not show_traceback:
            message += " (run with --traceback for details)"
    print(f"{_PROG}: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the ``ccd`` command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after the program name; None uses ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a usage or input error (bad
        options, missing or unreadable files, invalid parameter values, an
        output that exists without ``--force``), 1 for any other failure, 130
        when interrupted.

    Examples
    --------
    >>> from ccd_estimator.cli import main
    >>> main(["predict", "tagger.safetensors", "--images", "photos/",
    ...       "--out", "tags.csv"])  # doctest: +SKIP
    0
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except CLIError as exc:
        _report(exc, False)
        return _EXIT_INPUT
    show_traceback = bool(getattr(args, "traceback", False))
    if args.command is None:
        _report(
            CLIError(
                "choose a command: fit, predict, evaluate, explain or demo "
                "(see 'ccd --help')"
            ),
            False,
        )
        return _EXIT_INPUT
    with _logging(getattr(args, "log_level", "WARNING")), _readable_warnings():
        try:
            logger.debug("ccd %s: %s", args.command, vars(args))
            return int(args.handler(args))
        except (
            CLIError,
            ValueError,
            FileNotFoundError,
            FileExistsError,
            IsADirectoryError,
            NotADirectoryError,
            PermissionError,
        ) as exc:
            _report(exc, show_traceback)
            return _EXIT_INPUT
        except KeyboardInterrupt:
            print(f"{_PROG}: interrupted", file=sys.stderr)
            return _EXIT_INTERRUPTED
        except BrokenPipeError:  # e.g. `ccd predict ... | head`
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return _EXIT_FAILURE
        except Exception as exc:
            _report(exc, show_traceback)
            return _EXIT_FAILURE
