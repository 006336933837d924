"""Image files to pixels, decoded the way the service decodes an upload (src/ProtoPNet.Inference/Preprocessing/
ImageDecoder.cs): a JPEG at a reduced DCT scale when the model says so, EXIF orientation applied, transparency
composited over white. Every data-set image file the trainer reads, and every product shot it scores, comes through
open_image (the PNG pictures it writes itself are read back with PIL directly)."""
from __future__ import annotations

import struct
from typing import BinaryIO, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

from .errors import TrainerError


class UnreadableImageError(TrainerError):
    """An image file that does not decode: `path` and why (Pillow's words), for a list of all of them (image_check.py).
    The message comes first and alone suffices: a DataLoader worker's error is made again in the parent from its
    message only (with more required arguments it would come back as a RuntimeError, past the CLI's error line)."""

    def __init__(self, message: str, path: Union[str, BinaryIO, None] = None, reason: str = ""):
        super().__init__(message)
        self.path = path
        self.reason = reason or message


# What Pillow raises for a damaged file: OSError ("image file is truncated", "cannot identify image file"), and for
# some formats' broken structures SyntaxError, EOFError or struct.error.
DECODING_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error)

# What Pillow also raises, while it opens or decodes, for fields of the wrong type or size (a TIFF's StripOffsets given
# as fractions or text, an offset past what a file position holds; met by the upload fuzzer). Caught only around
# Pillow's own steps, so that the same errors from the trainer's code after them stay the faults they are.
PILLOW_FIELD_ERRORS = (TypeError, OverflowError)


def open_image(path: Union[str, BinaryIO], jpeg_draft_size: Optional[Tuple[int, int]] = None) -> Image.Image:
    """An image file as RGB, decoded the way the service decodes an upload (src/ProtoPNet.Inference/Preprocessing/
    ImageDecoder.cs): a JPEG at a reduced DCT scale when `jpeg_draft_size` (the model's input width and height) is
    given (see jpeg_draft_scale), EXIF orientation applied and transparency composited over white, so training and
    serving see the same pixels."""
    try:
        with decoded(path, jpeg_draft_size) as picture:
            return flatten_over_white(eight_bit(upright(picture)))
    except Image.DecompressionBombError as error:
        reason = f"too large to decode: {error}"
        raise UnreadableImageError(f"image {path} is {reason}", path, reason) from None
    except DECODING_ERRORS as error:
        # Pillow names the file in some messages ("cannot identify image file '/data/...'"): the error names it already.
        # A file that cannot be opened (a broken link, its permissions) is told by the system's words alone.
        if isinstance(error, OSError) and error.strerror:
            reason = error.strerror
        else:
            reason = (str(error).replace(f" {str(path)!r}", "") if isinstance(path, str) else str(error)) or type(error).__name__
        raise UnreadableImageError(f"cannot decode image {path}: {reason}", path, reason) from None


def decoded(path: Union[str, BinaryIO], jpeg_draft_size: Optional[Tuple[int, int]]) -> Image.Image:
    """The file opened and its pixels decoded (a JPEG at its draft scale), Pillow's field errors as ValueErrors; the
    caller closes the picture (it is a context manager)."""
    try:
        picture = Image.open(path)
    except PILLOW_FIELD_ERRORS as error:
        raise ValueError(f"{type(error).__name__}: {error}") from error
    try:
        if jpeg_draft_size is not None:
            decode_at_draft_scale(picture, jpeg_draft_size, path)
        try:
            picture.load()
        except PILLOW_FIELD_ERRORS as error:
            raise ValueError(f"{type(error).__name__}: {error}") from error
    except BaseException:
        picture.close()
        raise
    return picture


