"""Tests for ccd_estimator._images: loading odd and broken image files, paths."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

import ccd_estimator._images as images_module
from ccd_estimator._images import (
    BACKGROUND,
    ImageDataset,
    check_paths,
    load_rgb,
)
from ccd_estimator.exceptions import ImageLoadError

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
REPO_ROOT = Path(__file__).resolve().parents[1]


def to_8x8_tensor(img: Image.Image) -> torch.Tensor:
    """Module-level (picklable) transform: fixed-size resize, then CHW uint8."""
    arr = np.asarray(img.resize((8, 8)), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


def save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


def jpeg_bytes(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def noise_image(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


def rgba_red_centre() -> Image.Image:
    """8x8, fully transparent black except an opaque red 2x2 centre."""
    arr = np.zeros((8, 8, 4), dtype=np.uint8)
    arr[3:5, 3:5] = (*RED, 255)
    return Image.fromarray(arr, "RGBA")


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------


def test_rgb_png_roundtrip_exact(tmp_path):
    img = noise_image((16, 12))
    out = load_rgb(save(img, tmp_path / "rgb.png"))
    assert out.mode == "RGB"
    assert out.size == (16, 12)
    np.testing.assert_array_equal(pixels(out), pixels(img))


def test_accepts_pathlike_and_str(tmp_path):
    path = save(Image.new("RGB", (3, 3), GREEN), tmp_path / "g.png")
    for p in (path, str(path)):
        assert load_rgb(p).getpixel((1, 1)) == GREEN


def test_rgba_composited_on_background(tmp_path):
    out = load_rgb(save(rgba_red_centre(), tmp_path / "a.png"))
    arr = pixels(out)
    assert out.mode == "RGB"
    for corner in [(0, 0), (0, 7), (7, 0), (7, 7)]:
        assert tuple(arr[corner]) == BACKGROUND
    assert tuple(arr[3, 3]) == RED
    assert tuple(arr[4, 4]) == RED


def test_rgba_half_transparent_is_blended(tmp_path):
    img = Image.new("RGBA", (2, 2), (*RED, 128))
    out = load_rgb(save(img, tmp_path / "half.png"))
    r, g, b = out.getpixel((0, 0))
    assert r == 255
    assert 120 <= g <= 135 and g == b


def test_la_composited_on_background(tmp_path):
    arr = np.zeros((6, 6, 2), dtype=np.uint8)  # black, fully transparent
    arr[2:4, 2:4] = (40, 255)  # opaque dark grey centre
    out = load_rgb(save(Image.fromarray(arr, "LA"), tmp_path / "la.png"))
    got = pixels(out)
    assert tuple(got[0, 0]) == BACKGROUND
    assert tuple(got[2, 2]) == (40, 40, 40)


def test_palette_transparency_matches_rgba_without_warning(tmp_path):
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, *RED] + [0] * (256 * 3 - 6))
    pal.paste(1, (3, 3, 5, 5))
    path = save(pal, tmp_path / "p.png", transparency=0)
    with Image.open(path) as check:
        assert check.mode == "P" and check.info.get("transparency") == 0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out_p = load_rgb(path)
    out_rgba = load_rgb(save(rgba_red_centre(), tmp_path / "a.png"))
    np.testing.assert_array_equal(pixels(out_p), pixels(out_rgba))
    assert tuple(pixels(out_p)[0, 0]) == BACKGROUND


def test_rgb_png_with_trns_colour_is_transparent(tmp_path):
    img = Image.new("RGB", (4, 4), (10, 20, 30))
    img.putpixel((1, 1), RED)
    out = load_rgb(save(img, tmp_path / "trns.png", transparency=(10, 20, 30)))
    assert out.getpixel((0, 0)) == BACKGROUND
    assert out.getpixel((1, 1)) == RED


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_and_bilevel(tmp_path, mode):
    arr = np.zeros((4, 4), dtype=np.uint8)
    arr[:, 2:] = 255
    img = Image.fromarray(arr, "L").convert(mode)
    out = load_rgb(save(img, tmp_path / f"{mode}.png"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 0)
    assert out.getpixel((3, 3)) == (255, 255, 255)
    if mode == "L":
        img = Image.new("L", (2, 2), 77)
        assert load_rgb(save(img, tmp_path / "g.png")).getpixel((0, 0)) == (77,) * 3


@pytest.mark.parametrize(
    ("suffix", "mode"), [("png", "I;16"), ("tif", "I;16B"), ("tif", "I;16")]
)
def test_16bit_ramp_keeps_gradient(tmp_path, suffix, mode):
    ramp = np.linspace(0, 65535, 1024).round().astype(np.uint16).reshape(4, 256)
    dtype = ">u2" if mode == "I;16B" else "<u2"
    # frombytes, not convert(): Pillow's I;16 -> I;16B conversion clips to 8 bits
    img = Image.frombytes(mode, (256, 4), ramp.astype(dtype).tobytes())
    path = save(img, tmp_path / f"ramp.{suffix}")
    with Image.open(path) as check:
        assert check.mode == mode
    out = pixels(load_rgb(path))
    grey = out[..., 0].ravel()
    assert np.array_equal(out[..., 0], out[..., 1])
    assert len(np.unique(grey)) > 200
    assert np.all(np.diff(grey.astype(int)) >= 0)
    assert grey[0] == 0 and grey[-1] == 255
    assert abs(int(grey[len(grey) // 2]) - 128) <= 1


def test_mode_i_scaling_rules(tmp_path):
    def load_i(values: np.ndarray, name: str) -> np.ndarray:
        img = Image.fromarray(values.astype(np.int32).reshape(1, -1))
        path = save(img, tmp_path / f"{name}.tif")
        with Image.open(path) as check:
            assert check.mode == "I"
        return pixels(load_rgb(path))[0, :, 0]

    small = np.array([0, 10, 200, 255])
    np.testing.assert_array_equal(load_i(small, "small"), small)  # as-is
    sixteen = np.array([0, 257, 32896, 65535])
    np.testing.assert_array_equal(load_i(sixteen, "sixteen"), [0, 1, 128, 255])
    wide = np.array([-1_000_000, 0, 1_000_000])
    np.testing.assert_array_equal(load_i(wide, "wide"), [0, 128, 255])  # min-max


def test_mode_f_scaling_rules(tmp_path):
    def load_f(values: list[float], name: str) -> np.ndarray:
        img = Image.fromarray(np.asarray(values, dtype=np.float32).reshape(1, -1))
        path = save(img, tmp_path / f"{name}.tif")
        with Image.open(path) as check:
            assert check.mode == "F"
        return pixels(load_rgb(path))[0, :, 0]

    np.testing.assert_array_equal(load_f([0.0, 0.5, 1.0], "unit"), [0, 128, 255])
    np.testing.assert_array_equal(load_f([0.0, 7.0, 200.0], "byte"), [0, 7, 200])
    np.testing.assert_array_equal(load_f([-5.0, 0.0, 5.0], "wide"), [0, 128, 255])
    got = load_f([0.0, float("nan"), 1.0, float("inf")], "nonfinite")
    np.testing.assert_array_equal(got, [0, 0, 255, 0])


def test_cmyk_jpeg_cyan(tmp_path):
    path = save(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), tmp_path / "c.jpg")
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    r, g, b = load_rgb(path).getpixel((4, 4))
    assert r <= 10 and g >= 245 and b >= 245


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (96, 64), BLUE)
    img.paste(RED, (0, 0, 48, 64))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    path = save(img, tmp_path / "rot.jpg", exif=exif, quality=95)
    with Image.open(path) as raw:
        assert raw.size == (96, 64)
    out = load_rgb(path)
    assert out.size == (64, 96)
    top = out.getpixel((32, 10))
    bottom = out.getpixel((32, 85))
    assert top[0] > 200 and top[2] < 60  # left half of the stored image on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize(
    "payload",
    [
        b"Exif\x00\x00" + b"garbage!" * 10,
        b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff\x01\x12",
        b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",
    ],
    ids=["garbage", "bad-count", "bad-offset"],
)
def test_broken_exif_still_loads(tmp_path, payload):
    data = jpeg_bytes(Image.new("RGB", (20, 10), RED))
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    path = tmp_path / "badexif.jpg"
    path.write_bytes(data[:2] + segment + data[2:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's corrupt-EXIF warning is silenced
        out = load_rgb(path)
    assert out.size == (20, 10)
    r, g, b = out.getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60


def test_exif_failure_is_not_fatal(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise SyntaxError("unreadable EXIF")

    monkeypatch.setattr(ImageOps, "exif_transpose", boom)
    out = load_rgb(save(Image.new("RGB", (5, 3), GREEN), tmp_path / "x.png"))
    assert out.size == (5, 3) and out.getpixel((0, 0)) == GREEN


def test_animated_gif_uses_first_frame(tmp_path):
    frames = []
    for colour in (RED, GREEN, BLUE):
        frame = Image.new("P", (6, 6), 0)
        frame.putpalette([*colour, 0, 0, 0] + [0] * (256 * 3 - 6))
        frames.append(frame)
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    with Image.open(path) as check:
        assert check.n_frames == 3
    out = load_rgb(path)
    assert out.mode == "RGB"
    assert set(map(tuple, pixels(out).reshape(-1, 3))) == {RED}


def test_multipage_tiff_uses_first_page(tmp_path):
    pages = [Image.new("RGB", (5, 4), RED), Image.new("RGB", (7, 3), BLUE)]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    with Image.open(path) as check:
        assert check.n_frames == 2
    out = load_rgb(path)
    assert out.size == (5, 4)
    assert set(map(tuple, pixels(out).reshape(-1, 3))) == {RED}


@pytest.mark.parametrize("size", [(1, 1), (2, 300), (300, 2)])
def test_tiny_and_elongated_sizes(tmp_path, size):
    img = noise_image(size, seed=size[0])
    out = load_rgb(save(img, tmp_path / "tiny.png"))
    assert out.size == size
    np.testing.assert_array_equal(pixels(out), pixels(img))
    assert load_rgb(save(img, tmp_path / "tiny.jpg")).size == size


def test_result_holds_no_file_and_input_unchanged(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(noise_image((30, 20)), tmp_path / "keep.jpg", exif=exif)
    before_bytes = path.read_bytes()
    old = time.time_ns() - 10**10
    os.utime(path, ns=(old, old))
    before_stat = path.stat()
    out = load_rgb(path)
    assert out.size == (20, 30)
    assert getattr(out, "fp", None) is None
    assert path.read_bytes() == before_bytes
    after_stat = path.stat()
    assert after_stat.st_mtime_ns == before_stat.st_mtime_ns
    assert after_stat.st_size == before_stat.st_size


# --------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------


def assert_fails(path, match: str) -> ImageLoadError:
    with pytest.raises(ImageLoadError, match=match) as info:
        load_rgb(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    return info.value


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.jpg"
    path.write_bytes(b"")
    assert_fails(path, r"empty file \(0 bytes\)")


def test_truncated_jpeg(tmp_path):
    data = jpeg_bytes(noise_image((64, 64)), quality=95)
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: int(len(data) * 0.6)])
    err = assert_fails(path, "truncated or corrupt image data")
    assert isinstance(err.__cause__, OSError)


def test_truncated_jpeg_respects_callers_pillow_setting(tmp_path, monkeypatch):
    data = jpeg_bytes(noise_image((64, 64)), quality=95)
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: int(len(data) * 0.6)])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert load_rgb(path).size == (64, 64)


def test_not_an_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_bytes(b"hello")
    assert_fails(path, "not an image Pillow can identify")


def test_text_file_with_jpg_extension(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 20)
    assert_fails(path, "not an image Pillow can identify")


def test_misleading_extension_of_valid_image_loads(tmp_path):
    path = tmp_path / "really_a_jpeg.png"
    path.write_bytes(jpeg_bytes(Image.new("RGB", (9, 7), RED)))
    out = load_rgb(path)
    assert out.size == (9, 7)
    r, g, b = out.getpixel((4, 3))
    assert r > 240 and g < 15 and b < 15


def test_missing_file(tmp_path):
    err = assert_fails(tmp_path / "nope.jpg", "file not found")
    assert isinstance(err.__cause__, FileNotFoundError)


def test_directory(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert_fails(folder, "directory")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root (or non-POSIX) can read files with mode 000",
)
def test_permission_denied(tmp_path):
    path = save(Image.new("RGB", (2, 2)), tmp_path / "locked.png")
    path.chmod(0)
    try:
        assert_fails(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_permission_denied_simulated(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (2, 2)), tmp_path / "locked.png")

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(images_module, "open", denied, raising=False)
    err = assert_fails(path, "permission denied")
    assert isinstance(err.__cause__, PermissionError)


def png_with_size(path: Path, width: int, height: int) -> Path:
    """Write a 1x1 PNG whose IHDR claims ``width`` x ``height`` (valid CRC)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), RED).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    # signature (8) | length (4) | b"IHDR" (4) | width (4) | height (4) | ...
    assert data[12:16] == b"IHDR"
    data[16:20] = width.to_bytes(4, "big")
    data[20:24] = height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = crc.to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def test_decompression_bomb_rejected_fast(tmp_path):
    limit_before = Image.MAX_IMAGE_PIXELS
    path = png_with_size(tmp_path / "bomb.png", 40_000, 40_000)
    start = time.perf_counter()
    err = assert_fails(path, r"MAX_IMAGE_PIXELS")
    assert time.perf_counter() - start < 1.0  # header check, no 4.8 GB allocation
    assert "1600000000" in err.reason
    assert isinstance(err.__cause__, Image.DecompressionBombError)
    assert Image.MAX_IMAGE_PIXELS == limit_before  # global left alone


