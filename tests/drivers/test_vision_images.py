"""Upload decoding: each of the five formats gives the right RGB pixels, and any other bytes
give an ImageError (never another exception, never a decoded bomb)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.vision.images import (
    ImageError,
    ImageType,
    decode_image,
    encode_jpeg,
    header_size,
    sniff,
)


def _picture(h: int = 24, w: int = 32) -> np.ndarray:
    """An RGB picture whose channels differ, so an RGB/BGR mix-up shows."""
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = 200  # red everywhere
    image[: h // 2, :, 1] = 120  # green in the top half
    image[:, : w // 2, 2] = 40  # some blue on the left
    return image


def _encode(image: np.ndarray, kind: ImageType) -> bytes:
    params = {ImageType.WEBP: [cv2.IMWRITE_WEBP_QUALITY, 101]}.get(kind, [])  # 101: lossless
    ok, buf = cv2.imencode(kind.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("kind", [ImageType.PNG, ImageType.BMP, ImageType.TIFF, ImageType.WEBP])
def test_lossless_formats_decode_to_the_exact_rgb_pixels(kind: ImageType) -> None:
    picture = _picture()
    data = _encode(picture, kind)
    assert sniff(data) is kind
    assert header_size(data, kind) == (32, 24)
    decoded = decode_image(data)
    assert decoded.type is kind
    assert decoded.image.dtype == np.uint8
    np.testing.assert_array_equal(decoded.image, picture)


def test_jpeg_decodes_to_the_right_colours() -> None:
    picture = _picture(64, 64)
    data = encode_jpeg(picture, quality=95)
    assert sniff(data) is ImageType.JPEG
    assert header_size(data, ImageType.JPEG) == (64, 64)
    decoded = decode_image(data)
    assert decoded.image.shape == (64, 64, 3)
    # Lossy, but far from a channel swap: red stays ~200 and blue stays low.
    diff = np.abs(decoded.image.astype(int) - picture.astype(int))
    assert diff.mean() < 4
    assert decoded.image[..., 0].mean() > 180 > decoded.image[..., 2].mean() + 100


def test_grey_and_alpha_pictures_become_three_channels() -> None:
    grey = np.full((8, 8), 77, np.uint8)
    ok, buf = cv2.imencode(".png", grey)
    assert ok
    assert decode_image(buf.tobytes()).image.shape == (8, 8, 3)
    rgba = np.dstack([_picture(8, 8), np.full((8, 8), 128, np.uint8)])
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert ok
    np.testing.assert_array_equal(decode_image(buf.tobytes()).image, _picture(8, 8))


def test_empty_unsupported_and_corrupt_are_told_apart() -> None:
    with pytest.raises(ImageError) as empty:
        decode_image(b"")
    assert empty.value.reason == "empty"
    with pytest.raises(ImageError) as pdf:
        decode_image(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    assert pdf.value.reason == "unsupported"
    with pytest.raises(ImageError) as text:
        decode_image(b"just some text")
    assert text.value.reason == "unsupported"
    png = _encode(_picture(), ImageType.PNG)
    with pytest.raises(ImageError) as truncated:
        decode_image(png[: len(png) // 2])
    assert truncated.value.reason == "corrupt"
    with pytest.raises(ImageError) as header_only:
        decode_image(png[:10])
    assert header_only.value.reason == "corrupt"


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (its data is far too short)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00" * 64)


def test_a_bomb_is_refused_from_its_header_without_decoding() -> None:
    with pytest.raises(ImageError) as bomb:
        decode_image(_png_declaring(60_000, 60_000))
    assert bomb.value.reason == "dimensions"
    assert "60000x60000" in str(bomb.value)
    # A real, small picture over a lowered limit is refused the same way.
    with pytest.raises(ImageError) as wide:
        decode_image(_encode(_picture(), ImageType.PNG), max_side=16)
    assert wide.value.reason == "dimensions"


def test_encode_jpeg_refuses_what_is_not_rgb() -> None:
    with pytest.raises(ValueError):
        encode_jpeg(np.zeros((4, 4), np.uint8))


# ---- properties: any bytes decode or raise ImageError ----------------------------------------

_SAMPLES = [_encode(_picture(12, 10), kind) for kind in
            (ImageType.PNG, ImageType.BMP, ImageType.TIFF, ImageType.WEBP)]
_SAMPLES.append(encode_jpeg(_picture(16, 16)))
_MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*",
          b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L",
          b"RIFF\x00\x00\x00\x00WEBPVP8X"]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid file with bytes flipped, cut short or spliced: the inputs that reach the
    header readers and the decoder, which random bytes almost never do."""
    data = bytearray(draw(st.sampled_from(_SAMPLES)))
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


_ANY_BYTES = st.one_of(
    st.binary(max_size=256),
    st.builds(lambda m, tail: m + tail, st.sampled_from(_MAGIC), st.binary(max_size=512)),
    _mutated(),
)


@given(_ANY_BYTES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_bytes_decode_to_rgb_or_raise_image_error(data: bytes) -> None:
    try:
        decoded = decode_image(data)
    except ImageError as exc:
        assert exc.reason in ("empty", "unsupported", "corrupt", "dimensions")
        assert str(exc)
        return
    image = decoded.image
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert decoded.type is sniff(data)


@given(st.integers(1, 5000), st.integers(1, 5000))
def test_png_header_size_reads_what_was_declared(width: int, height: int) -> None:
    assert header_size(_png_declaring(width, height), ImageType.PNG) == (width, height)