def upright(picture: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation says. A TIFF's orientation tag is applied by Pillow as it loads the
    pixels (and, before Pillow 10.1, left in the tags, where exif_transpose applied it a second time: a picture stored
    on its side came out upside down), so a TIFF is only loaded."""
    if picture.format == "TIFF":
        picture.load()
        return picture
    return ImageOps.exif_transpose(picture)


def eight_bit(picture: Image.Image) -> Image.Image:
    """Float greyscale (mode F) and 16-bit greyscale (Pillow's modes I and I;16...) scaled to 8 bits as the service's decoder rounds,
    (v * 255 + 32895) >> 16; PIL's convert("L") would clip every value above 255 to white. (16-bit colour cannot be
    mended here: Pillow opens it as RGB holding each channel's high byte, v >> 8, one 8-bit step below the service's
    value for some v.)"""
    if picture.mode == "F":
        # 32-bit float greyscale (a TIFF of measurements), 0 to 1: the service's float-to-byte rounding, in float32,
        # v * 255 + 0.5 clamped and truncated. (convert("L") clips the floats themselves: all but 1.0 became black.)
        values = np.nan_to_num(np.asarray(picture, dtype=np.float32), nan=0.0)
        scaled = np.clip(values * np.float32(255) + np.float32(0.5), np.float32(0), np.float32(255))
        return Image.fromarray(scaled.astype(np.uint8), "L")
    if not picture.mode.startswith("I"):
        return picture
    values = np.clip(np.asarray(picture, dtype=np.int64), 0, 65535)
    return Image.fromarray(((values * 255 + 32895) >> 16).astype(np.uint8), "L")


JPEG_DRAFT_SCALES = (8, 4, 2, 1)
EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)   # the EXIF orientations that swap width and height


def jpeg_draft_scale(stored_size: Tuple[int, int], input_size: Tuple[int, int], orientation: Optional[int]) -> int:
    """s of the libjpeg DCT scale 1/s (8, 4, 2 or 1) a JPEG is decoded at for a model whose input is `input_size`
    (width, height): the smallest scale at which the upright image is still at least the input size on both sides,
    so the resize that follows only shrinks. `stored_size` is the file's (width, height) before its EXIF
    `orientation`. It is Pillow's draft rule, and the service's (ImageDecoder.JpegDraftScale). A photo decodes
    several times faster at 1/8 (a 12-megapixel JPEG: about 25 against 145 ms)."""
    width, height = (input_size[1], input_size[0]) if orientation in TRANSPOSING_ORIENTATIONS else input_size
    fits = min(stored_size[0] // width, stored_size[1] // height)
    return next((scale for scale in JPEG_DRAFT_SCALES if fits >= scale), 1)


def decode_at_draft_scale(picture: Image.Image, input_size: Tuple[int, int], path: Union[str, BinaryIO]) -> None:
    """Sets an opened, not yet loaded JPEG to decode at jpeg_draft_scale. Only the JPEGs the service decodes with
    libjpeg-turbo (RGB and greyscale) are scaled; others (CMYK) decode in full on both sides."""
    # MPO (a camera's JPEG with more frames) is a JPEG to the service too: it decodes the first frame.
    if not isinstance(picture, JpegImagePlugin.JpegImageFile) or picture.mode not in ("RGB", "L"):
        return
    scale = jpeg_draft_scale(picture.size, input_size, picture.getexif().get(EXIF_ORIENTATION))
    if scale == 1:
        return
    width, height = picture.size
    picture.draft(picture.mode, (width // scale, height // scale))   # Pillow picks 1/scale for this request
    expected = (-(-width // scale), -(-height // scale))             # libjpeg rounds the scaled size up
    if picture.size != expected or picture.decoderconfig[:1] != (scale,):
        raise TrainerError(f"{path}: Pillow set up a {picture.size[0]}x{picture.size[1]} decode where the 1/{scale} "
                           f"DCT scale gives {expected[0]}x{expected[1]} (a Pillow whose draft rule changed?)")


def flatten_over_white(picture: Image.Image) -> Image.Image:
    """RGB; transparent pixels composited over white in the service's integer arithmetic,
    c' = (c * a + 255 * (255 - a) + 127) // 255. (PIL's convert("RGB") would just drop the alpha channel.)"""
    if picture.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in picture.info:
        return picture.convert("RGB")
    rgba = np.asarray(picture.convert("RGBA"), dtype=np.uint32)
    alpha = rgba[..., 3:4]
    rgb = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return Image.fromarray(rgb.astype(np.uint8), "RGB")
