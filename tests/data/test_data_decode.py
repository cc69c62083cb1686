"""decode_image: every PIL mode becomes correct 8-bit RGB; broken files raise ImageDecodeError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simclr.data.decode import ImageDecodeError, decode_image, is_image_file, load_image
from simclr.views.rgb import to_rgb_array


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_rgb_png_roundtrip_exact(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(arr), tmp_path / "x.png"))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, arr)


def test_grayscale_l_replicated(tmp_path: Path) -> None:
    arr = np.array([[0, 77], [200, 255]], dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(arr, mode="L"), tmp_path / "g.png"))
    assert out.shape == (2, 2, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], arr)


def test_bilevel_1_is_0_or_255(tmp_path: Path) -> None:
    img = Image.new("1", (4, 1))
    img.putpixel((1, 0), 1)
    out = decode_image(_save(img, tmp_path / "b.png"))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]


def test_palette_p(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 150, 100] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    for ext in ("png", "gif", "bmp"):
        out = decode_image(_save(img, tmp_path / f"p.{ext}"))
        assert out[0, 0].tolist() == [10, 20, 30], ext
        assert out[0, 1].tolist() == [200, 150, 100], ext


def test_palette_with_transparency_composited_on_black(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 150, 100] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    out = decode_image(_save(img, tmp_path / "pt.png", transparency=0))
    assert out[0, 0].tolist() == [0, 0, 0]  # transparent -> black
    assert out[0, 1].tolist() == [200, 150, 100]


def test_rgba_composited_on_black(tmp_path: Path) -> None:
    arr = np.array([[[200, 100, 50, 255], [200, 100, 50, 128], [200, 100, 50, 0]]], dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(arr, mode="RGBA"), tmp_path / "a.png"))
    assert out[0, 0].tolist() == [200, 100, 50]
    assert out[0, 1].tolist() == [100, 50, 25]  # round(v * 128 / 255)
    assert out[0, 2].tolist() == [0, 0, 0]


def test_la_composited_on_black(tmp_path: Path) -> None:
    arr = np.array([[[240, 255], [240, 64]]], dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(arr, mode="LA"), tmp_path / "la.png"))
    assert out[0, 0].tolist() == [240, 240, 240]
    assert out[0, 1].tolist() == [60, 60, 60]


def test_cmyk(tmp_path: Path) -> None:
    img = Image.new("CMYK", (4, 1))
    img.putpixel((0, 0), (0, 0, 0, 0))  # white
    img.putpixel((1, 0), (255, 0, 0, 0))  # cyan
    img.putpixel((2, 0), (0, 0, 0, 255))  # black
    img.putpixel((3, 0), (0, 255, 255, 0))  # red
    out = decode_image(_save(img, tmp_path / "c.tif"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [0, 255, 255]
    assert out[0, 2].tolist() == [0, 0, 0]
    assert out[0, 3].tolist() == [255, 0, 0]


def test_cmyk_jpeg_is_sensible(tmp_path: Path) -> None:
    img = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red
    out = decode_image(_save(img, tmp_path / "c.jpg", quality=95))
    r, g, b = out.reshape(-1, 3).mean(0)
    assert r > 230 and g < 25 and b < 25


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path, ext: str) -> None:
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode.startswith("I;16")
    out = decode_image(_save(img, tmp_path / f"w.{ext}"))
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_sixteen_bit_gradient_monotone(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)[None, :]
    out = decode_image(_save(Image.fromarray(ramp), tmp_path / "ramp.png"))[0, :, 0].astype(int)
    assert out[0] == 0 and out[-1] == 255
    assert (np.diff(out) >= 0).all()
    assert np.abs(out - np.arange(256)).max() <= 1  # a full-range ramp maps onto 0..255


def test_mode_i_and_f(tmp_path: Path) -> None:
    # 32-bit integer holding 16-bit data -> scaled like 16-bit.
    arr_i = np.array([[0, 32768, 65535]], dtype=np.int32)
    out = to_rgb_array(Image.fromarray(arr_i, mode="I"))
    assert out[0, :, 0].tolist() == [0, 128, 255]
    # Values beyond 16 bit -> min-max normalised.
    arr_big = np.array([[-100, 0, 1_000_000]], dtype=np.int32)
    out = to_rgb_array(Image.fromarray(arr_big, mode="I"))
    assert out[0, 0, 0] == 0 and out[0, 2, 0] == 255
    # Float in [0, 1] -> times 255; outside -> min-max.
    arr_f = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    out = decode_image(_save(Image.fromarray(arr_f, mode="F"), tmp_path / "f.tif"))
    assert out[0, :, 0].tolist() == [0, 128, 255]
    arr_f2 = np.array([[-3.0, 1.0, 5.0]], dtype=np.float32)
    assert to_rgb_array(Image.fromarray(arr_f2, mode="F"))[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (2, 1))
    img.putpixel((0, 0), (255, 0, 0))
    img.putpixel((1, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = decode_image(_save(img, tmp_path / "o.png", exif=exif))
    assert out.shape == (2, 1, 3)
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[1, 0].tolist() == [0, 0, 255]


def test_resize_and_centre_crop(tmp_path: Path) -> None:
    arr = np.zeros((32, 64, 3), dtype=np.uint8)
    arr[:, :16] = (255, 0, 0)  # left quarter red: cropped away
    arr[:, 16:48] = (0, 255, 0)
    arr[:, 48:] = (0, 0, 255)
    out = load_image(_save(Image.fromarray(arr), tmp_path / "wide.png"), image_size=16)
    assert out.shape == (16, 16, 3)
    assert (out[:, 2:-2, 1] > 200).all() and (out[:, 2:-2, 0] < 30).all()


def test_large_jpeg_reduced_decode(tmp_path: Path) -> None:
    img = Image.new("RGB", (400, 300), (30, 140, 220))
    out = load_image(_save(img, tmp_path / "big.jpg", quality=95), image_size=32)
    assert out.shape == (32, 32, 3)
    assert np.abs(out.reshape(-1, 3).mean(0) - np.array([30, 140, 220])).max() < 4


def test_crop_bottom_removes_banner(tmp_path: Path) -> None:
    arr = np.zeros((60, 40, 3), dtype=np.uint8)
    arr[:40] = (0, 0, 255)
    arr[40:] = (255, 0, 0)  # 20-px banner
    path = _save(Image.fromarray(arr), tmp_path / "plane.png")
    out = load_image(path, image_size=16, crop_bottom=20)
    assert out.shape == (16, 16, 3)
    assert out[..., 0].max() == 0 and out[..., 2].min() == 255


@pytest.mark.parametrize(
    "content",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"\xff\xd8\xff\xe0garbage"],
)
def test_undecodable_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path)
    assert info.value.path == str(path) and info.value.reason


def test_truncated_jpeg_raises(tmp_path: Path) -> None:
    buf = io.BytesIO()
    arr = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    path = tmp_path / "trunc.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageDecodeError):
        decode_image(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(tmp_path / "nope.png")


def test_is_image_file() -> None:
    assert is_image_file("a.JPG") and is_image_file("b.JpEg") and is_image_file("c.tiff")
    assert is_image_file("d.pgm") and is_image_file("e.webp")
    assert not is_image_file("notes.txt") and not is_image_file("._a.jpg")
