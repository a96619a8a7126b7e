"""CCDClassifier: Classifier-guided CLIP Distillation as a scikit-learn estimator."""

from __future__ import annotations

import inspect
import json
import logging
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import average_precision_score
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, check_memory

from ccd_estimator._data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    make_loader,
    normalized_view,
)
from ccd_estimator._debias import class_bias, debias_labels, entropy_flags
from ccd_estimator._images import check_paths
from ccd_estimator._progress import progress
from ccd_estimator._student import CAMStudent, build_student
from ccd_estimator._teacher import Teacher, global_scores, resolve_precision
from ccd_estimator._training import TrainConfig, _to_device, train_student
from ccd_estimator.exceptions import (
    BadImagesWarning,
    DeviceWarning,
    UnreadableImagesError,
)

__all__ = ["CCDClassifier"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_MAX_BAD_FRACTION = 0.5


def _is_int(value: Any, low: int | None = None) -> bool:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return ok and (low is None or value >= low)


def _is_real(value: Any, low: float | None = None, high: float | None = None) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    number = float(value)
    if not np.isfinite(number):
        return False
    return (low is None or number >= low) and (high is None or number <= high)


def _choice(*options: str) -> tuple[Any, str]:
    text = ", ".join(repr(o) for o in options)
    return (lambda v: isinstance(v, str) and v in options, f"one of {text}")


def _int(low: int) -> tuple[Any, str]:
    return (lambda v: _is_int(v, low), f"an int >= {low}")


def _real(low: float, high: float | None = None, text: str = "") -> tuple[Any, str]:
    text = text or (
        f"a number >= {low}" if high is None else f"a number in [{low}, {high}]"
    )
    return (lambda v: _is_real(v, low, high), text)


def _positive() -> tuple[Any, str]:
    return (lambda v: _is_real(v, 0.0) and v > 0, "a positive number")


def _optional(check: tuple[Any, str]) -> tuple[Any, str]:
    return (lambda v: v is None or check[0](v), f"None or {check[1]}")


def _path_like(text: str) -> tuple[Any, str]:
    return (lambda v: v is None or isinstance(v, (str, os.PathLike)), text)


_BOOL = (lambda v: isinstance(v, bool), "True or False")
_NAME = (lambda v: isinstance(v, str) and v != "", "a non-empty string")

# keyword arguments this torch's torch.compile accepts (they vary by version)
_COMPILE_ARGS = frozenset(inspect.signature(torch.compile).parameters) - {"model"}

# Each parameter: (check, what is allowed). Checked at fit, all at once.
_CONSTRAINTS: dict[str, tuple[Any, str]] = {
    "model_name": _NAME,
    "pretrained": _path_like("an open_clip tag, a checkpoint path or None"),
    "cache_dir": _path_like("a folder path or None"),
    "precision": _choice("auto", "fp32", "fp16", "bf16"),
    "logit_scale": _optional(_positive()),
    "teacher_image_size": _optional(_int(1)),
    "cam_image_size": _int(8),
    "crop_size": _optional(_int(1)),
    "teacher_normalize": _choice("teacher", "imagenet"),
    "entropy_threshold": _real(0.0),
    "label_floor": _real(0.0, 0.999, "a number in [0, 1)"),
    "debias_global": _BOOL,
    "debias_local": _BOOL,
    "uncertain_weight": _real(0.0, 1.0),
    "student": _NAME,
    "student_weights": _path_like("None, a weights name or a file path"),
    "student_kwargs": (lambda v: v is None or isinstance(v, dict), "None or a dict"),
    "image_size": _int(8),
    "cam_multiplier": _positive(),
    "learning_rate": _positive(),
    "head_lr_multiplier": _positive(),
    "batch_size": _int(1),
    "inference_batch_size": _int(1),
    "max_epochs": _int(1),
    "consistency_weight": _real(0.0),
    "consistency_start": _int(0),
    "update_epochs": (
        lambda v: isinstance(v, (tuple, list)) and all(_is_int(e, 1) for e in v),
        "a tuple of epoch numbers >= 1",
    ),
    "candidate_bound": _real(0.0),
    "cam_threshold": _real(0.0, 0.999, "a number in [0, 1)"),
    "box_mode": _choice("reference", "tight"),
    "crop_margin": _real(0.0, 1.0, "a fraction of the image side in [0, 1]"),
    "aggregation": _choice("max", "mean"),
    "blend_ratio": _real(0.0, 1.0),
    "selection": _choice("train_map", "last"),
    "threshold": _real(0.0, 1.0),
    "on_bad_image": _choice("raise", "nan"),
    "device": (
        lambda v: isinstance(v, (str, torch.device)),
        "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device",
    ),
    "n_workers": _int(0),
    "compile": (
        lambda v: (
            isinstance(v, (bool, np.bool_))
            or (isinstance(v, dict) and set(v) <= _COMPILE_ARGS)
        ),
        "True, False or a dict of torch.compile keyword arguments ("
        + ", ".join(sorted(_COMPILE_ARGS))
        + ")",
    ),
    "verbose": (lambda v: _is_int(v, 0) or isinstance(v, bool), "an int >= 0"),
}


def _check_class_names(class_names: Any) -> np.ndarray:
    """Validate class names: a sequence of unique, non-empty strings."""
    if class_names is None:
        raise ValueError(
            "class_names is required: pass the list of class names to tag, e.g. "
            "CCDClassifier(class_names=['cat', 'dog'])."
        )
    if isinstance(class_names, (str, bytes)):
        raise ValueError(
            f"class_names must be a list of names, got the single string "
            f"{class_names!r}; wrap it in a list: [{class_names!r}]."
        )
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty: pass at least one class name.")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ValueError(
                f"class_names[{i}] must be a string, got {type(name).__name__} "
                f"{name!r}."
            )
        key = " ".join(name.split()).casefold()
        if not key:
            raise ValueError(f"class_names[{i}] is empty or whitespace only.")
        if key in seen:
            raise ValueError(
                f"class_names[{i}]={name!r} duplicates class_names[{seen[key]}]="
                f"{names[seen[key]]!r} (names are compared ignoring case and "
                "repeated whitespace)."
            )
        seen[key] = i
    return np.asarray(names, dtype=object)


