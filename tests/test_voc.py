"""load_voc on a tiny fake VOC devkit written to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccd_estimator.datasets._voc import VOC_CLASSES, load_voc

# image id -> objects as (class name, difficult)
ANNOTATIONS = {
    "2008_000001": [("dog", False), ("person", False), ("dog", False)],
    "2008_000002": [("aeroplane", False)],
    "2008_000003": [("tvmonitor", True), ("chair", False)],
    "2008_000004": [("person", False), ("sofa", False), ("cat", True)],
}


def _object_xml(name: str, difficult: bool) -> str:
    # a person object carries a <part> with its own <name> (person layout)
    part = (
        "<part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        "<xmax>4</xmax><ymax>4</ymax></bndbox></part>"
        if name == "person"
        else ""
    )
    return (
        f"<object><name>{name}</name><pose>Unspecified</pose>"
        f"<truncated>0</truncated><difficult>{int(difficult)}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax>"
        f"</bndbox>{part}</object>"
    )


def write_devkit(
    parent: Path,
    year: str = "2012",
    splits: dict[str, list[str]] | None = None,
) -> Path:
    """Write ``parent/VOCdevkit/VOC{year}`` with ANNOTATIONS; return that folder."""
    if splits is None:
        ids = list(ANNOTATIONS)
        splits = {"train": ids[:3], "val": ids[3:], "trainval": ids}
    voc = parent / "VOCdevkit" / f"VOC{year}"
    for sub in ("ImageSets/Main", "Annotations", "JPEGImages"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    for image_id, objects in ANNOTATIONS.items():
        xml = (
            f"<annotation><folder>VOC{year}</folder>"
            f"<filename>{image_id}.jpg</filename>"
            "<size><width>16</width><height>16</height><depth>3</depth></size>"
            "<segmented>0</segmented>"
            + "".join(_object_xml(n, d) for n, d in objects)
            + "</annotation>"
        )
        (voc / "Annotations" / f"{image_id}.xml").write_text(xml)
        Image.new("RGB", (16, 16), (90, 30, 200)).save(
            voc / "JPEGImages" / f"{image_id}.jpg"
        )
    for split, ids in splits.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text(
            "".join(f"{i}\n" for i in ids)
        )
    # a per-class split file (id and +-1 flag) must not be listed as a split
    (voc / "ImageSets" / "Main" / "dog_train.txt").write_text(
        "2008_000001  1\n2008_000002 -1\n"
    )
    return voc


def expected_row(image_id: str) -> np.ndarray:
    row = np.zeros(20, dtype=np.int64)
    for name, _ in ANNOTATIONS[image_id]:
        row[VOC_CLASSES.index(name)] = 1
    return row


def test_standard_class_names_and_order():
    assert len(VOC_CLASSES) == 20 and len(set(VOC_CLASSES)) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[-1] == "tvmonitor"
    assert VOC_CLASSES.index("person") == 14
    assert list(VOC_CLASSES) == sorted(VOC_CLASSES)  # the devkit order is sorted


def test_load_trainval(tmp_path):
    voc = write_devkit(tmp_path)
    paths, Y, names = load_voc(tmp_path, split="trainval")
    ids = list(ANNOTATIONS)
    assert paths == [str(voc / "JPEGImages" / f"{i}.jpg") for i in ids]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    assert names == list(VOC_CLASSES) and isinstance(names, list)
    assert Y.shape == (4, 20) and Y.dtype == np.int64
    np.testing.assert_array_equal(Y, np.stack([expected_row(i) for i in ids]))
    # repeated objects of one class give a single 1
    assert Y[0].sum() == 2
    # "head" (a <part> of a person) is not mistaken for an object class
    assert Y[:, VOC_CLASSES.index("person")].tolist() == [1, 0, 0, 1]


def test_difficult_objects_count_as_positive(tmp_path):
    write_devkit(tmp_path)
    _, Y, _ = load_voc(tmp_path, split="trainval")
    assert Y[2, VOC_CLASSES.index("tvmonitor")] == 1  # only object is difficult
    assert Y[3, VOC_CLASSES.index("cat")] == 1


def test_splits_follow_the_split_file_order(tmp_path):
    ids = list(ANNOTATIONS)
    write_devkit(tmp_path, splits={"train": [ids[2], ids[0]], "val": ids[3:]})
    paths, Y, _ = load_voc(tmp_path, split="train")
    assert [Path(p).stem for p in paths] == [ids[2], ids[0]]
    np.testing.assert_array_equal(
        Y, np.stack([expected_row(ids[2]), expected_row(ids[0])])
    )
    paths, Y, _ = load_voc(tmp_path, split="val")
    assert [Path(p).stem for p in paths] == ids[3:] and Y.shape == (1, 20)


def test_blank_lines_and_whitespace_in_split_file(tmp_path):
    voc = write_devkit(tmp_path)
    (voc / "ImageSets/Main/train.txt").write_text("\n 2008_000002 \r\n\n2008_000001")
    paths, _, _ = load_voc(tmp_path)
    assert [Path(p).stem for p in paths] == ["2008_000002", "2008_000001"]


def test_image_without_objects_has_an_all_zero_row(tmp_path):
    voc = write_devkit(tmp_path, splits={"train": ["empty"]})
    (voc / "Annotations" / "empty.xml").write_text("<annotation></annotation>")
    _, Y, _ = load_voc(tmp_path)
    assert Y.shape == (1, 20) and Y.sum() == 0


@pytest.mark.parametrize("where", ["parent", "devkit", "voc_year", "str", "~"])
def test_root_may_be_parent_devkit_or_year_folder(tmp_path, where, monkeypatch):
    voc = write_devkit(tmp_path)
    root = {
        "parent": tmp_path,
        "devkit": tmp_path / "VOCdevkit",
        "voc_year": voc,
        "str": str(tmp_path),
        "~": "~",
    }[where]
    monkeypatch.setenv("HOME", str(tmp_path))
    paths, Y, _ = load_voc(root, year="2012", split="trainval")
    assert paths[0] == str(voc / "JPEGImages" / "2008_000001.jpg")
    assert Y.shape == (4, 20)


def test_year_selects_the_folder(tmp_path):
    write_devkit(tmp_path, year="2007")
    write_devkit(tmp_path, year="2012", splits={"train": ["2008_000002"]})
    assert len(load_voc(tmp_path, year="2007")[0]) == 3
    assert len(load_voc(tmp_path, year=2012)[0]) == 1


def test_wrong_layout_names_the_expected_path(tmp_path):
    (tmp_path / "images").mkdir()
    expected = tmp_path / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main"
    with pytest.raises(FileNotFoundError, match="No PASCAL VOC 2012") as info:
        load_voc(tmp_path)
    assert str(expected) in str(info.value)
    # present, but another year
    write_devkit(tmp_path, year="2007")
    with pytest.raises(FileNotFoundError, match="VOC2012"):
        load_voc(tmp_path, year="2012")


def test_missing_split_file_lists_available_splits(tmp_path):
    voc = write_devkit(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        load_voc(tmp_path, split="test")
    message = str(info.value)
    assert str(voc / "ImageSets" / "Main" / "test.txt") in message
    assert "['train', 'trainval', 'val']" in message  # dog_train is not a split


def test_missing_annotation_or_image_folder_is_named(tmp_path):
    voc = write_devkit(tmp_path)
    missing = voc / "Annotations" / "2008_000002.xml"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="2008_000002.xml"):
        load_voc(tmp_path)
    for f in (voc / "JPEGImages").iterdir():
        f.unlink()
    (voc / "JPEGImages").rmdir()
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        load_voc(tmp_path)


def test_bad_xml_and_unknown_class_are_value_errors(tmp_path):
    voc = write_devkit(tmp_path)
    xml = voc / "Annotations" / "2008_000001.xml"
    xml.write_text("<annotation><object><name>dog</name>")
    with pytest.raises(ValueError, match="not valid XML"):
        load_voc(tmp_path)
    xml.write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(ValueError, match="'unicorn'.*not one of the 20 VOC"):
        load_voc(tmp_path)


@pytest.mark.parametrize("split", ["", "../train", "Main/train"])
def test_split_must_be_a_plain_name(tmp_path, split):
    write_devkit(tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        load_voc(tmp_path, split=split)
