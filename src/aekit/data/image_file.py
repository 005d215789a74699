"""Reading and writing one image file, whatever its format, mode and bit depth.

``read_image(path)`` returns float32 pixels (H, W, C) in [0, 1], C = 1 (grayscale) or 3 (colour),
and an :class:`ImageInfo` describing the original file. ``write_image(path, pixels, like=info)``
writes pixels back in the original's format, size, mode and bit depth.

What reading does, stated:
- 8-bit values are divided by 255, 16-bit values by 65535 (16-bit grayscale PNG, TIFF, PGM);
  32-bit float images must already lie in [0, 1]. Pillow decodes 16-bit *colour* images at
  8-bit precision (a Pillow limitation); their ``info.bits`` still says 16.
- Palette images become colour, or grayscale when every palette entry is a gray.
- Transparency (RGBA, LA, palette transparency) is composited on black: colour x alpha.
- The EXIF orientation tag is applied, so pixels are as a viewer shows them; ``info.size`` is
  that displayed size.
- Animated GIFs and multi-page TIFFs: the first frame.
- Grayscale or colour is decided by the file's mode, not by its pixels (an RGB JPEG of a
  gray scene is colour).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import DataError, note
from ..files import write_with
from .resize import LUMA, convert_channels, fit_images

# Suffixes searched in folders (case-insensitive): PNG, JPEG, BMP, GIF, TIFF, PGM/PPM/PBM/PNM, WebP.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm", ".webp")

GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}  # lossy formats: high quality

# What Pillow raises for unreadable, truncated or hostile files.
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_NOTED: set[str] = set()  # the files above Pillow's decompression-bomb warning limit said so (_note_large)


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's format name: PNG, JPEG, BMP, GIF, TIFF, PPM (PGM/PPM/PBM), WEBP
    mode: str  # Pillow's mode of the file: 1, L, LA, P, I;16, I, F, RGB, RGBA, CMYK ...
    bits: int  # bits per channel of the file: 1, 8, 16 or 32 (float)
    size: tuple[int, int]  # (height, width) as displayed (after EXIF orientation)
    channels: int  # channels read_image returns: 1 grayscale, 3 colour
    frames: int = 1  # pages of a TIFF, frames of a GIF or WebP: read_image reads the first
    keep: tuple = ()  # (name, value) save options a copy keeps: colour profile, resolution, lossless WebP


def probe_image(path: str | Path) -> ImageInfo:
    """The :class:`ImageInfo` of a file from its header, without decoding the pixels."""
    with _open(path) as im:
        return _info(im, path)


def read_image(path: str | Path) -> tuple[np.ndarray, ImageInfo]:
    """Decode one image file: float32 pixels (H, W, C) in [0, 1] (C = 1 or 3) and its ImageInfo."""
    with _open(path) as im:
        info = _info(im, path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. Pillow's "possibly corrupt EXIF"
                im.load()
                pixels = _pixels(ImageOps.exif_transpose(im), info)
        except _READ_ERRORS as e:
            raise DataError(f"{path}: cannot decode the image ({_reason(e)})") from None
    return pixels, info


def load_image(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    fit: str = "resize",
    method: str = "bicubic",
    channels: str | int = "auto",
) -> torch.Tensor:
    """One image file as a (C, H, W) float32 tensor in [0, 1], converted to ``channels`` and fitted
    to ``size`` (None: native size), as training sees it. For the file's own format, mode and size,
    see :func:`read_image`."""
    pixels, _ = read_image(path)
    x = convert_channels(torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0), channels)
    if size is not None:
        x = fit_images(x, size, fit, method, name=str(path))
    return x[0].contiguous()


def write_image(path: str | Path, pixels: np.ndarray, like: ImageInfo | None = None) -> None:
    """Write float pixels (H, W) or (H, W, C), C = 1 or 3, values in [0, 1], atomically.

    With ``like`` (the ImageInfo of an original) the file gets the original's format, size
    (bicubic resize when the pixels differ), mode and bit depth: grayscale stays grayscale,
    8-bit stays 8-bit, 16-bit grayscale stays 16-bit; its colour profile, resolution (dpi) and a WebP's
    losslessness are kept. Without it: the format from the suffix, 8-bit grayscale or RGB. Alpha is
    written opaque; EXIF is not copied (pixels are upright); one frame (page) is written.
    """
    path = Path(path)
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 3):
        raise ValueError(f"write_image: expected pixels (H, W), (H, W, 1) or (H, W, 3), got {x.shape}")
    x = np.clip(np.nan_to_num(x), 0.0, 1.0)
    if like is None:
        mode = "L" if x.shape[-1] == 1 else "RGB"
        like = ImageInfo(format=_format_for(path), mode=mode, bits=8, size=x.shape[:2], channels=x.shape[-1])
    if x.shape[:2] != tuple(like.size):
        x = _resize(x, like.size)
    if like.channels == 1 and x.shape[-1] == 3:
        x = (x @ LUMA)[..., None]
    elif like.channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    picture = _to_pil(x, like)
    options = {**SAVE_OPTIONS.get(like.format, {}), **dict(like.keep)}
    write_with(path, lambda tmp: picture.save(tmp, format=like.format, **options))


# --- reading ------------------------------------------------------------------------------------

def _open(path: str | Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # one line instead: _note_large
            im = Image.open(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image (unknown format, empty or corrupt header)") from None
    except Image.DecompressionBombError as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        raise DataError(f"{path}: too large to read: {int(pixels[1]) if pixels else 'more'} pixels, more than the "
                        f"{2 * Image.MAX_IMAGE_PIXELS} Pillow opens (its guard against decompression bombs)") from None
    except _READ_ERRORS as e:
        raise DataError(f"{path}: cannot read the image ({_reason(e)})") from None
    _note_large(path, im)
    return im


def _note_large(path, im: Image.Image) -> None:
    """One line, once per file, for an image above Pillow's warning limit (and below its error limit: read, like
    any other): where Pillow would print a two-line DecompressionBombWarning. Worker processes know the files
    said before they started (:func:`take_as_noted`)."""
    w, h = im.size
    if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS and str(path) not in _NOTED:
        _NOTED.add(str(path))
        note(f"{path}: {w}x{h} pixels, more than the {Image.MAX_IMAGE_PIXELS} above which Pillow warns of a "
             "decompression bomb; reading it anyway takes gigabytes of memory")


def noted_large() -> frozenset[str]:
    """The files this process has said are large (:func:`_note_large`)."""
    return frozenset(_NOTED)


def take_as_noted(files, worker: int | None = None) -> None:
    """``files`` as said already: a worker process started by spawn or forkserver is told those the process that
    started it said (probing a folder), as a forked one inherits them, so a training's passes do not say them again
    (``worker``: its number, as a DataLoader's ``worker_init_fn`` is given it)."""
    _NOTED.update(files)


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _info(im: Image.Image, path) -> ImageInfo:
    bits = _bits(im)
    if im.mode not in GRAY_MODES | {"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}:
        raise DataError(f"{path}: unsupported image mode {im.mode!r}")
    if im.mode == "I" and bits == 32:
        raise DataError(f"{path}: 32-bit integer pixels are not supported (save it as 8- or 16-bit)")
    try:
        orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    except _READ_ERRORS:
        orientation = 1
    w, h = im.size
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees
        w, h = h, w
    keep = {k: im.info[k] for k in ("icc_profile", "dpi") if im.info.get(k)}
    if im.mode not in GRAY_MODES | {"P", "PA", "RGB", "RGBA", "RGBX"}:
        keep.pop("icc_profile", None)  # a CMYK or Lab profile does not describe the RGB written back
    if im.format == "WEBP" and _lossless_webp(path):
        keep["lossless"] = True
    return ImageInfo(format=im.format or "", mode=im.mode, bits=bits, size=(h, w), channels=_channels(im),
                     frames=getattr(im, "n_frames", 1), keep=tuple(sorted(keep.items())))


def _lossless_webp(path) -> bool:
    """Whether a WebP file's image chunk is lossless (VP8L), walking its RIFF chunks."""
    try:
        with open(path, "rb") as f:
            f.seek(12)
            while len(head := f.read(8)) == 8:
                if head[:4] in (b"VP8L", b"VP8 "):
                    return head[:4] == b"VP8L"
                f.seek(int.from_bytes(head[4:], "little") + (head[4] & 1), 1)  # chunks are padded to even sizes
    except OSError:
        pass
    return False


def _bits(im: Image.Image) -> int:
    if im.mode == "1":
        return 1
    if im.mode.startswith("I;16") or (im.mode == "I" and im.format in ("PNG", "PPM")):
        return 16  # Pillow reads 16-bit PGM as "I", scaled to 0..65535
    if im.mode in ("I", "F"):
        return 32
    rawmode = str(im.tile[0].args if im.tile else "")
    return 16 if ";16" in rawmode else 8  # e.g. 16-bit RGB PNG, which Pillow decodes at 8 bits


def _channels(im: Image.Image) -> int:
    if im.mode in GRAY_MODES:
        return 1
    if im.mode in ("P", "PA"):
        palette = im.getpalette("RGB")
        if palette:
            rgb = np.asarray(palette).reshape(-1, 3)
            if (rgb == rgb[:, :1]).all():
                return 1
    return 3


def _pixels(im: Image.Image, info: ImageInfo) -> np.ndarray:
    """(H, W, C) float32 in [0, 1], alpha composited on black, C = info.channels."""
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")  # palette -> colours, palette transparency -> alpha
    elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("La", "RGBa"):  # premultiplied alpha
        im = im.convert(im.mode[:-1] + "A")
    a = np.asarray(im)
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif info.bits == 16:
        x = a.astype(np.float32) / 65535.0
    else:  # 32-bit float: taken as is, so it must lie in [0, 1]
        x = a.astype(np.float32)
        if not (np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1):
            raise ValueError("floating-point pixels outside [0, 1] or not finite")
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] in (2, 4):  # alpha last: composite on black
        x = x[..., :-1] * x[..., -1:]
    if info.channels == 1 and x.shape[-1] == 3:  # a gray palette: R = G = B
        x = x[..., :1]
    return np.ascontiguousarray(x)


# --- writing ------------------------------------------------------------------------------------

def _format_for(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown image format for the suffix {path.suffix!r} (use e.g. .png)")
    return fmt


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of (H, W, C) floats to size = (height, width), in float precision."""
    h, w = size
    channels = [
        np.asarray(Image.fromarray(x[..., c], mode="F").resize((w, h), Image.Resampling.BICUBIC))
        for c in range(x.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def _to_pil(x: np.ndarray, like: ImageInfo) -> Image.Image:
    """(H, W, C) floats in [0, 1] as a Pillow image in the mode and bit depth of ``like``."""
    if like.channels == 1:
        gray = x[..., 0]
        if like.mode == "F":
            return Image.fromarray(gray.astype(np.float32), mode="F")
        if like.bits == 16:
            picture = Image.fromarray(np.round(gray * 65535).astype(np.uint16))  # mode I;16
            return picture.convert("I") if like.mode == "I" else picture
        picture = Image.fromarray(np.round(gray * 255).astype(np.uint8), mode="L")
        if like.mode == "1":
            return picture.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)
        if like.mode in ("LA", "La"):
            return picture.convert("LA")
        if like.mode in ("P", "PA"):
            return picture.convert("P")
        return picture
    picture = Image.fromarray(np.round(x * 255).astype(np.uint8), mode="RGB")
    if like.mode in ("RGBA", "RGBa"):
        return picture.convert("RGBA")
    if like.mode in ("P", "PA"):
        return picture.quantize(256)
    if like.mode == "CMYK":
        return picture.convert("CMYK")
    return picture
