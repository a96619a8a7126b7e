"""Progress bars, shown where somebody watches them."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress"]


def _watched() -> bool:
    """Whether stderr is a terminal or the code runs in a Jupyter kernel."""
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def progress(iterable: Any, verbose: int, desc: str, total: int | None = None) -> Any:
    """``tqdm`` over ``iterable``: off at ``verbose=0``; at 1 only on a terminal or
    in a notebook (so redirected logs hold no bar redraws); always from 2."""
    level = int(verbose)
    show = level >= 2 or (level == 1 and _watched())
    return tqdm(
        iterable, desc=desc, total=total, disable=not show, leave=False, unit="batch"
    )
