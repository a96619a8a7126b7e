"""The CNN student: a timm or torchvision backbone with a 1x1 CAM head."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CAMStudent", "build_student"]

logger = logging.getLogger(__name__)


class _FeatureList(nn.Module):
    """Wrap a ``features_only`` timm model so it returns its last map."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[-1]


class CAMStudent(nn.Module):
    """Backbone feature map -> 1x1 conv -> class activation maps -> mean.

    The positive part of each CAM is multiplied by a fixed, per-class buffer
    ``alpha`` (the released code's ``coeff``), so
    ``CAM' = alpha * relu(CAM) - relu(-CAM)`` and ``logit = mean(CAM')``.

    Parameters
    ----------
    backbone : nn.Module
        Maps ``(N, 3, H, W)`` images to ``(N, n_features, h, w)`` feature maps.
    n_features : int
        Channels of the feature map.
    n_classes : int
        Number of classes.
    """

    def __init__(self, backbone: nn.Module, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(n_features, n_classes, kernel_size=1, bias=True)
        self.register_buffer("alpha", torch.ones(1, n_classes, 1, 1))

    def set_cam_multiplier(self, value: float) -> None:
        """Set the multiplier of the positive CAM part for every class."""
        self.alpha.fill_(float(value))  # type: ignore[operator]

    def cams(self, x: torch.Tensor) -> torch.Tensor:
        """Alpha-scaled class activation maps, shape ``(N, n_classes, h, w)``."""
        cam = self.head(self.backbone(x))
        return torch.where(cam > 0, cam * self.alpha.to(cam.dtype), cam)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(N, n_classes)``."""
        return self.cams(x).mean(dim=(2, 3))


def _load_state(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


def _split_spec(spec: str) -> tuple[str, str]:
    import timm
    import torchvision

    if ":" in spec:
        source, name = spec.split(":", 1)
        if source not in ("timm", "torchvision"):
            raise ValueError(
                f"student={spec!r}: the prefix must be 'timm:' or 'torchvision:', "
                f"got {source!r}."
            )
        return source, name
    if timm.is_model(spec):
        return "timm", spec
    if spec in torchvision.models.list_models():
        return "torchvision", spec
    raise ValueError(
        f"student={spec!r} is neither a timm nor a torchvision model name; see "
        "timm.list_models() and torchvision.models.list_models()."
    )


def _weights_file(weights: str | None) -> str | None:
    if weights is None:
        return None
    looks_like_path = os.sep in weights or weights.endswith(
        (".pt", ".pth", ".bin", ".safetensors")
    )
    if looks_like_path:
        path = Path(weights).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(
                f"student_weights points to a file that does not exist: {str(path)!r}."
            )
        return str(path)
    return None


def _timm_backbone(
    name: str, weights: str | None, kwargs: dict[str, Any]
) -> tuple[nn.Module, int]:
    import timm

    if not timm.is_model(name.split(".")[0]) and not timm.is_model(name):
        raise ValueError(f"student: unknown timm model {name!r}.")
    file = _weights_file(weights)
    create: dict[str, Any] = dict(kwargs)
    if file is None and weights is not None:
        # a named pretrained set: "default" or a timm tag such as "a1_in1k"
        create["pretrained"] = True
        if weights != "default":
            name = f"{name.split('.')[0]}.{weights}"
    if create.get("features_only"):
        model: Any = timm.create_model(name, **create)
        n_features = int(model.feature_info.channels()[-1])
    else:
        model = timm.create_model(name, num_classes=0, global_pool="", **create)
        n_features = int(model.num_features)
    if file is not None:
        _load_backbone_file(model, file)
    if create.get("features_only"):
        return _FeatureList(model), n_features
    return model, n_features


def _load_backbone_file(model: nn.Module, file: str) -> None:
    """Load a local weights file into a backbone built without its classifier.

    Classifier entries the backbone does not have (``fc.*``, ``head.*``,
    ``classifier.*``) and stages a truncated ``features_only`` model dropped are
    skipped; any other missing or unexpected key is an error naming the file.
    """
    state = _load_state(file)
    own = model.state_dict()
    dropped = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    prefixes = ("fc.", "head.", "classifier.", "layer3.", "layer4.", "stages.")
    unexpected = [k for k in dropped if not k.startswith(prefixes)]
    if missing or unexpected:
        raise ValueError(
            f"student_weights={file!r} does not match the student backbone: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]} "
            f"({len(missing)} and {len(unexpected)} keys in all)."
        )
    if dropped:
        logger.info(
            "student weights: skipped %d keys not in the backbone", len(dropped)
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own})


def _torchvision_backbone(
    name: str, weights: str | None, kwargs: dict[str, Any]
) -> tuple[nn.Module, int]:
    import torchvision

    file = _weights_file(weights)
    model = torchvision.models.get_model(
        name, weights=None if file is not None else weights, **kwargs
    )
    if file is not None:
        model.load_state_dict(_load_state(file))
    if hasattr(model, "fc") and hasattr(model, "avgpool"):
        trunk = nn.Sequential(*list(model.children())[:-2])
    elif hasattr(model, "features"):
        trunk = model.features
    else:
        raise ValueError(
            f"student='torchvision:{name}': cannot find the feature trunk of this "
            "model (supported: ResNet-like models with avgpool/fc, and models with "
            "a .features module). Use a timm model instead."
        )
    with torch.no_grad():
        was_training = trunk.training
        trunk.eval()
        n_features = int(trunk(torch.zeros(1, 3, 64, 64)).shape[1])
        trunk.train(was_training)
    return trunk, n_features


def build_student(
    spec: str,
    n_classes: int,
    weights: str | None = None,
    kwargs: dict[str, Any] | None = None,
) -> CAMStudent:
    """Create a :class:`CAMStudent` from a backbone name.

    Parameters
    ----------
    spec : str
        ``"timm:NAME"``, ``"torchvision:NAME"`` or a bare name (timm first).
    n_classes : int
        Number of classes of the CAM head.
    weights : str or None
        None for random initialisation, a local weights file, or a named set:
        a torchvision weights enum name (``"IMAGENET1K_V1"``) or a timm tag
        (``"default"`` or e.g. ``"a1_in1k"``), which download where a network
        exists.
    kwargs : dict or None
        Extra keyword arguments for the backbone constructor.

    Returns
    -------
    CAMStudent
    """
    source, name = _split_spec(spec)
    kwargs = dict(kwargs or {})
    if source == "timm":
        backbone, n_features = _timm_backbone(name, weights, kwargs)
    else:
        backbone, n_features = _torchvision_backbone(name, weights, kwargs)
    logger.info("student %s:%s, %d feature channels", source, name, n_features)
    return CAMStudent(backbone, n_features, n_classes)
