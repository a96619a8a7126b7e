"""PASCAL VOC image-level multi-label targets from a standard devkit folder."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

__all__ = ["VOC_CLASSES", "load_voc"]

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
"""The 20 PASCAL VOC classes in the standard (devkit) order."""


def _find_voc_dir(root: Path, year: str) -> Path:
    """Return the ``VOC{year}`` folder for a devkit, its parent or itself."""
    name = f"VOC{year}"
    candidates = [root / "VOCdevkit" / name, root / name]
    if root.name == name:
        candidates.insert(0, root)
    for folder in candidates:
        if (folder / "ImageSets" / "Main").is_dir():
            return folder
    expected = root / "VOCdevkit" / name / "ImageSets" / "Main"
    raise FileNotFoundError(
        f"No PASCAL VOC {year} devkit under {str(root)!r}: expected the folder "
        f"{str(expected)!r}. Pass as root the folder that contains 'VOCdevkit' "
        f"(where VOCtrainval_*.tar extracts), the 'VOCdevkit' folder itself or "
        f"its {name!r} folder."
    )


def _read_ids(split_file: Path) -> list[str]:
    """Image ids of a ``ImageSets/Main`` split file, one per line."""
    ids = []
    with open(split_file, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields:
                ids.append(fields[0])
    return ids


def _image_labels(xml_file: Path, index: dict[str, int]) -> list[int]:
    """Column indices of the classes of the objects in one annotation file."""
    if not xml_file.is_file():
        raise FileNotFoundError(
            f"Missing annotation file {str(xml_file)!r}. Image-level labels need "
            "the Annotations folder of the devkit (the VOC2012 test split ships "
            "without annotations)."
        )
    try:
        annotation = ET.parse(xml_file).getroot()
    except ET.ParseError as exc:
        raise ValueError(
            f"Annotation file {str(xml_file)!r} is not valid XML: {exc}."
        ) from exc
    labels = []
    # direct children only: the <part> elements of person layouts have a <name>
    # too (head, hand, foot), which is not an object class
    for obj in annotation.findall("object"):
        tag = obj.find("name")
        name = "" if tag is None or tag.text is None else tag.text.strip()
        if name not in index:
            raise ValueError(
                f"Annotation file {str(xml_file)!r} has an object named {name!r}, "
                f"which is not one of the 20 VOC classes {list(VOC_CLASSES)}."
            )
        labels.append(index[name])
    return labels


def load_voc(
    root: str | os.PathLike,
    year: str = "2012",
    split: str = "train",
) -> tuple[list[str], np.ndarray, list[str]]:
    """Load image paths and image-level labels of a PASCAL VOC split.

    Reads the standard devkit layout::

        VOCdevkit/VOC{year}/ImageSets/Main/{split}.txt   image ids
        VOCdevkit/VOC{year}/Annotations/{id}.xml          objects per image
        VOCdevkit/VOC{year}/JPEGImages/{id}.jpg           images

    An image is labelled with every class that has at least one object in its
    annotation. Objects marked ``difficult`` count as positives, as do
    ``truncated`` and ``occluded`` ones: the class is present in the image.
    (The VOC classification benchmark instead ignores images whose only
    objects of a class are difficult; unsupervised multi-label papers
    evaluating on VOC commonly use the labels as loaded here.) Nothing is
    downloaded; the image files themselves are not opened.

    Parameters
    ----------
    root : str or os.PathLike
        The folder that contains ``VOCdevkit`` (where ``VOCtrainval_*.tar``
        extracts), the ``VOCdevkit`` folder itself, or its ``VOC{year}`` folder.
    year : str, default="2012"
        Challenge year, e.g. ``"2007"`` or ``"2012"``; selects ``VOC{year}``.
    split : str, default="train"
        Name of a file in ``ImageSets/Main`` without ``.txt``: ``"train"``,
        ``"val"``, ``"trainval"`` or, for VOC2007, ``"test"``.

    Returns
    -------
    paths : list of str
        Absolute paths of the JPEG images, in the order of the split file.
    Y : ndarray of shape (n_images, 20), dtype int64
        Indicator matrix: ``Y[i, k] = 1`` if image ``i`` has an object of class
        ``class_names[k]`` (difficult objects included).
    class_names : list of str
        The 20 VOC classes in the standard order, ``"aeroplane"`` to
        ``"tvmonitor"``.

    Raises
    ------
    FileNotFoundError
        If the devkit layout is not found under ``root``, or the split file,
        the ``JPEGImages`` folder or an annotation file is missing; the message
        names the expected path.
    ValueError
        If an annotation is not valid XML or names an unknown class.

    Examples
    --------
    >>> from ccd_estimator import CCDClassifier
    >>> from ccd_estimator.datasets import load_voc
    >>> paths, Y, names = load_voc("data", year="2012", split="val")  # doctest: +SKIP
    >>> Y.shape  # doctest: +SKIP
    (5823, 20)
    >>> clf = CCDClassifier(class_names=names).fit(paths)  # doctest: +SKIP
    >>> clf.score(paths, Y)  # mAP  # doctest: +SKIP
    """
    year = str(year)
    split = str(split)
    if not split or os.sep in split or (os.altsep and os.altsep in split):
        raise ValueError(
            f"split must be the name of a file in ImageSets/Main without '.txt', "
            f"e.g. 'train'; got {split!r}."
        )
    voc_dir = _find_voc_dir(Path(root).expanduser().resolve(), year)
    main = voc_dir / "ImageSets" / "Main"
    split_file = main / f"{split}.txt"
    if not split_file.is_file():
        available = sorted(
            p.stem for p in main.glob("*.txt") if "_" not in p.stem
        )  # aeroplane_train.txt etc. are per-class files
        raise FileNotFoundError(
            f"No split file {str(split_file)!r}; the splits found in "
            f"{str(main)!r} are {available}."
        )
    image_dir = voc_dir / "JPEGImages"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"No image folder {str(image_dir)!r}.")

    ids = _read_ids(split_file)
    index = {name: k for k, name in enumerate(VOC_CLASSES)}
    Y = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.int64)
    for i, image_id in enumerate(ids):
        Y[i, _image_labels(voc_dir / "Annotations" / f"{image_id}.xml", index)] = 1
    paths = [str(image_dir / f"{image_id}.jpg") for image_id in ids]
    return paths, Y, list(VOC_CLASSES)