def test_decompression_bomb_follows_callers_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    warn_path = save(Image.new("RGB", (12, 12), RED), tmp_path / "warn.png")
    with pytest.warns(Image.DecompressionBombWarning):
        assert load_rgb(warn_path).size == (12, 12)  # warning range still loads
    error_path = save(Image.new("RGB", (20, 20), RED), tmp_path / "error.png")
    assert_fails(error_path, r"set(ting)? PIL\.Image\.MAX_IMAGE_PIXELS")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    assert load_rgb(error_path).size == (20, 20)


def test_error_is_picklable(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found") as info:
        load_rgb(tmp_path / "missing.png")
    clone = pickle.loads(pickle.dumps(info.value))
    assert str(clone) == str(info.value)


# --------------------------------------------------------------------------
# ImageDataset
# --------------------------------------------------------------------------


def make_mixed_folder(tmp_path: Path) -> tuple[list[str], set[int]]:
    paths, bad = [], set()
    for i in range(6):
        size = (5 + i, 9 - i)
        paths.append(str(save(noise_image(size, i), tmp_path / f"good{i}.png")))
    zero = tmp_path / "zero.jpg"
    zero.write_bytes(b"")
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"hello")
    for p in (zero, fake, tmp_path / "missing.jpg"):
        bad.add(len(paths))
        paths.append(str(p))
    paths.append(str(save(Image.new("RGBA", (3, 3)), tmp_path / "clear.png")))
    return paths, bad


