"""Robust image loading and path validation for ccd_estimator.

Everything that reads image files goes through :func:`load_rgb`, which turns any
file Pillow can decode into a fully loaded 8-bit ``"RGB"`` image and every failure
into :class:`~ccd_estimator.exceptions.ImageLoadError` naming the file.

Conversion rules
----------------
* EXIF orientation is applied (``ImageOps.exif_transpose``); unreadable EXIF data
  is ignored and the image is used as stored.
* Multi-frame files (animated GIF, multi-page TIFF, ...) use their first frame.
* Transparency (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa``/``La`` and
  palette, greyscale or RGB images with a ``transparency`` entry) is alpha
  composited onto :data:`BACKGROUND` (white).
* High bit depth greyscale is scaled to 8 bits instead of being clipped:

  - ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``: ``round(v / 257)``, which maps
    ``0..65535`` exactly onto ``0..255``.
  - ``I`` (32-bit signed): if all values lie in ``0..255`` they are used as they
    are; else if they lie in ``0..65535`` they are treated as 16-bit data
    (``v / 257``; older Pillow versions opened 16-bit PNGs as ``I``); otherwise
    the image is min-max stretched onto ``0..255``.
  - ``F`` (32-bit float): non-finite values are replaced by the smallest finite
    value; if all values lie in ``0..1`` they are treated as normalised
    intensities (``v * 255``); else if they lie in ``0..255`` they are used as
    they are; otherwise the image is min-max stretched onto ``0..255``.
  - A constant image outside those ranges cannot be stretched and is clipped to
    ``0..255``.

* Every other mode (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``)
  goes through Pillow's ``convert("RGB")`` (CMYK is converted naively, without
  ICC profiles).

Pillow's global settings are respected and never changed: images above
``PIL.Image.MAX_IMAGE_PIXELS`` load with Pillow's ``DecompressionBombWarning``,
images above twice that limit are rejected from their header, and
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` decides whether truncated files load.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch.utils.data
from PIL import Image, ImageOps, UnidentifiedImageError

from ccd_estimator.exceptions import ImageLoadError

__all__ = ["BACKGROUND", "ImageDataset", "check_paths", "load_rgb"]

logger = logging.getLogger(__name__)

#: Colour (RGB) that transparent pixels are composited onto.
BACKGROUND: tuple[int, int, int] = (255, 255, 255)

# Exceptions Pillow's decoders raise on malformed data (its fuzzers accept these).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
    IndexError,
    KeyError,
    struct.error,
)

# Pillow's "Corrupt EXIF data..." / "Possibly corrupt EXIF ..." warnings.
_EXIF_WARNING = r".*corrupt EXIF"  # warnings matches case-insensitively

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_TRANSPARENCY_INFO_MODES = frozenset({"P", "L", "RGB", "1"})


def _bomb_reason(exc: Exception) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    return (
        f"too many pixels for Pillow's decompression-bomb check ({exc}); if the "
        "file is trusted, raise the limit by setting PIL.Image.MAX_IMAGE_PIXELS "
        f"(now {limit}) to a larger value, or to None to disable the check, "
        "before calling fit/predict"
    )


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale a single-channel high bit depth array to ``uint8``.

    Parameters
    ----------
    arr : numpy.ndarray
        Pixel values of an ``I;16*``, ``I`` or ``F`` image.
    mode : str
        The Pillow mode the values came from.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of the same shape; see the module docstring for the rule.
    """
    values = arr.astype(np.float64)
    if mode.startswith("I;16"):
        return np.rint(values / 257.0).astype(np.uint8)
    if mode == "F":
        finite = np.isfinite(values)
        if not finite.all():
            fill = values[finite].min() if finite.any() else 0.0
            values = np.where(finite, values, fill)
    if values.size == 0:
        return values.astype(np.uint8)
    lo, hi = float(values.min()), float(values.max())
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = values * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        scaled = values
    elif mode == "I" and lo >= 0.0 and hi <= 65535.0:
        scaled = values / 257.0
    elif hi > lo:
        scaled = (values - lo) * (255.0 / (hi - lo))
    else:
        scaled = values
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert a loaded image of any mode to a new 8-bit ``"RGB"`` image."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _scale_to_uint8(np.asarray(im), mode)
        return Image.fromarray(grey).convert("RGB")  # 2-D uint8 -> "L"
    if mode == "La":
        im, mode = im.convert("LA"), "LA"
    if mode in _ALPHA_MODES or (
        mode in _TRANSPARENCY_INFO_MODES and "transparency" in im.info
    ):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _exif_transpose(im: Image.Image, path: str) -> Image.Image:
    """Apply the EXIF orientation; on unreadable EXIF keep the image as stored."""
    try:
        transposed = ImageOps.exif_transpose(im)
    except Exception as exc:  # any EXIF problem: use the image as stored
        logger.debug("ignoring unreadable EXIF data in %r: %r", path, exc)
        return im
    return im if transposed is None else transposed


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Read an image file as a fully decoded 8-bit ``"RGB"`` image.

    The file is opened read-only inside a ``with`` block and decoded completely
    before it is closed, so the returned image holds no file handle. The file is
    never modified. See the module docstring for how modes, transparency, EXIF
    orientation and multi-frame files are handled.

    Parameters
    ----------
    path : str or os.PathLike
        Path of the image file.

    Returns
    -------
    PIL.Image.Image
        A new image of mode ``"RGB"``.

    Raises
    ------
    ImageLoadError
        If the file is missing, not a regular readable file, empty, not an image
        Pillow can identify, truncated or corrupt, or larger than twice
        ``PIL.Image.MAX_IMAGE_PIXELS``. The original exception is chained.
    """
    fspath = os.fsdecode(os.fspath(path))
    try:
        f = open(fspath, "rb")  # closed by the ``with f`` block below
    except FileNotFoundError as exc:
        raise ImageLoadError(fspath, "file not found") from exc
    except (IsADirectoryError, PermissionError) as exc:
        # Windows reports opening a directory as PermissionError.
        if os.path.isdir(fspath):
            reason = "is a directory, not an image file"
        else:
            reason = "permission denied"
        raise ImageLoadError(fspath, reason) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ImageLoadError(fspath, f"could not open file: {reason}") from exc

    with f:
        try:
            if os.fstat(f.fileno()).st_size == 0:
                raise ImageLoadError(fspath, "empty file (0 bytes)")
        except OSError as exc:
            raise ImageLoadError(fspath, f"could not stat file: {exc}") from exc
        try:
            with warnings.catch_warnings():
                # Pillow warns about corrupt EXIF once per image (at open and in
                # exif_transpose); such EXIF is ignored, so silence only that.
                # Other warnings (DecompressionBombWarning) pass through.
                warnings.filterwarnings(
                    "ignore", message=_EXIF_WARNING, category=UserWarning
                )
                with Image.open(f) as opened:
                    opened.seek(0)
                    opened.load()
                    rgb = _to_rgb(_exif_transpose(opened, fspath))
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(fspath, _bomb_reason(exc)) from exc
        except UnidentifiedImageError as exc:
            raise ImageLoadError(fspath, "not an image Pillow can identify") from exc
        except _DECODE_ERRORS as exc:
            reason = f"truncated or corrupt image data: {exc}"
            raise ImageLoadError(fspath, reason) from exc
    return rgb


class ImageDataset(torch.utils.data.Dataset):
    """Map-style dataset of image files that never raises on a bad file.

    Paths are held in a NumPy string array rather than a Python list, so reading
    them in DataLoader workers does not touch per-item reference counts and the
    forked workers' memory stays shared. The dataset is picklable (for the
    ``spawn`` start method) as long as ``transform`` is.

    Parameters
    ----------
    paths : sequence of str
        Image paths, e.g. the output of :func:`check_paths`.
    transform : callable
        Applied to each loaded ``"RGB"`` image. It must produce the same output
        shape for any input size (start with a fixed-size resize), because a
        1x1 :data:`BACKGROUND` placeholder is transformed in place of a file that
        cannot be read.

    Notes
    -----
    Items are dicts ``{"index": int, "image": transform(img), "ok": bool,
    "error": str}``. For a file that fails to load, ``ok`` is ``False`` and
    ``error`` holds the :class:`ImageLoadError` message (path and reason).
    """

    def __init__(
        self,
        paths: Sequence[str] | np.ndarray,
        transform: Callable[[Image.Image], Any],
    ) -> None:
        self.paths = np.asarray(paths, dtype=str)
        self.transform = transform

    def __len__(self) -> int:
        return int(self.paths.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = int(i)
        try:
            img = load_rgb(str(self.paths[index]))
        except ImageLoadError as exc:
            placeholder = Image.new("RGB", (1, 1), BACKGROUND)
            return {
                "index": index,
                "image": self.transform(placeholder),
                "ok": False,
                "error": str(exc),
            }
        return {"index": index, "image": self.transform(img), "ok": True, "error": ""}


def _describe(obj: object) -> str:
    return type(obj).__name__


def _short_repr(obj: object, limit: int = 60) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_paths(X: Any) -> np.ndarray:
    """Validate image paths given to ``fit``/``predict``.

    File existence is not checked here; unreadable files are reported when they
    are loaded.

    Parameters
    ----------
    X : list, tuple, 1-D numpy.ndarray or pandas.Series
        Image paths as ``str`` or ``os.PathLike`` (e.g. ``pathlib.Path``).

    Returns
    -------
    numpy.ndarray
        1-D array of ``str`` paths, a new array.

    Raises
    ------
    ValueError
        If ``X`` is a single path rather than a sequence, is empty, or is not
        one-dimensional.
    TypeError
        If ``X`` is not a supported container, or an element is not a path; the
        message names the first offending index and its type.
    """
    if isinstance(X, (str, bytes, os.PathLike)):
        raise ValueError(
            "X must be a sequence of image paths, got a single path; wrap it in "
            f"a list: [{_short_repr(X)}]"
        )
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        X = X.to_numpy()
    if isinstance(X, np.ndarray):
        arr = X
    elif isinstance(X, Sequence):
        try:
            arr = np.asarray(X, dtype=object)
        except ValueError:  # ragged nesting: keep the elements as they are
            arr = np.empty(len(X), dtype=object)
            for j, item in enumerate(X):
                arr[j] = item
    else:
        raise TypeError(
            "X must be a list, tuple, 1-D numpy array or pandas Series of image "
            f"paths, got {_describe(X)}"
        )
    if arr.ndim == 0:
        raise ValueError(
            "X must be a sequence of image paths, got a single path; wrap it in a list"
        )
    if arr.ndim != 1:
        raise ValueError(
            f"X must be a 1-D list of image paths, got an array of shape "
            f"{arr.shape}; pass a list or 1-D array with one path per image"
        )
    if arr.shape[0] == 0:
        raise ValueError("X is empty: pass at least one image path")
    if arr.dtype.kind == "U":
        return arr.astype(str)
    out: list[str] = []
    for i, item in enumerate(arr):
        if isinstance(item, str):
            out.append(str(item))
        elif isinstance(item, os.PathLike):
            out.append(os.fsdecode(os.fspath(item)))
        else:
            raise TypeError(
                f"X[{i}] is not an image path: got {_describe(item)} "
                f"({_short_repr(item)}); "
                "every element of X must be a str or os.PathLike"
            )
    return np.asarray(out, dtype=str)
