"""The CLIP teacher: loading an open_clip model, prompt embeddings, batched scoring.

The teacher is a fit-time tool. It is loaded in ``fit``, used for the global pass
and for the local views, and dropped before the estimator is pickled.
"""

from __future__ import annotations

import difflib
import logging
import os
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ccd_estimator._data import IMAGENET_MEAN, IMAGENET_STD
from ccd_estimator.exceptions import DeviceWarning

__all__ = ["Teacher", "resolve_precision"]

logger = logging.getLogger(__name__)


_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def _resolve_model_name(model_name: str) -> str:
    """Register a JSON config given by path and check that the name is known."""
    import open_clip

    if model_name.endswith(".json"):
        path = Path(model_name).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(
                f"model_name points to an open_clip config file that does not "
                f"exist: {str(path)!r}."
            )
        open_clip.add_model_config(path)
        return path.stem
    if model_name.startswith(("hf-hub:", "local-dir:")):
        return model_name
    known = open_clip.list_models()
    if model_name not in known:
        close = difflib.get_close_matches(model_name, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown open_clip model_name {model_name!r}.{hint} See "
            "open_clip.list_models() for the built-in names; a custom "
            "architecture can be given as the path of its JSON config file."
        )
    return model_name


def _check_pretrained(name: str, pretrained: str | None) -> str | None:
    """Turn a tag or a file path into what open_clip expects, failing early."""
    import open_clip

    if pretrained is None or name.startswith(("hf-hub:", "local-dir:")):
        return pretrained
    looks_like_path = (
        os.sep in pretrained
        or pretrained.endswith(_CHECKPOINT_SUFFIXES)
        or os.path.exists(pretrained)
    )
    if looks_like_path:
        path = Path(pretrained).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained points to a checkpoint file that does not exist: "
                f"{str(path)!r}."
            )
        return str(path)
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        raise ValueError(
            f"pretrained={pretrained!r} is neither an existing checkpoint file nor "
            f"a known open_clip tag for model {name!r}. Known tags: "
            f"{sorted(tags) or 'none'}."
        )
    return pretrained