def test_dataset_items_and_bad_file(tmp_path):
    paths, bad = make_mixed_folder(tmp_path)
    ds = ImageDataset(paths, to_8x8_tensor)
    assert isinstance(ds.paths, np.ndarray) and ds.paths.dtype.kind == "U"
    assert len(ds) == len(paths)
    good = ds[0]
    assert good["ok"] is True and good["error"] == "" and good["index"] == 0
    assert good["image"].shape == (3, 8, 8)
    for i in bad:
        item = ds[i]
        assert item["ok"] is False and item["index"] == i
        assert paths[i] in item["error"]
        assert item["image"].shape == (3, 8, 8)
        assert torch.all(item["image"] == torch.tensor(BACKGROUND)[:, None, None])
    assert "empty file" in ds[6]["error"]
    assert "not an image" in ds[7]["error"]
    assert "file not found" in ds[8]["error"]
    assert ds[np.int64(9)]["index"] == 9


def test_dataset_is_picklable(tmp_path):
    paths, _ = make_mixed_folder(tmp_path)
    ds = pickle.loads(pickle.dumps(ImageDataset(paths, to_8x8_tensor)))
    assert len(ds) == len(paths) and ds[0]["ok"]


def test_dataset_in_dataloader_with_workers(tmp_path):
    paths, bad = make_mixed_folder(tmp_path)
    loader = torch.utils.data.DataLoader(
        ImageDataset(paths, to_8x8_tensor), batch_size=4, num_workers=2
    )
    indices, oks, errors = [], [], []
    for batch in loader:
        assert batch["image"].shape[1:] == (3, 8, 8)
        assert batch["image"].shape[0] == len(batch["index"])
        indices += batch["index"].tolist()
        oks += batch["ok"].tolist()
        errors += list(batch["error"])
    assert indices == list(range(len(paths)))
    assert [i for i, ok in enumerate(oks) if not ok] == sorted(bad)
    assert all(paths[i] in errors[i] for i in bad)


