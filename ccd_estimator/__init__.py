"""ccd-estimator: annotation-free multi-label image tagging with CCD.

Classifier-guided CLIP Distillation (Kim & Shim, CVPR 2025) behind a
scikit-learn estimator, :class:`CCDClassifier`.
"""

from ccd_estimator._estimator import CCDClassifier
from ccd_estimator._explain import Explanation
from ccd_estimator.exceptions import (
    BadImagesWarning,
    CCDWarning,
    DeviceWarning,
    ImageLoadError,
    UnreadableImagesError,
)

__version__ = "0.1.0"

__all__ = [
    "CCDClassifier",
    "Explanation",
    "BadImagesWarning",
    "CCDWarning",
    "DeviceWarning",
    "ImageLoadError",
    "UnreadableImagesError",
    "__version__",
]
