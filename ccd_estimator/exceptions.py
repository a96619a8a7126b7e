"""Warnings and errors raised by ccd_estimator."""

from __future__ import annotations

__all__ = [
    "CCDWarning",
    "DeviceWarning",
    "ImageLoadError",
    "BadImagesWarning",
    "UnreadableImagesError",
]


class CCDWarning(UserWarning):
    """Base class of every warning emitted by ccd_estimator."""


class DeviceWarning(CCDWarning):
    """A device or precision request could not be honoured and was replaced."""


class BadImagesWarning(CCDWarning):
    """Some input images could not be read and were skipped."""


class ImageLoadError(ValueError):
    """An image file could not be read.

    Parameters
    ----------
    path : str
        The file that failed.
    reason : str
        What went wrong, in words.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"could not read image {self.path!r}: {reason}")

    def __reduce__(self):  # keep the two-argument form through pickling (workers)
        return (type(self), (self.path, self.reason))


class UnreadableImagesError(ValueError):
    """One or more images given to prediction could not be read.

    Parameters
    ----------
    message : str
        The message, listing every unreadable file.
    errors : list of str
        One message per unreadable file.
    """

    def __init__(self, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.errors = list(errors)