def test_many_files_under_low_fd_limit(tmp_path):
    pytest.importorskip("resource")
    script = textwrap.dedent(
        """
        import os, resource, sys
        import numpy as np
        import torch
        from PIL import Image
        from ccd_estimator._images import ImageDataset, load_rgb

        folder = sys.argv[1]
        paths = []
        for i in range(600):
            p = os.path.join(folder, f"{i:03d}.png")
            Image.new("RGB", (4, 4), (i % 256, 0, 0)).save(p)
            paths.append(p)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
        kept = [load_rgb(p) for p in paths]  # results held: no handle may stay open
        assert len(kept) == 600

        def transform(img):
            return torch.from_numpy(np.asarray(img.resize((4, 4))).copy())

        loader = torch.utils.data.DataLoader(
            ImageDataset(paths, transform), batch_size=50, num_workers=0
        )
        seen = sum(int(batch["ok"].sum()) for batch in loader)
        assert seen == 600, seen
        print("OK")
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")


# --------------------------------------------------------------------------
# check_paths
# --------------------------------------------------------------------------


def test_check_paths_containers():
    expected = ["a.jpg", "dir/b.png"]
    for X in (
        expected,
        tuple(expected),
        np.array(expected),
        np.array(expected, dtype=object),
        [Path("a.jpg"), Path("dir/b.png")],
        ["a.jpg", Path("dir/b.png")],
    ):
        out = check_paths(X)
        assert isinstance(out, np.ndarray)
        assert out.ndim == 1 and out.dtype.kind == "U"
        assert out.tolist() == expected


def test_check_paths_returns_new_array():
    X = np.array(["a.jpg", "b.jpg"])
    out = check_paths(X)
    out[0] = "changed"
    assert X[0] == "a.jpg"


def test_check_paths_series_like():
    class SeriesLike:  # anything with .to_numpy(), as pandas.Series
        def to_numpy(self):
            return np.array(["x.png", Path("y.png")], dtype=object)

    assert check_paths(SeriesLike()).tolist() == ["x.png", "y.png"]


def test_check_paths_pandas_series():
    pd = pytest.importorskip("pandas")
    series = pd.Series(["x.png", "y.png"], index=[10, 20])
    assert check_paths(series).tolist() == ["x.png", "y.png"]
    with pytest.raises(ValueError, match="1-D"):
        check_paths(pd.DataFrame({"path": ["x.png", "y.png"]}))


@pytest.mark.parametrize("single", ["a.jpg", Path("a.jpg"), np.array("a.jpg")])
def test_check_paths_single_path(single):
    with pytest.raises(ValueError, match="got a single path; wrap it in a list"):
        check_paths(single)


@pytest.mark.parametrize("empty", [[], (), np.array([], dtype=str)])
def test_check_paths_empty(empty):
    with pytest.raises(ValueError, match="X is empty: pass at least one image path"):
        check_paths(empty)


@pytest.mark.parametrize(
    "X", [np.array([["a", "b"], ["c", "d"]]), [["a", "b"], ["c", "d"]]]
)
def test_check_paths_two_dimensional(X):
    with pytest.raises(ValueError, match=r"1-D .*shape \(2, 2\)"):
        check_paths(X)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (["a.jpg", "b.jpg", None], r"X\[2\] .*NoneType"),
        ([1.5, "a.jpg"], r"X\[0\] .*float"),
        (np.array([1.0, 2.0]), r"X\[0\] .*float64"),
        (["a.jpg", b"b.jpg"], r"X\[1\] .*bytes"),
    ],
)
def test_check_paths_bad_elements(X, match):
    with pytest.raises(TypeError, match=match):
        check_paths(X)


def test_check_paths_unsupported_container():
    with pytest.raises(TypeError, match="list, tuple, 1-D numpy array"):
        check_paths({"a.jpg", "b.jpg"})