def _resolve_device(device: Any, *, strict: bool) -> torch.device:
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu', "
            "'cuda' or 'cuda:N'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        if strict:
            raise ValueError(
                f"device={device!r} but no CUDA device is available; use "
                "device='auto' or 'cpu'."
            )
        warnings.warn(
            f"device={device!r} is not available here; using the CPU instead.",
            DeviceWarning,
            stacklevel=3,
        )
        return torch.device("cpu")
    return dev


class CCDClassifier(ClassifierMixin, BaseEstimator):
    """Multi-label image tagger trained without annotation by CLIP distillation.

    Classifier-guided CLIP Distillation (CCD, Kim & Shim, CVPR 2025). A CLIP
    teacher (open_clip) scores each training image against a text prompt per
    class; the per-class bias of those softmax scores is estimated and divided
    out; a CNN student with a class-activation-map (CAM) head learns from the
    resulting soft pseudo-labels; at the label-update epochs the student's CAMs
    choose a local view around each candidate class, the teacher scores those
    views, and the pseudo-labels are blended with them. ``fit`` needs no
    labels. Defaults reproduce the released training script; the released
    code's bugs are fixed (see the user guide).

    Parameters
    ----------
    class_names : sequence of str
        The class names, in column order. Required.
    prompt_templates : tuple of str, default=("a photo of the {}",)
        Prompt templates, each with one ``{}``; the text embeddings of a class
        are averaged over templates.
    model_name : str, default="RN50x64-quickgelu"
        open_clip model name (see ``open_clip.list_models()``), an
        ``hf-hub:``/``local-dir:`` reference, or the path of a JSON model
        config file, which is registered with ``open_clip.add_model_config``.
    pretrained : str or None, default="openai"
        open_clip pretrained tag (downloaded where a network exists) or the
        path of a local checkpoint file.
    cache_dir : str or None, default=None
        Download cache for pretrained tags.
    precision : {"auto", "fp32", "fp16", "bf16"}, default="auto"
        Autocast precision of teacher and student on CUDA ("auto": bf16 where
        supported, else fp16). On a CPU everything runs in float32; asking for
        fp16/bf16 there gives a ``DeviceWarning``.
    logit_scale : float or None, default=None
        Teacher softmax scale; None uses the model's learned scale (100 for
        OpenAI CLIP).
    teacher_image_size : int or None, default=640
        Side of the teacher's global view. ModifiedResNet towers take any size
        (their attention-pool positional embedding is resampled); other towers
        need None (their native size).
    cam_image_size : int, default=640
        Side of the view on which the student computes CAMs during a label
        update; crops are cut from this view.
    crop_size : int or None, default=640
        Long side of a local view given to the teacher (None: the teacher's
        native size). For ModifiedResNet towers the aspect ratio is kept, the
        short side rounded to a multiple of 32; other towers get squares.
    teacher_normalize : {"teacher", "imagenet"}, default="teacher"
        Normalisation of teacher inputs: the model's own mean/std, or ImageNet
        statistics as in the released code.
    entropy_threshold : float, default=2.0
        Images whose teacher entropy (nats) is above this are uncertain; they
        do not enter the bias estimate.
    label_floor : float, default=0.05
        Label-smoothing floor applied before debiasing (0 disables it).
    debias_global : bool, default=True
        Divide the global pseudo-labels by the class bias.
    debias_local : bool, default=True
        Divide the local-view scores by the class bias.
    uncertain_weight : float, default=1.0
        Loss weight of uncertain images (1.0, as in the released script, turns
        the weighting off).
    student : str, default="torchvision:resnet50"
        Student backbone: ``"timm:NAME"``, ``"torchvision:NAME"`` or a bare name
        (timm first, then torchvision).
    student_weights : str or None, default="IMAGENET1K_V1"
        None (random init), a local weights file, or a named pretrained set (a
        torchvision weights name or a timm tag such as ``"default"``) that
        downloads where a network exists.
    student_kwargs : dict or None, default=None
        Extra keyword arguments for the backbone constructor.
    image_size : int, default=448
        Side of the student's square input for training and prediction.
    cam_multiplier : float, default=3.0
        Multiplier of the positive part of each CAM.
    learning_rate : float, default=1e-5
        Adam learning rate of the backbone.
    head_lr_multiplier : float, default=10.0
        The CAM head's learning rate is ``learning_rate`` times this.
    batch_size : int, default=16
        Batch size of the student's training steps.
    inference_batch_size : int, default=64
        Batch size of the passes that do not train: the teacher's global pass,
        the student's CAM pass and the teacher's crop scores in a label update,
        and ``predict``. Larger batches are faster on a GPU, and on a CPU for
        small models (a real-sized teacher on a CPU gains little; see
        ``docs/performance.md``); lower it if a big teacher at a big input
        size runs out of device memory. It does not change the results beyond
        float rounding.
    max_epochs : int, default=10
        Training epochs.
    consistency_weight : float, default=1.0
        Weight of the consistency loss between a clean and a colour-jittered
        view (0 disables it).
    consistency_start : int, default=2
        First epoch (0-based) with the consistency loss.
    update_epochs : tuple of int, default=(2,)
        Epochs (0-based, >= 1) at whose start the CAM-guided label update runs.
    candidate_bound : float, default=4.0
        The candidate threshold is chosen so that the mean number of
        candidate classes per image lies in ``(bound, bound + 2)``.
    cam_threshold : float, default=0.95
        Threshold on the min-max normalised CAM that defines the hot region.
    box_mode : {"reference", "tight"}, default="reference"
        "reference" reproduces the released box from the first and last hot
        pixel in raster order; "tight" is the bounding box of the hot region.
    crop_margin : float, default=0.125
        Margin added on each side of a box, as a fraction of
        ``cam_image_size`` (80 px at 640).
    aggregation : {"max", "mean"}, default="max"
        How the scores of an image's crops are combined.
    blend_ratio : float, default=0.2
        Weight of the old label when blending in the local scores.
    selection : {"train_map", "last"}, default="train_map"
        Model selection without ground truth: the released train-mAP rule, or
        the last epoch.
    threshold : float, default=0.5
        Probability threshold of ``predict``.
    memory : str, joblib.Memory or None, default=None
        Cache of the teacher's global pass, per image (keyed by the teacher
        settings and each file's path, size and modification time), so
        refitting, cross-validation and grid search score each image once.
    on_bad_image : {"raise", "nan"}, default="raise"
        What prediction does with unreadable files: raise one error listing
        all of them, or return NaN rows with a warning. ``fit`` always skips
        them with a warning.
    device : str or torch.device, default="auto"
        "auto" picks CUDA when available, else the CPU.
    n_workers : int, default=0
        DataLoader worker processes.
    compile : bool or dict, default=False
        Run the student's training steps and the teacher's image encoder
        through ``torch.compile``; a dict is passed to it as keyword arguments
        (e.g. ``{"mode": "max-autotune"}``). Meant for a GPU: every new input
        shape compiles again, and on the 2-core CPU a small fit took 165 s
        instead of 3.4 s with no faster steps (``docs/performance.md``).
        Compiled kernels round differently, and training carries that
        forward: predictions differed from an eager fit by up to 0.02.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and augmentation.
    verbose : int, default=0
        0 is silent; 1 logs one line per epoch and shows progress bars when
        stderr is a terminal or the code runs in a notebook; 2 shows the bars
        also when stderr is redirected (to a file or a CI log).

    Attributes
    ----------
    class_names_ : ndarray of shape (n_classes,)
        Class names in column order.
    classes_ : ndarray of shape (n_classes, 2)
        ``[0, 1]`` for each column: every column is a binary label (the form
        scikit-learn's multilabel scorers and ``cross_val_predict`` expect).
    teacher_info_ : dict
        What teacher was actually used: architecture, preprocessing, scale,
        image sizes.
    train_paths_ : ndarray of shape (n_samples_fit,)
        The usable training images; rows of the arrays below.
    bad_images_ : dict
        Unreadable training files mapped to the reason.
    teacher_scores_ : ndarray of shape (n_samples_fit, n_classes)
        The teacher's global softmax scores.
    confident_ : ndarray of shape (n_samples_fit,)
        Entropy flags (True where confident).
    bias_ : ndarray of shape (n_classes,)
        Per-class bias (mean top-1 probability over confident images).
    initial_pseudo_labels_ : ndarray of shape (n_samples_fit, n_classes)
        Soft pseudo-labels after floor, debiasing and clamping.
    pseudo_labels_ : ndarray of shape (n_samples_fit, n_classes)
        Soft pseudo-labels after the last label update.
    pseudo_label_stages_ : dict of str to ndarray
        The pseudo-labels at each stage, each of shape (n_samples_fit,
        n_classes): ``"initial"`` and ``"update_<epoch>"`` for each update.
    history_ : list of dict
        One record per epoch: ``bce_loss``, ``consistency_loss``,
        ``train_map`` (mAP of the online predictions against pseudo-labels
        equal to 1), ``seconds``, and, at update epochs, ``threshold``,
        ``candidates_per_image``, ``crops_per_image``,
        ``images_without_crop``.
    selected_epoch_ : int
        The epoch (0-based) whose weights were kept.
    n_iter_ : int
        Number of epochs run.
    student_ : torch.nn.Module
        The trained student (on CPU after unpickling).

    See Also
    --------
    ccd_estimator.datasets.shapes_demo_params : a small, offline configuration.

    References
    ----------
    D. Kim and H. Shim, "Classifier-guided CLIP Distillation for Unsupervised
    Multi-label Classification", CVPR 2025.

    Examples
    --------
    >>> from ccd_estimator import CCDClassifier
    >>> clf = CCDClassifier(class_names=["cat", "dog"])
    >>> clf.get_params()["class_names"]
    ['cat', 'dog']
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        *,
        prompt_templates: Sequence[str] = ("a photo of the {}",),
        model_name: str = "RN50x64-quickgelu",
        pretrained: str | None = "openai",
        cache_dir: str | None = None,
        precision: str = "auto",
        logit_scale: float | None = None,
        teacher_image_size: int | None = 640,
        cam_image_size: int = 640,
        crop_size: int | None = 640,
        teacher_normalize: str = "teacher",
        entropy_threshold: float = 2.0,
        label_floor: float = 0.05,
        debias_global: bool = True,
        debias_local: bool = True,
        uncertain_weight: float = 1.0,
        student: str = "torchvision:resnet50",
        student_weights: str | None = "IMAGENET1K_V1",
        student_kwargs: dict[str, Any] | None = None,
        image_size: int = 448,
        cam_multiplier: float = 3.0,
        learning_rate: float = 1e-5,
        head_lr_multiplier: float = 10.0,
        batch_size: int = 16,
        inference_batch_size: int = 64,
        max_epochs: int = 10,
        consistency_weight: float = 1.0,
        consistency_start: int = 2,
        update_epochs: Sequence[int] = (2,),
        candidate_bound: float = 4.0,
        cam_threshold: float = 0.95,
        box_mode: str = "reference",
        crop_margin: float = 0.125,
        aggregation: str = "max",
        blend_ratio: float = 0.2,
        selection: str = "train_map",
        threshold: float = 0.5,
        memory: Any = None,
        on_bad_image: str = "raise",
        device: str | torch.device = "auto",
        n_workers: int = 0,
        compile: bool | dict[str, Any] = False,
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.class_names = class_names
        self.prompt_templates = prompt_templates
        self.model_name = model_name
        self.pretrained = pretrained
        self.cache_dir = cache_dir
        self.precision = precision
        self.logit_scale = logit_scale
        self.teacher_image_size = teacher_image_size
        self.cam_image_size = cam_image_size
        self.crop_size = crop_size
        self.teacher_normalize = teacher_normalize
        self.entropy_threshold = entropy_threshold
        self.label_floor = label_floor
        self.debias_global = debias_global
        self.debias_local = debias_local
        self.uncertain_weight = uncertain_weight
        self.student = student
        self.student_weights = student_weights
        self.student_kwargs = student_kwargs
        self.image_size = image_size
        self.cam_multiplier = cam_multiplier
        self.learning_rate = learning_rate
        self.head_lr_multiplier = head_lr_multiplier
        self.batch_size = batch_size
        self.inference_batch_size = inference_batch_size
        self.max_epochs = max_epochs
        self.consistency_weight = consistency_weight
        self.consistency_start = consistency_start
        self.update_epochs = update_epochs
        self.candidate_bound = candidate_bound
        self.cam_threshold = cam_threshold
        self.box_mode = box_mode
        self.crop_margin = crop_margin
        self.aggregation = aggregation
        self.blend_ratio = blend_ratio
        self.selection = selection
        self.threshold = threshold
        self.memory = memory
        self.on_bad_image = on_bad_image
        self.device = device
        self.n_workers = n_workers
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks

    def _validate_params(self) -> np.ndarray:
        """Check every parameter; raise one ValueError listing all problems."""
        problems = []
        for name, (check, allowed) in _CONSTRAINTS.items():
            value = getattr(self, name)
            if not check(value):
                problems.append(f"{name} must be {allowed}; got {value!r} instead.")
        templates = self.prompt_templates
        if (
            isinstance(templates, str)
            or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates)
            or len(templates) == 0
        ):
            problems.append(
                "prompt_templates must be a non-empty tuple of strings with exactly "
                f"one '{{}}' each; got {templates!r} instead."
            )
        if problems:
            raise ValueError(
                f"Invalid parameters for {type(self).__name__}:\n- "
                + "\n- ".join(problems)
            )
        return _check_class_names(self.class_names)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.required = False
        tags.target_tags.two_d_labels = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_label = True
        tags.non_deterministic = True
        return tags

    # --------------------------------------------------------------------- fit

    def _teacher_factory(self, names: np.ndarray, device: torch.device, precision: str):
        made: list[Teacher] = []

        def factory() -> Teacher:
            if not made:
                made.append(self._build_teacher(names, device, precision))
            return made[0]

        return factory, made

    def _build_teacher(
        self, names: Sequence[str] | np.ndarray, device: torch.device, precision: str
    ) -> Teacher:
        """Load the teacher these parameters describe (fit and explain)."""
        return Teacher(
            str(self.model_name),
            None if self.pretrained is None else os.fspath(self.pretrained),
            [str(n) for n in names],
            list(self.prompt_templates),
            device,
            precision=precision,
            logit_scale=self.logit_scale,
            normalize=self.teacher_normalize,
            cache_dir=None if self.cache_dir is None else os.fspath(self.cache_dir),
            compile_kwargs=self._compile_kwargs(),
        )

    def _compile_kwargs(self) -> dict[str, Any] | None:
        """torch.compile keyword arguments, or None to run eagerly."""
        if isinstance(self.compile, dict):
            return dict(self.compile)
        return {} if self.compile else None

    def _signature(self, names: np.ndarray, precision: str) -> tuple:
        pretrained: Any = self.pretrained
        if pretrained is not None and os.path.isfile(os.fspath(pretrained)):
            st = os.stat(pretrained)
            pretrained = (os.path.abspath(pretrained), st.st_mtime_ns, st.st_size)
        model: Any = self.model_name
        if isinstance(model, str) and model.endswith(".json") and os.path.isfile(model):
            model = (os.path.abspath(model), os.stat(model).st_mtime_ns)
        return (
            "ccd-global-v1",
            model,
            pretrained,
            tuple(self.prompt_templates),
            tuple(names),
            self.logit_scale,
            self.teacher_normalize,
            self.teacher_image_size,
            precision,
        )

    def fit(self, X: Sequence[str | os.PathLike], y: Any = None) -> CCDClassifier:
        """Fit the student on unlabeled images.

        Parameters
        ----------
        X : sequence of str or os.PathLike
            Image paths (list, tuple, 1-D array or pandas Series).
        y : None
            Ignored; accepted so that scikit-learn tools can pass ground truth
            for scoring. Training never sees it.

        Returns
        -------
        self : CCDClassifier
            The fitted estimator.
        """
        names = self._validate_params()
        paths = check_paths(X)
        device = _resolve_device(self.device, strict=True)
        precision = resolve_precision(self.precision, device)
        memory = check_memory(self.memory) if self.memory is not None else None
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        factory, made = self._teacher_factory(names, device, precision)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            size = self._teacher_size(factory, made)
            scores, ok, errors = global_scores(
                factory,
                paths,
                len(names),
                size,
                self.inference_batch_size,
                self.n_workers,
                device,
                memory=memory,
                signature=self._signature(names, precision),
                verbose=self.verbose,
            )
            paths, scores = self._drop_bad_images(paths, scores, ok, errors)
            self._make_pseudo_labels(scores)
            self._train(paths, names, factory, made, device, precision, seed)

        self.class_names_ = names
        self.classes_ = np.tile(np.array([0, 1]), (len(names), 1))
        self.train_paths_ = paths
        self.teacher_scores_ = scores
        self.device_ = str(device)
        return self

    def _teacher_size(self, factory: Any, made: list) -> int:
        """Size of the global view; loads the teacher only when it must check."""
        size = self.teacher_image_size
        if size is None or made:
            return factory().check_image_size(size, "teacher_image_size")
        if not self._is_resnet_config():
            return factory().check_image_size(size, "teacher_image_size")
        return int(size)

    def _is_resnet_config(self) -> bool:
        """Whether model_name is a ModifiedResNet tower, from its config alone."""
        import open_clip

        name = str(self.model_name)
        if name.endswith(".json") and os.path.isfile(name):
            with open(name, encoding="utf-8") as f:
                cfg = json.load(f)
        else:
            cfg = open_clip.get_model_config(name) or {}
        layers = cfg.get("vision_cfg", {}).get("layers")
        return isinstance(layers, (list, tuple))

    def _drop_bad_images(
        self,
        paths: np.ndarray,
        scores: np.ndarray,
        ok: np.ndarray,
        errors: list[str],
    ) -> tuple[np.ndarray, np.ndarray]:
        self.bad_images_ = {
            str(p): e for p, e, g in zip(paths, errors, ok, strict=True) if not g
        }
        n_bad = len(self.bad_images_)
        if n_bad:
            listing = "\n".join(f"  {e}" for e in self.bad_images_.values())
            warnings.warn(
                f"{n_bad} of {len(paths)} images could not be read and are "
                f"skipped (listed in bad_images_):\n{listing}",
                BadImagesWarning,
                stacklevel=3,
            )
        if ok.sum() == 0 or n_bad > _MAX_BAD_FRACTION * len(paths):
            raise ValueError(
                f"Only {int(ok.sum())} of {len(paths)} images could be read; fit "
                f"needs more than {_MAX_BAD_FRACTION:.0%} of them. Check the paths "
                "(see the warning above for the reasons)."
            )
        return paths[ok], scores[ok]

    def _make_pseudo_labels(self, scores: np.ndarray) -> None:
        self.confident_ = entropy_flags(scores, self.entropy_threshold)
        self.bias_ = class_bias(scores, self.confident_)
        self.initial_pseudo_labels_ = debias_labels(
            scores, self.bias_ if self.debias_global else None, self.label_floor
        )

    def _train_config(self, factory: Any, made: list, precision: str) -> TrainConfig:
        updates = tuple(e for e in self.update_epochs if e < self.max_epochs)
        late = sorted(set(self.update_epochs) - set(updates))
        if late:
            warnings.warn(
                f"update_epochs {late} are not below max_epochs={self.max_epochs} "
                "(epochs count from 0), so those label updates never run.",
                UserWarning,
                stacklevel=4,
            )
        crop_size = self.crop_size
        multiple: int | None = 32
        if updates:
            teacher = factory()
            crop_size = teacher.check_image_size(crop_size, "crop_size")
            multiple = 32 if teacher.is_resnet else None
        return TrainConfig(
            image_size=int(self.image_size),
            cam_image_size=int(self.cam_image_size),
            crop_size=int(crop_size or 0),
            crop_multiple=multiple,
            batch_size=int(self.batch_size),
            max_epochs=int(self.max_epochs),
            learning_rate=float(self.learning_rate),
            head_lr_multiplier=float(self.head_lr_multiplier),
            consistency_weight=float(self.consistency_weight),
            consistency_start=int(self.consistency_start),
            update_epochs=updates,
            candidate_bound=float(self.candidate_bound),
            candidate_start=float(self.label_floor) if self.label_floor > 0 else 1e-3,
            cam_threshold=float(self.cam_threshold),
            box_mode=str(self.box_mode),
            crop_margin=float(self.crop_margin),
            aggregation=str(self.aggregation),
            blend_ratio=float(self.blend_ratio),
            label_floor=float(self.label_floor),
            debias_local=bool(self.debias_local),
            selection=str(self.selection),
            n_workers=int(self.n_workers),
            precision=precision,
            verbose=int(self.verbose),
            inference_batch_size=int(self.inference_batch_size),
            compile_kwargs=self._compile_kwargs(),
        )

    def _train(
        self,
        paths: np.ndarray,
        names: np.ndarray,
        factory: Any,
        made: list,
        device: torch.device,
        precision: str,
        seed: int,
    ) -> None:
        cfg = self._train_config(factory, made, precision)
        # seed here, not only at the start of fit: whether the teacher pass ran
        # or came from the cache must not change the student's initial weights
        torch.manual_seed(seed)
        student = build_student(
            str(self.student),
            len(names),
            None if self.student_weights is None else os.fspath(self.student_weights),
            self.student_kwargs,
        )
        student.set_cam_multiplier(self.cam_multiplier)
        # NHWC on every device: 1.5x training, 1.35x inference throughput of
        # the demo's ResNet-18 on a 2-core CPU (oneDNN), and the GPU fast path
        student = student.to(device).to(memory_format=torch.channels_last)
        weights = np.where(self.confident_, 1.0, self.uncertain_weight)
        generator = torch.Generator().manual_seed(seed)
        result = train_student(
            student,
            paths,
            self.initial_pseudo_labels_,
            weights,
            self.bias_,
            factory,
            cfg,
            device,
            generator,
        )
        student.load_state_dict(result.state)
        student.eval()
        self.student_ = student
        self.history_ = result.history
        self.selected_epoch_ = result.selected_epoch
        self.n_iter_ = len(result.history)
        # a copy: without a label update the loop hands back the initial array
        self.pseudo_labels_ = np.array(result.labels, copy=True)
        self.pseudo_label_stages_ = result.label_stages
        teacher_info = (
            made[0].describe() if made else {"model_name": str(self.model_name)}
        )
        teacher_info.update(
            teacher_image_size=self.teacher_image_size,
            crop_size=cfg.crop_size if cfg.update_epochs else self.crop_size,
        )
        self.teacher_info_ = teacher_info
        made.clear()  # the teacher is a fit-time tool; drop it now

    # ----------------------------------------------------------------- predict

    def _runtime_device(self) -> torch.device:
        device = _resolve_device(self.device, strict=False)
        if next(self.student_.parameters()).device != device:
            self.student_.to(device)
        return device

    @torch.inference_mode()
    def _forward(self, X: Sequence[str | os.PathLike]) -> np.ndarray:
        """Student logits, NaN rows for unreadable files (or raise)."""
        check_is_fitted(self, "student_")
        paths = check_paths(X)
        device = self._runtime_device()
        self.student_.eval()
        loader = make_loader(
            paths,
            normalized_view(int(self.image_size), IMAGENET_MEAN, IMAGENET_STD),
            int(self.inference_batch_size),
            int(self.n_workers),
            device,
        )
        logits = np.full((len(paths), len(self.class_names_)), np.nan, np.float32)
        bad: list[str] = []
        for batch in progress(loader, self.verbose, "predict"):
            idx = batch["index"].numpy()
            good = batch["ok"].numpy()
            bad.extend(e for e, g in zip(batch["error"], good, strict=True) if not g)
            if good.any():
                x = _to_device(batch["image"][torch.as_tensor(good)], device)
                logits[idx[good]] = self.student_(x).float().cpu().numpy()
        if bad:
            listing = "\n".join(f"  {e}" for e in bad)
            if self.on_bad_image == "raise":
                raise UnreadableImagesError(
                    f"{len(bad)} of {len(paths)} images could not be read:\n{listing}"
                    "\nFix or remove them, or set on_bad_image='nan' to get NaN rows.",
                    bad,
                )
            warnings.warn(
                f"{len(bad)} of {len(paths)} images could not be read; their rows "
                f"are NaN:\n{listing}",
                BadImagesWarning,
                stacklevel=3,
            )
        return logits

    def decision_function(self, X: Sequence[str | os.PathLike]) -> np.ndarray:
        """Student logits.

        Parameters
        ----------
        X : sequence of str or os.PathLike
            Image paths.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Logits, one row per input in input order (NaN rows for unreadable
            files when ``on_bad_image="nan"``).
        """
        return self._forward(X).astype(np.float64)

    def predict_proba(self, X: Sequence[str | os.PathLike]) -> np.ndarray:
        """Independent per-class probabilities.

        Parameters
        ----------
        X : sequence of str or os.PathLike
            Image paths.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Sigmoid probabilities; rows need not sum to 1. One row per input,
            in input order.
        """
        logits = self._forward(X).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    def predict(self, X: Sequence[str | os.PathLike]) -> np.ndarray:
        """Indicator matrix of the classes whose probability reaches ``threshold``.

        Parameters
        ----------
        X : sequence of str or os.PathLike
            Image paths.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), dtype int
            1 where ``predict_proba >= threshold`` (0 for NaN rows).
        """
        return (self.predict_proba(X) >= self.threshold).astype(int)

    def score(self, X: Sequence[str | os.PathLike], y: Any) -> float:
        """Macro mean average precision over the classes present in ``y``.

        Classes with no positive in ``y`` are skipped (with a warning), since
        their average precision is undefined; this differs from the released
        code, which counted them as 0.

        Parameters
        ----------
        X : sequence of str or os.PathLike
            Image paths.
        y : array-like of shape (n_samples, n_classes)
            Ground-truth indicator matrix.

        Returns
        -------
        float
            Mean AP in [0, 1] (NaN if no class has a positive).
        """
        Y = np.asarray(y)
        if Y.ndim == 1 and len(self.class_names_) == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or Y.shape[1] != len(self.class_names_):
            raise ValueError(
                f"y must be an indicator matrix of shape (n_samples, "
                f"{len(self.class_names_)}); got shape {Y.shape}."
            )
        P = self.predict_proba(X)
        keep = (Y > 0).any(axis=0)
        if not keep.all():
            skipped = [str(n) for n in self.class_names_[~keep]]
            warnings.warn(
                f"score: classes without a positive in y are skipped: {skipped}",
                UserWarning,
                stacklevel=2,
            )
        if not keep.any():
            return float("nan")
        valid = ~np.isnan(P).any(axis=1)
        return float(
            average_precision_score(
                Y[valid][:, keep], P[valid][:, keep], average="macro"
            )
        )

    def explain(
        self,
        X: Sequence[str | os.PathLike],
        *,
        threshold: float | None = None,
        with_teacher: bool = True,
    ) -> list[Any]:
        """Show which regions the student uses and what the teacher sees there.

        For each image: the per-class CAMs, the crop box the label update
        would cut for each candidate class (probability at least
        ``threshold``; the top class when none reaches it), and, with the
        teacher, its softmax on the whole image and on each crop. The teacher
        is loaded again from ``model_name`` and ``pretrained``.

        Parameters
        ----------
        X : sequence of str or os.PathLike
            A few image paths.
        threshold : float or None, default=None
            Candidate threshold; None uses the one chosen at the last label
            update (or ``threshold`` when there was none).
        with_teacher : bool, default=True
            Also score the whole image and the crops with the teacher.

        Returns
        -------
        list of Explanation
            One per image; see ``ccd_estimator.Explanation``.
        """
        from ccd_estimator._explain import explain

        return explain(self, X, threshold=threshold, with_teacher=with_teacher)

    # ------------------------------------------------------------- persistence

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        student = state.pop("student_", None)
        if student is not None:
            state["_student_state"] = {
                k: v.detach().cpu().clone() for k, v in student.state_dict().items()
            }
        state["_ccd_version"] = _package_version()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        student_state = state.pop("_student_state", None)
        state.pop("_ccd_version", None)
        self.__dict__.update(state)
        if student_state is not None:
            self.student_ = self._rebuild_student(student_state)

    def _rebuild_student(self, state: dict[str, torch.Tensor]) -> CAMStudent:
        student = build_student(
            str(self.student), len(self.class_names_), None, self.student_kwargs
        )
        student = student.to(memory_format=torch.channels_last)  # as fit leaves it
        student.load_state_dict(state)
        return student.eval()

    _ARRAYS = (
        "bias_",
        "teacher_scores_",
        "confident_",
        "initial_pseudo_labels_",
        "pseudo_labels_",
    )

    def save(self, path: str | os.PathLike) -> None:
        """Save a fitted estimator as one safetensors file, without pickle.

        The student's weights and the fitted arrays are tensors; the
        parameters, class names, history and teacher description are JSON in
        the file's metadata. Load it with ``load``, which never unpickles
        anything, so a file from an untrusted source cannot run code.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file (written atomically).
        """
        from safetensors.torch import save_file

        check_is_fitted(self, "student_")
        tensors = {
            f"student.{k}": v.detach().cpu().contiguous()
            for k, v in self.student_.state_dict().items()
        }
        for name in self._ARRAYS:
            # copies: safetensors refuses arrays that share memory
            tensors[f"fitted.{name}"] = torch.tensor(np.array(getattr(self, name)))
        params = {k: v for k, v in self.get_params().items() if k != "memory"}
        try:
            json.dumps(_jsonable(params["compile"]))
        except TypeError:
            warnings.warn(
                f"compile={self.compile!r} cannot be written to JSON (e.g. a "
                "callable backend); the saved model has compile=False. It only "
                "affects later fits, not the fitted student.",
                UserWarning,
                stacklevel=2,
            )
            params["compile"] = False
        meta = {
            "format_version": _FORMAT_VERSION,
            "ccd_estimator": _package_version(),
            "params": _jsonable(params),
            "class_names": [str(n) for n in self.class_names_],
            "train_paths": [str(p) for p in self.train_paths_],
            "bad_images": self.bad_images_,
            "history": _jsonable(self.history_),
            "selected_epoch": self.selected_epoch_,
            "teacher_info": _jsonable(self.teacher_info_),
        }
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        save_file(tensors, tmp, metadata={"ccd_estimator": json.dumps(meta)})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CCDClassifier:
        """Load an estimator written by ``save``.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by ``save``.

        Returns
        -------
        CCDClassifier
            A fitted estimator on the CPU.
        """
        from safetensors import safe_open

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no saved model at {os.path.abspath(path)!r}.")
        with safe_open(path, framework="pt") as f:
            meta_text = (f.metadata() or {}).get("ccd_estimator")
            if meta_text is None:
                raise ValueError(f"{path!r} was not written by CCDClassifier.save.")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(meta_text)
        if meta.get("format_version", 0) > _FORMAT_VERSION:
            raise ValueError(
                f"{path!r} uses save format {meta['format_version']}, newer than "
                f"this ccd_estimator understands ({_FORMAT_VERSION}); upgrade."
            )
        params = meta["params"]
        for key in ("prompt_templates", "update_epochs"):
            params[key] = tuple(params[key])
        if params.get("student_kwargs"):
            # JSON has no tuples; constructor arguments are conventionally tuples
            params["student_kwargs"] = {
                k: tuple(v) if isinstance(v, list) else v
                for k, v in params["student_kwargs"].items()
            }
        est = cls(**params)
        est.class_names_ = np.asarray(meta["class_names"], dtype=object)
        est.classes_ = np.tile(np.array([0, 1]), (len(est.class_names_), 1))
        est.train_paths_ = np.asarray(meta["train_paths"], dtype=str)
        est.bad_images_ = meta["bad_images"]
        est.history_ = meta["history"]
        est.selected_epoch_ = meta["selected_epoch"]
        est.n_iter_ = len(est.history_)
        est.teacher_info_ = meta["teacher_info"]
        for name in cls._ARRAYS:
            setattr(est, name, tensors[f"fitted.{name}"].numpy())
        student_state = {
            k[len("student.") :]: v
            for k, v in tensors.items()
            if k.startswith("student.")
        }
        est.student_ = est._rebuild_student(student_state)
        est.device_ = "cpu"
        return est


def _package_version() -> str:
    from ccd_estimator import __version__

    return __version__


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars, tuples and paths to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (os.PathLike, Path)):
        return os.fspath(value)
    if isinstance(value, torch.device):
        return str(value)
    return value
