"""Figures of ``CCDClassifier.explain`` results.

matplotlib is an optional dependency (``pip install 'ccd-estimator[plot]'``); it is
imported only when a figure is made. Figures are built with
``matplotlib.figure.Figure`` directly, never through ``pyplot``, so they work
headless and leave matplotlib's global state alone.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ccd_estimator._explain import Explanation

__all__ = ["plot_explanations", "save_figure"]

logger = logging.getLogger(__name__)

_INSTALL_HINT = (
    "plotting needs matplotlib, an optional dependency; install it with "
    "pip install 'ccd-estimator[plot]'"
)

# tab10, so that a class keeps its colour across panels and rows
_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _import_matplotlib() -> Any:
    try:
        import matplotlib.figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return matplotlib.figure


def _ranked_classes(item: Explanation, max_boxes: int | None) -> list[int]:
    """The boxed classes, most probable first, at most ``max_boxes`` of them."""
    classes = sorted(item.boxes, key=lambda c: -float(item.probabilities[c]))
    return classes if max_boxes is None else classes[:max_boxes]


def plot_explanations(
    explanations: Sequence[Explanation],
    class_names: Sequence[str],
    *,
    max_boxes: int | None = None,
    show_cam: bool = True,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100.0,
) -> Figure:
    """Draw what the student looks at and what the teacher sees there.

    One row per explanation. The first panel shows the image with the crop box
    of each candidate class, labelled with the class name and the student's
    probability. The second compares, for each of those classes, the student's
    probability with the teacher's softmax score on the whole image and on that
    class's crop (student probabilities only when the explanations carry no
    teacher scores). With ``show_cam``, a third panel overlays the class
    activation map of the most probable class on the image.

    Parameters
    ----------
    explanations : sequence of Explanation
        The result of ``CCDClassifier.explain``.
    class_names : sequence of str
        Class names in column order (``estimator.class_names_``).
    max_boxes : int or None, default=None
        Draw at most this many boxes (and bars) per image, most probable class
        first; None draws all candidates.
    show_cam : bool, default=True
        Add the CAM panel.
    figsize : tuple of float or None, default=None
        Figure size in inches; None picks about 3.6 x 3.4 inches per panel.
    dpi : float, default=100.0
        Figure resolution.

    Returns
    -------
    matplotlib.figure.Figure
        A figure not attached to ``pyplot``; save it with ``save_figure``
        or ``fig.savefig``.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``explanations`` is empty, ``max_boxes`` is not a positive int, or
        ``class_names`` does not match the explanations' number of classes.

    Examples
    --------
    >>> from ccd_estimator.plotting import plot_explanations, save_figure
    >>> fig = plot_explanations(clf.explain(paths[:3]), clf.class_names_)
    ... # doctest: +SKIP
    >>> save_figure(fig, "explain.png")  # doctest: +SKIP
    """
    mpl_figure = _import_matplotlib()
    items = list(explanations)
    if not items:
        raise ValueError("explanations is empty: nothing to plot.")
    if max_boxes is not None and (
        isinstance(max_boxes, bool) or not isinstance(max_boxes, int) or max_boxes < 1
    ):
        raise ValueError(f"max_boxes must be None or an int >= 1; got {max_boxes!r}.")
    names = [str(n) for n in class_names]
    for item in items:
        if len(item.probabilities) != len(names):
            raise ValueError(
                f"class_names has {len(names)} names but the explanation of "
                f"{item.path!r} has {len(item.probabilities)} classes."
            )
    n_cols = 3 if show_cam else 2
    if figsize is None:
        figsize = (3.6 * n_cols, 3.4 * len(items))
    fig = mpl_figure.Figure(figsize=figsize, dpi=dpi, layout="constrained")
    axes = fig.subplots(len(items), n_cols, squeeze=False)
    for row, item in zip(axes, items, strict=True):
        classes = _ranked_classes(item, max_boxes)
        _draw_boxes(row[0], item, classes, names)
        _draw_scores(row[1], item, classes, names)
        if show_cam:
            _draw_cam(row[2], item, names)
    return fig


def _colour(c: int) -> str:
    return _COLOURS[c % len(_COLOURS)]


def _draw_boxes(ax: Any, item: Explanation, classes: list[int], names: list[str]):
    from matplotlib.patches import Rectangle

    ax.imshow(item.image)
    h, w = item.image.shape[:2]
    step = 0.08 * h  # about one label line at the default panel size
    placed: list[tuple[float, float]] = []
    for c in classes:
        x0, y0, x1, y1 = item.boxes[c]
        ty = float(y0)
        while any(abs(px - x0) < 0.3 * w and abs(py - ty) < step for px, py in placed):
            ty += step  # move a label down off one already there
        placed.append((float(x0), ty))
        ax.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5),
                x1 - x0,
                y1 - y0,
                fill=False,
                edgecolor=_colour(c),
                linewidth=2,
            )
        )
        ax.text(
            x0,
            ty,
            f"{names[c]} {float(item.probabilities[c]):.2f}",
            color="white",
            fontsize=8,
            va="top",
            ha="left",
            bbox={"facecolor": _colour(c), "alpha": 0.8, "pad": 1, "lw": 0},
            clip_on=True,
        )
    ax.set_title(_short(os.path.basename(item.path)), fontsize=9)
    ax.set_axis_off()


def _draw_scores(ax: Any, item: Explanation, classes: list[int], names: list[str]):
    series: list[tuple[str, list[float]]] = [
        ("student probability", [float(item.probabilities[c]) for c in classes])
    ]
    if item.global_scores is not None:
        series.append(
            ("teacher, whole image", [float(item.global_scores[c]) for c in classes])
        )
        series.append(
            (
                "teacher, class crop",
                [
                    float(item.crop_scores[c][c]) if c in item.crop_scores else np.nan
                    for c in classes
                ],
            )
        )
    y = np.arange(len(classes), dtype=float)
    height = 0.8 / len(series)
    hatches = ("", "//", "..")
    for k, (label, values) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * height
        ax.barh(
            y + offset,
            values,
            height=height,
            color=[_colour(c) for c in classes],
            alpha=1.0 - 0.25 * k,
            hatch=hatches[k],
            edgecolor="black",
            linewidth=0.5,
            label=label,
        )
    ax.set_yticks(y, [_short(names[c], 16) for c in classes], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("score", fontsize=8)
    title = "teacher vs student" if item.global_scores is not None else "student"
    ax.set_title(title, fontsize=9)
    legend = ax.legend(fontsize=7, loc="lower right", framealpha=0.8)
    for patch in legend.get_patches():  # neutral legend keys; bars carry class hues
        patch.set_facecolor("lightgrey")


def _draw_cam(ax: Any, item: Explanation, names: list[str]):
    top = int(np.argmax(item.probabilities))
    cam = np.asarray(item.cams[top], dtype=float)
    low, high = float(np.nanmin(cam)), float(np.nanmax(cam))
    cam = (cam - low) / (high - low) if high > low else np.zeros_like(cam)
    h, w = item.image.shape[:2]
    ax.imshow(item.image)
    ax.imshow(
        cam,
        cmap="jet",
        alpha=0.45,
        extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        interpolation="bilinear",
        vmin=0.0,
        vmax=1.0,
    )
    ax.set_title(
        f"CAM: {_short(names[top], 20)} {float(item.probabilities[top]):.2f}",
        fontsize=9,
    )
    ax.set_axis_off()


def _short(text: str, n: int = 32) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _atomic_write(
    path: str | os.PathLike, write: Callable[[str], None], *, force: bool = False
) -> str:
    """Write a file through a temporary file in the same folder.

    ``write(tmp)`` fills a temporary file next to ``path``, which then takes
    its place in one step: readers never see a partial file, and a failure
    leaves no temporary file behind. Without ``force`` an existing ``path`` is
    never replaced, not even one that appears while writing. Missing parent
    folders are created.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    write : callable
        Called with the temporary file's path; must write the content there.
    force : bool, default=False
        Replace an existing file.

    Returns
    -------
    str
        ``path`` as a string.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``force`` is False.
    IsADirectoryError
        If ``path`` is a folder.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder; give a file name.")
    if not force and os.path.lexists(path):
        raise _exists_error(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    os.close(fd)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600 files
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path exists: no clobbering
            except FileExistsError:
                raise _exists_error(path) from None
            except OSError:  # no hard links on this file system
                if os.path.lexists(path):
                    raise _exists_error(path) from None
                os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    logger.debug("wrote %s", path)
    return path


def _exists_error(path: str) -> FileExistsError:
    return FileExistsError(
        f"{path!r} already exists; use force=True (--force on the command line) "
        "to overwrite it."
    )


def _figure_format(path: str | os.PathLike) -> str:
    """The matplotlib format of ``path``'s extension (PNG without one).

    Raises
    ------
    ValueError
        If matplotlib cannot write that format.
    """
    mpl_figure = _import_matplotlib()
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    supported = mpl_figure.Figure().canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"cannot write figure format {fmt!r} ({path!r}); use one of: "
            + ", ".join(sorted(supported))
        )
    return fmt


def save_figure(
    fig: Figure,
    path: str | os.PathLike,
    force: bool = False,
    *,
    dpi: float | None = None,
) -> str:
    """Save a figure atomically, refusing to overwrite unless asked.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure, e.g. from ``plot_explanations``.
    path : str or os.PathLike
        Destination; its extension picks the format (``.png``, ``.pdf``,
        ``.svg``, ...; PNG when there is none).
    force : bool, default=False
        Replace an existing file.
    dpi : float or None, default=None
        Resolution; None uses the figure's.

    Returns
    -------
    str
        ``path`` as a string.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``force`` is False.
    ValueError
        If matplotlib cannot write the format of ``path``'s extension.
    """
    path = os.fspath(path)
    fmt = _figure_format(path)
    return _atomic_write(
        path,
        lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi or "figure"),
        force=force,
    )
