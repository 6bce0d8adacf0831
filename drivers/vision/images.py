"""Uploaded image files: sniff the type from the first bytes, check the size the header
declares, decode to RGB, and encode frames as JPEG for storage.

The size is read from the header before anything is decoded, so a small file that declares an
enormous picture (a decompression bomb) is refused without allocating it. Every failure is an
`ImageError` whose `reason` tells an empty file, an unsupported type, corrupt data and absurd
dimensions apart; no other exception leaves `decode_image`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import cv2
import numpy as np

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "DecodedImage",
    "ImageError",
    "ImageType",
    "decode_image",
    "encode_jpeg",
    "header_size",
    "sniff",
]

MAX_SIDE = 16_384
"""Widest or tallest picture accepted, in pixels."""
MAX_PIXELS = 100_000_000
"""Most pixels accepted (300 MB of RGB once decoded)."""

Reason = Literal["empty", "unsupported", "corrupt", "dimensions"]


class ImageError(ValueError):
    """The bytes are not an image Takt can inspect; `reason` says why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


class ImageType(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    BMP = "bmp"
    TIFF = "tiff"
    WEBP = "webp"

    @property
    def media_type(self) -> str:
        return f"image/{self.value}"

    @property
    def suffix(self) -> str:
        return ".jpg" if self is ImageType.JPEG else f".{self.value}"


@dataclass(frozen=True, slots=True)
class DecodedImage:
    type: ImageType
    image: np.ndarray  # H x W x 3 uint8 RGB


def sniff(data: bytes) -> ImageType | None:
    """The image type the magic bytes announce, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return ImageType.JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageType.PNG
    if data.startswith(b"BM"):
        return ImageType.BMP
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return ImageType.TIFF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageType.WEBP
    return None


def header_size(data: bytes, kind: ImageType) -> tuple[int, int]:
    """(width, height) as the header declares them; ImageError(corrupt) if it cannot be read."""
    try:
        size = _READERS[kind](data)
    except (struct.error, IndexError, ValueError):
        size = None
    if size is None:
        raise ImageError("corrupt", f"the {kind.value} header is damaged or incomplete")
    return size


def decode_image(data: bytes, *, max_side: int = MAX_SIDE,
                 max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Decode an uploaded file to H x W x 3 uint8 RGB; ImageError for anything else."""
    if not data:
        raise ImageError("empty", "the file is empty")
    kind = sniff(data)
    if kind is None:
        raise ImageError("unsupported",
                         "not a JPEG, PNG, BMP, TIFF or WebP image (judged by its first bytes)")
    width, height = header_size(data, kind)
    _check_dimensions(width, height, max_side, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    except cv2.error as exc:
        raise ImageError("corrupt", f"the {kind.value} data cannot be decoded: {exc}") from None
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ImageError("corrupt", f"the {kind.value} data cannot be decoded")
    # EXIF orientation may have turned the picture; the limits hold either way round.
    _check_dimensions(image.shape[1], image.shape[0], max_side, max_pixels)
    if image.dtype != np.uint8:  # cv2 already scales 16-bit to 8 for IMREAD_COLOR; be sure
        image = (image // 257).astype(np.uint8)
    return DecodedImage(type=kind, image=image)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """An H x W x 3 uint8 RGB image as JPEG bytes."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected H x W x 3 uint8 RGB, got {image.shape} {image.dtype}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the image could not be encoded as JPEG")
    return buf.tobytes()


def _check_dimensions(width: int, height: int, max_side: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError("corrupt", f"the header declares an empty picture ({width}x{height})")
    if width > max_side or height > max_side or width * height > max_pixels:
        raise ImageError("dimensions",
                         f"{width}x{height} pixels is beyond the limit of {max_side} pixels a "
                         f"side and {max_pixels:,} pixels in all")


# ---- header readers: (width, height), or None when the header does not say ------------------

def _png(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _bmp(data: bytes) -> tuple[int, int] | None:
    header = struct.unpack("<I", data[14:18])[0]
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)  # a negative height means rows run top-down


# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length field
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if length < 2:
            return None
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    found: dict[int, int] = {}
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, type_ = struct.unpack(order + "HH", data[entry:entry + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            if type_ == 3:
                found[tag] = struct.unpack(order + "H", data[entry + 8:entry + 10])[0]
            elif type_ == 4:
                found[tag] = struct.unpack(order + "I", data[entry + 8:entry + 12])[0]
            else:
                return None
    if 256 not in found or 257 not in found:
        return None
    return found[256], found[257]


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            return None
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


_READERS = {ImageType.PNG: _png, ImageType.BMP: _bmp, ImageType.JPEG: _jpeg,
            ImageType.TIFF: _tiff, ImageType.WEBP: _webp}