def _resample_pos_embed(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resample a ``(s*s + 1, C)`` attention-pool table to ``grid``."""
    cls_token, spatial = pos[:1], pos[1:]
    side = int(round(spatial.shape[0] ** 0.5))
    spatial = spatial.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    spatial = F.interpolate(
        spatial.float(), size=grid, mode="bilinear", align_corners=False
    )
    spatial = spatial.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
    return torch.cat([cls_token.float(), spatial], dim=0).to(pos.dtype)


class Teacher:
    """A frozen open_clip model scoring images against class prompts.

    Parameters
    ----------
    model_name : str
        open_clip architecture name, ``hf-hub:``/``local-dir:`` reference, or the
        path of a JSON model config (registered with ``open_clip.add_model_config``).
    pretrained : str or None
        open_clip pretrained tag (downloads where a network exists) or the path of
        a local checkpoint file. None builds random weights (only useful in tests).
    class_names : sequence of str
        Class names, in column order.
    templates : sequence of str
        Prompt templates with one ``{}``; embeddings are averaged per class.
    device : torch.device
        Where the model runs.
    precision : {"fp32", "fp16", "bf16"}
        Autocast dtype on CUDA; the weights stay in float32.
    logit_scale : float or None
        Softmax temperature; None reads the model's own learned scale.
    normalize : {"teacher", "imagenet"}
        Mean/std used for the teacher's inputs: the model's own preprocessing or
        ImageNet statistics (what the released code used).
    cache_dir : str or None
        Download cache for pretrained tags.
    compile_kwargs : dict or None
        Keyword arguments of ``torch.compile`` for the image encoder; None runs
        it eagerly.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: str | None,
        class_names: Sequence[str],
        templates: Sequence[str],
        device: torch.device,
        precision: str = "fp32",
        logit_scale: float | None = None,
        normalize: str = "teacher",
        cache_dir: str | None = None,
        compile_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import open_clip
        from open_clip.modified_resnet import ModifiedResNet

        name = _resolve_model_name(model_name)
        weights = _check_pretrained(name, pretrained)
        if weights is None and not name.startswith(("hf-hub:", "local-dir:")):
            warnings.warn(
                f"pretrained=None: the teacher {name!r} has random weights, so its "
                "pseudo-labels carry no information. Pass an open_clip tag or a "
                "checkpoint file.",
                UserWarning,
                stacklevel=3,
            )
        try:
            # random init before loading must not consume the caller's RNG
            with torch.random.fork_rng(devices=[]):
                model = open_clip.create_model(
                    name, pretrained=weights, cache_dir=cache_dir, device="cpu"
                )
        except RuntimeError as exc:
            if weights is not None and not os.path.isfile(weights):
                raise RuntimeError(
                    f"Could not obtain the weights of open_clip model {name!r} with "
                    f"tag {weights!r}: {exc}. Without a network, download them on "
                    "another machine and pass the checkpoint file as pretrained=; "
                    "set HF_HUB_OFFLINE=1 before starting Python to fail fast."
                ) from exc
            raise
        model.eval().requires_grad_(False)
        self.model = model.to(device)
        self.device = device
        self.precision = precision
        self.model_name = name
        self.is_resnet = isinstance(model.visual, ModifiedResNet)
        if self.is_resnet:
            # NHWC convolutions: 1.46x the batch-64 throughput of the shapes
            # teacher on a 2-core CPU (oneDNN) and the fast layout on GPUs
            model.visual.to(memory_format=torch.channels_last)
        size = getattr(model.visual, "image_size", 224)
        self.native_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        cfg = open_clip.get_model_preprocess_cfg(model)
        if normalize == "imagenet":
            self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        else:
            self.mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
            self.std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        learned = float(model.logit_scale.exp().item())
        self.logit_scale = learned if logit_scale is None else float(logit_scale)
        self._pos_cache: dict[tuple[int, int], torch.Tensor] = {}
        # the convolutional trunk (ResNet) or the whole encoder (ViT) is what
        # torch.compile gets; the attention pool with its resampled position
        # embedding stays eager
        self._trunk: Any = self._resnet_trunk
        self._encode_image: Any = model.encode_image
        if compile_kwargs is not None and self.is_resnet:
            self._trunk = torch.compile(self._resnet_trunk, **compile_kwargs)
        elif compile_kwargs is not None:
            self._encode_image = torch.compile(model.encode_image, **compile_kwargs)
        self.tokenizer = open_clip.get_tokenizer(name)
        self.text_features = self._embed_classes(class_names, templates)
        logger.info(
            "teacher %s (%s) on %s, logit scale %.2f",
            name,
            weights,
            device,
            self.logit_scale,
        )

    def describe(self) -> dict[str, Any]:
        """What was actually loaded: architecture, preprocessing, scale."""
        return {
            "model_name": self.model_name,
            "tower": "ModifiedResNet"
            if self.is_resnet
            else type(self.model.visual).__name__,
            "native_image_size": self.native_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "logit_scale": self.logit_scale,
        }

    def _autocast(self) -> Any:
        if self.device.type == "cuda" and self.precision in ("fp16", "bf16"):
            dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    @torch.inference_mode()
    def _embed_classes(
        self, class_names: Sequence[str], templates: Sequence[str]
    ) -> torch.Tensor:
        context = getattr(self.tokenizer, "context_length", None)
        rows = []
        for name in class_names:
            prompts = [t.format(name) for t in templates]
            if context is not None:
                too_long = [p for p in prompts if self._n_tokens(p) > context]
                if too_long:
                    warnings.warn(
                        f"The prompt {too_long[0]!r} may be longer than the text "
                        f"encoder's context of {context} tokens; it is truncated.",
                        UserWarning,
                        stacklevel=4,
                    )
            tokens = self.tokenizer(prompts).to(self.device)
            with self._autocast():
                emb = self.model.encode_text(tokens).float()
            emb = F.normalize(emb, dim=-1).mean(dim=0)
            rows.append(F.normalize(emb, dim=-1))
        return torch.stack(rows)  # (n_classes, embed_dim)

    def _n_tokens(self, text: str) -> int:
        """Tokens of a prompt with start and end markers (words if unknown)."""
        encode = getattr(self.tokenizer, "encode", None)
        body = len(encode(text)) if callable(encode) else len(text.split())
        return body + 2

    def _resnet_trunk(self, x: torch.Tensor) -> torch.Tensor:
        visual = self.model.visual
        x = visual.stem(x)
        return visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))

    def _encode_resnet(self, x: torch.Tensor) -> torch.Tensor:
        """ModifiedResNet forward at any input size (resampled attention pool)."""
        x = self._trunk(x.contiguous(memory_format=torch.channels_last))
        pool = self.model.visual.attnpool
        grid = (x.shape[2], x.shape[3])
        pos = self._pos_cache.get(grid)
        if pos is None:
            pos = _resample_pos_embed(pool.positional_embedding.detach(), grid)
            self._pos_cache[grid] = pos
        x = x.flatten(2).permute(2, 0, 1)  # (HW, N, C)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        x = x + pos[:, None, :].to(x.dtype)
        out, _ = F.multi_head_attention_forward(
            query=x[:1],
            key=x,
            value=x,
            embed_dim_to_check=x.shape[-1],
            num_heads=pool.num_heads,
            q_proj_weight=pool.q_proj.weight,
            k_proj_weight=pool.k_proj.weight,
            v_proj_weight=pool.v_proj.weight,
            in_proj_weight=None,
            in_proj_bias=torch.cat(
                [pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]
            ),
            bias_k=None,
            bias_v=None,
            add_zero_attn=False,
            dropout_p=0.0,
            out_proj_weight=pool.c_proj.weight,
            out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True,
            training=False,
            need_weights=False,
        )
        return out[0]

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings of a normalised batch ``(N, 3, H, W)``."""
        images = images.to(self.device, non_blocking=True)
        with self._autocast():
            if self.is_resnet:
                feats = self._encode_resnet(images)
            else:
                feats = self._encode_image(images)
        return F.normalize(feats.float(), dim=-1)

    @torch.inference_mode()
    def scores(self, images: torch.Tensor) -> np.ndarray:
        """Softmax over classes of ``logit_scale * cos(image, class)``.

        Parameters
        ----------
        images : Tensor of shape (n, 3, H, W)
            Images normalised with ``mean`` and ``std``.

        Returns
        -------
        ndarray of shape (n, n_classes), dtype float32
        """
        logits = self.logit_scale * self.encode(images) @ self.text_features.T
        return logits.softmax(dim=-1).cpu().numpy().astype(np.float32)

    def check_image_size(self, size: int | None, name: str) -> int:
        """Resolve an input size; only ModifiedResNet towers accept any size."""
        if size is None:
            return self.native_size
        if not self.is_resnet and size != self.native_size:
            raise ValueError(
                f"{name}={size} is not supported for the {self.model_name!r} tower, "
                f"which only takes its native size {self.native_size}; pass "
                f"{name}=None (or {self.native_size}). Any size works for open_clip "
                "ModifiedResNet (RN50, RN50x64, ...) towers."
            )
        return int(size)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Map ``"auto"`` and CPU half precision to what will actually run."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision in ("fp16", "bf16") and device.type != "cuda":
        warnings.warn(
            f"precision={precision!r} is only used on CUDA; running the teacher in "
            f"float32 on {device.type}.",
            DeviceWarning,
            stacklevel=3,
        )
        return "fp32"
    return precision


def _cached_row(key: tuple, value: np.ndarray | None = None) -> np.ndarray | None:
    """Identity used as a joblib.Memory store: the key is hashed, value ignored."""
    return value


def _file_key(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (os.path.abspath(path), -1, -1)
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size)


def global_scores(
    teacher_factory: Any,
    paths: np.ndarray,
    n_classes: int,
    image_size: int,
    batch_size: int,
    n_workers: int,
    device: torch.device,
    memory: Any = None,
    signature: tuple = (),
    verbose: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The teacher's global pass: one softmax row per image.

    Parameters
    ----------
    teacher_factory : callable
        Returns the ``Teacher``; called only if some row is not cached.
    paths : ndarray of shape (n_samples,)
        Image paths.
    n_classes : int
        Number of classes.
    image_size : int
        Side of the square global view.
    batch_size, n_workers : int
        DataLoader settings.
    device : torch.device
        Where the teacher runs.
    memory : joblib.Memory or None
        Per-image cache of rows, keyed by ``signature`` and the file's path,
        modification time and size.
    signature : tuple
        Everything about the teacher that changes its scores.
    verbose : int
        Progress bar when at least 1.

    Returns
    -------
    scores : ndarray of shape (n_samples, n_classes), dtype float32
        Zero rows where the image could not be read.
    ok : ndarray of shape (n_samples,), dtype bool
        Whether each image was read.
    errors : list of str
        The error message of each unreadable image ("" where readable).
    """
    from ccd_estimator._data import make_loader, normalized_view
    from ccd_estimator._progress import progress

    scores = np.zeros((len(paths), n_classes), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    errors = [""] * len(paths)
    store = keys = None
    todo = np.arange(len(paths))
    if memory is not None:
        store = memory.cache(_cached_row, ignore=["value"])
        keys = [signature + _file_key(p) for p in paths]
        cached = [i for i, k in enumerate(keys) if store.check_call_in_cache(k)]
        for i in cached:
            scores[i] = store(keys[i])
            ok[i] = True
        todo = np.setdiff1d(todo, cached)
        logger.info(
            "teacher global pass: %d of %d rows cached", len(cached), len(paths)
        )
    if len(todo) == 0:
        return scores, ok, errors
    teacher = teacher_factory()
    loader = make_loader(
        paths[todo],
        normalized_view(image_size, teacher.mean, teacher.std),
        batch_size,
        n_workers,
        device,
    )
    bar = progress(loader, verbose, "teacher global pass")
    for batch in bar:
        rows = todo[batch["index"].numpy()]
        good = batch["ok"].numpy()
        for r, g, e in zip(rows, good, batch["error"], strict=True):
            ok[r], errors[r] = bool(g), "" if g else e
        if good.any():
            scores[rows[good]] = teacher.scores(batch["image"][torch.as_tensor(good)])
    if store is not None and keys is not None:
        for i in todo[ok[todo]]:
            store(keys[i], value=scores[i])
    return scores, ok, errors
