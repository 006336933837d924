#!/usr/bin/env python3
"""Damaged image uploads against a running service: what it answers, beside what the trainer's Pillow makes of them.

Makes 52 small seed images of every format the service takes (PNG, JPEG, GIF, BMP, TIFF and WebP in their common
variants) with Pillow, and `--count` mutants of each (bit flips, bytes and words set to boundary values, truncations,
cut or repeated blocks, and edits that know the format: a PNG's chunks and IHDR fields, a JPEG's segments, a GIF's
blocks, a BMP's header, a TIFF's IFD entries, a WebP's RIFF chunks), the same ones for the same `--seed`. Each seed
and each mutant is sent to `POST /classify` as a raw body and as multipart, one request at a time, and opened by the
trainer's own `open_image` (src/trainer/protopnet_trainer/image_files.py) in a child process with a time limit.

Findings (each mutant with one is kept in WORK/findings/): an answer 5xx, a 400 that says the decoder failed on the
file (a fault of its own code, refused rather than answered 500), none at all (reset or timed out: a hang,
after which `/health/live` is asked), one slower than `--slow-seconds`, a 4xx that is not a problem as docs/API.md
documents them (`application/problem+json`, a documented `type` with its documented status, a `detail` of one
printable line), a seed not answered 200. It ends with a Markdown table of the service's answers to the raw uploads
against Pillow's verdict per format, the findings, and the service's resident memory with `--pid`; every result is
in WORK/results.jsonl. The exit status is 1 when any finding but a slow answer was made (a difference from Pillow is
reported, not failed), 2 when no service is ready at `--url`.

Start the service (README, "Quick start"), then from the repository root:

    PYTHONPATH=src/trainer /usr/bin/python3 benchmarks/fuzz_uploads.py --url http://127.0.0.1:8080 --count 20 \
        --pid <the service's process id> --work /tmp/fuzz

`--count` is per seed image: 20 makes 1,040 mutants, 2,184 requests with the seeds' own.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import random
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple
from urllib.parse import urlsplit

from PIL import Image, ImageDraw
from tqdm import tqdm

REPOSITORY = Path(__file__).resolve().parents[1]

# The content type each format is uploaded with (docs/API.md, "Classify").
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp",
                 "webp": "image/webp", "tif": "image/tiff"}

# The service's limits on an image's size (Images:MaxPixels, Images:MaxSide and the pixels-per-byte rule of
# `image-too-many-pixels`, their defaults): the oracle does not decode past them (gigabytes, minutes) and such a
# mutant is not compared.
MAX_PIXELS = 40_000_000
MAX_SIDE = 65_535
DENSE_PIXELS, MAX_PIXELS_PER_BYTE = 1_000_000, 4_096

# The kinds of finding; all but a slow answer fail the run.
SERVER_ERROR, DECODER_FAULT, NO_ANSWER, SLOW, BAD_PROBLEM, SEED_REFUSED, NOT_LIVE = (
    "server-error", "decoder-fault", "no-answer", "slow", "bad-problem", "seed-refused", "not-live")
FAILING = (SERVER_ERROR, DECODER_FAULT, NO_ANSWER, BAD_PROBLEM, SEED_REFUSED, NOT_LIVE)

# How the service's 400 says that its decoder's own code failed on the file (an exception no check foresaw), which it
# refuses rather than answering 500 (docs/API.md): as much a fault to mend as a 500.
DECODER_FAULT_DETAIL = "the decoder failed on it"

Mutations = List[Tuple[bytes, str]]   # (the mutant's bytes, what was done)


@dataclass
class Mutant:
    """One file to upload: a seed image itself (`mutation` "seed") or a mutant of one."""
    name: str            # e.g. png_rgb-007, or png_rgb for the seed
    seed: str            # the seed image's file name
    format: str          # its extension: png, jpg, gif, bmp, webp, tif
    mutation: str
    data: bytes

    @property
    def file_name(self) -> str:
        return f"{self.name}.{self.format}"

    @property
    def is_seed(self) -> bool:
        return self.mutation == "seed"


# ----------------------------------------------------------------------------------------------------------- seeds

def drawing(mode: str = "RGB", size: Tuple[int, int] = (40, 32)) -> Image.Image:
    """A small picture with flat areas, edges and a colour ramp, in `mode`."""
    picture = Image.new("RGB", size, (230, 230, 230))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((6, 4, size[0] - 6, size[1] - 4), fill=(40, 60, 120))
    draw.rectangle((14, 10, 24, 22), fill=(200, 30, 30))
    for x in range(size[0]):
        picture.putpixel((x, 0), (x * 6 % 256, 100, 255 - x * 6 % 256))
    return picture if mode == "RGB" else picture.convert(mode)


def palette(colours: int, mode: str = "RGB") -> Image.Image:
    return drawing(mode).convert("P", palette=Image.ADAPTIVE, colors=colours)


def encoded(picture: Image.Image, form: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, form, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, content: bytes) -> bytes:
    return struct.pack(">I", len(content)) + kind + content + struct.pack(">I", zlib.crc32(kind + content))


def interlaced_png(picture: Image.Image) -> bytes:
    """An Adam7-interlaced RGB PNG (Pillow 9.4 writes none), with a text chunk."""
    width, height = picture.size
    pixels = picture.load()
    rows = b""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    for x0, y0, dx, dy in passes:
        xs, ys = range(x0, width, dx), range(y0, height, dy)
        if len(xs) and len(ys):
            rows += b"".join(b"\0" + b"".join(bytes(pixels[x, y]) for x in xs) for y in ys)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1))
            + png_chunk(b"tEXt", b"Comment\0fuzz seed") + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


def multi_idat_png(picture: Image.Image) -> bytes:
    """An RGB PNG whose image data is split over IDAT chunks of 100 bytes, rows with the Sub filter, and a gAMA."""
    width, height = picture.size
    stride = 3 * width
    pixels = picture.tobytes()
    stream = zlib.compress(b"".join(b"\x01" + pixels[y * stride:(y + 1) * stride] for y in range(height)), 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"gAMA", struct.pack(">I", 45455))
            + b"".join(png_chunk(b"IDAT", stream[i:i + 100]) for i in range(0, len(stream), 100))
            + png_chunk(b"IEND", b""))


def bmp_file(width: int, height: int, bits: int, compression: int, colours: Sequence[Tuple[int, int, int]],
             pixels: bytes, header_size: int = 40, masks: bytes = b"") -> bytes:
    """A BMP as Pillow does not write it (4-bit, RLE, bit fields, a V5 header, top-down with a negative height)."""
    table = b"".join(bytes((blue, green, red, 0)) for red, green, blue in colours)
    header = struct.pack("<IiiHHIIiiII", header_size, width, height, 1, bits, compression, len(pixels), 2835, 2835,
                         len(colours), 0)
    header += masks.ljust(header_size - 40, b"\0") if header_size > 40 else masks
    offset = 14 + len(header) + len(table)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + table + pixels


def png_seeds() -> Dict[str, bytes]:
    return {
        "png_rgb.png": encoded(drawing(), "PNG"),
        "png_rgba.png": encoded(drawing("RGBA"), "PNG"),
        "png_l.png": encoded(drawing("L"), "PNG"),
        "png_la.png": encoded(drawing("LA"), "PNG"),
        "png_p.png": encoded(palette(16), "PNG"),
        "png_p_trns.png": encoded(palette(16), "PNG", transparency=0),
        "png_1bit.png": encoded(drawing("1"), "PNG"),
        "png_i16.png": encoded(drawing("L").convert("I").point(lambda v: v * 256), "PNG"),
        "png_adam7.png": interlaced_png(drawing()),
        "png_multiidat.png": multi_idat_png(drawing()),
    }


def jpeg_seeds() -> Dict[str, bytes]:
    exif = Image.Exif()
    exif[0x0112] = 6   # orientation: turned
    return {
        "jpg_baseline.jpg": encoded(drawing(), "JPEG", quality=85),
        "jpg_grey.jpg": encoded(drawing("L"), "JPEG", quality=85),
        "jpg_progressive.jpg": encoded(drawing(size=(64, 48)), "JPEG", quality=85, progressive=True),
        "jpg_420.jpg": encoded(drawing(size=(48, 40)), "JPEG", quality=75, subsampling=2),
        "jpg_444.jpg": encoded(drawing(), "JPEG", quality=90, subsampling=0),
        "jpg_exif6.jpg": encoded(drawing(), "JPEG", exif=exif.tobytes()),
        "jpg_cmyk.jpg": encoded(drawing("CMYK"), "JPEG"),
        "jpg_prog_grey.jpg": encoded(drawing("L", (48, 40)), "JPEG", progressive=True),
    }


def animation_frames() -> List[Image.Image]:
    frames = [palette(16)]
    for i in (1, 2):
        frame = drawing()
        ImageDraw.Draw(frame).rectangle((i * 5, i * 3, i * 5 + 8, i * 3 + 8), fill=(0, 200, 0))
        frames.append(frame.convert("P", palette=Image.ADAPTIVE, colors=16))
    return frames


def gif_seeds() -> Dict[str, bytes]:
    frames = animation_frames()
    return {
        "gif_single.gif": encoded(palette(32), "GIF"),
        "gif_anim.gif": encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0,
                                disposal=2),
        "gif_trans.gif": encoded(palette(8), "GIF", transparency=2),
        "gif_interlace.gif": encoded(palette(64), "GIF", interlace=True),
        "gif_grey.gif": encoded(drawing("L"), "GIF"),
    }


def bmp_seeds() -> Dict[str, bytes]:
    width, height = 40, 32
    colours16 = [(i * 16, 255 - i * 16, i * 40 % 256) for i in range(16)]
    colours256 = [(i, i, 255 - i) for i in range(256)]
    four_bit = b"".join(bytes(((x + y) % 16) << 4 | (x + y + 1) % 16 for x in range(0, width, 2))
                        for y in range(height))
    rle8 = b"".join(bytes((10, y * 7 % 256, 10, 200, 0, 4, 1, 2, 3, 4, 16, 50)) + b"\0\0"
                    for y in range(height)) + b"\0\1"
    rle4 = b"".join(bytes((20, 0x12, 20, 0x34)) + b"\0\0" for _ in range(height)) + b"\0\1"
    pixels = drawing().load()
    rgb565 = b"".join(struct.pack("<H", (red >> 3) << 11 | (green >> 2) << 5 | blue >> 3)
                      for y in range(height - 1, -1, -1) for red, green, blue in (pixels[x, y] for x in range(width)))
    bgra = b"".join(bytes((blue, green, red, 255))
                    for y in range(height) for red, green, blue in (pixels[x, y] for x in range(width)))
    return {
        "bmp_24.bmp": encoded(drawing(), "BMP"),
        "bmp_8.bmp": encoded(palette(256), "BMP"),
        "bmp_1.bmp": encoded(drawing("1"), "BMP"),
        "bmp_L.bmp": encoded(drawing("L"), "BMP"),
        "bmp_32.bmp": encoded(drawing("RGBA"), "BMP"),
        "bmp_4.bmp": bmp_file(width, height, 4, 0, colours16, four_bit),
        "bmp_rle8.bmp": bmp_file(width, height, 8, 1, colours256, rle8),
        "bmp_rle4.bmp": bmp_file(width, height, 4, 2, colours16, rle4),
        "bmp_565.bmp": bmp_file(width, height, 16, 3, [], rgb565, masks=struct.pack("<III", 0xF800, 0x07E0, 0x001F)),
        "bmp_v5_topdown.bmp": bmp_file(width, -height, 32, 3, [], bgra, 124,
                                       struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0xFF000000) + b"BGRs"),
    }


def webp_seeds() -> Dict[str, bytes]:
    frames = [frame.convert("RGB") for frame in animation_frames()]
    return {
        "webp_lossy.webp": encoded(drawing(), "WEBP", quality=80),
        "webp_lossless.webp": encoded(drawing(), "WEBP", lossless=True),
        "webp_alpha.webp": encoded(drawing("RGBA"), "WEBP", quality=80),
        "webp_alpha_lossless.webp": encoded(drawing("RGBA"), "WEBP", lossless=True),
        "webp_anim.webp": encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0,
                                  quality=70),
    }


def tiff_seeds() -> Dict[str, bytes]:
    seeds = {f"tif_rgb_{compression}.tif": encoded(drawing(), "TIFF", compression=compression)
             for compression in ["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg", "tiff_deflate"]}
    seeds.update({
        "tif_l_lzw_multistrip.tif": encoded(drawing("L"), "TIFF", compression="tiff_lzw", strip_size=256),
        "tif_l_raw_multistrip.tif": encoded(drawing("L"), "TIFF", compression="raw", strip_size=200),
        "tif_1_g4.tif": encoded(drawing("1"), "TIFF", compression="group4"),
        "tif_1_g3.tif": encoded(drawing("1"), "TIFF", compression="group3"),
        "tif_p_lzw.tif": encoded(palette(16), "TIFF", compression="tiff_lzw"),
        "tif_rgba_deflate.tif": encoded(drawing("RGBA"), "TIFF", compression="tiff_adobe_deflate"),
        "tif_i16.tif": encoded(drawing("L").convert("I;16"), "TIFF"),
        "tif_rgb_lzw_pred.tif": encoded(drawing(), "TIFF", compression="tiff_lzw", tiffinfo={317: 2}),
    })
    return seeds


def seed_images() -> Dict[str, bytes]:
    """The seed images by file name (the extension names the format), the same bytes on every run with one Pillow."""
    seeds: Dict[str, bytes] = {}
    for make in (png_seeds, jpeg_seeds, gif_seeds, bmp_seeds, webp_seeds, tiff_seeds):
        seeds.update(make())
    return seeds


# ------------------------------------------------------------------------------------------------ generic mutations

BOUNDARY_BYTES = [0x00, 0xFF, 0x7F, 0x80]
BOUNDARY_WORDS = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def put(data: bytes, offset: int, form: str, value: int) -> bytes:
    """`data` with `value` packed in struct format `form` at `offset`."""
    changed = bytearray(data)
    struct.pack_into(form, changed, offset, value)
    return bytes(changed)


def bit_flips(data: bytes, rng: random.Random) -> Tuple[bytes, str]:
    changed = bytearray(data)
    count = rng.choice([1, 1, 2, 4, 8])
    for _ in range(count):
        changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
    return bytes(changed), f"bit flips x{count}"


def boundary_bytes(data: bytes, rng: random.Random) -> Tuple[bytes, str]:
    changed = bytearray(data)
    at, length, value = rng.randrange(len(data)), rng.choice([1, 1, 2, 4]), rng.choice(BOUNDARY_BYTES)
    changed[at:at + length] = bytes([value]) * length
    return bytes(changed[:len(data)]), f"bytes@{at}x{length}={value:#x}"


def boundary_word(data: bytes, rng: random.Random) -> Tuple[bytes, str]:
    size, order = rng.choice([2, 4]), rng.choice("<>")
    value = rng.choice([v for v in BOUNDARY_WORDS if v < 1 << 8 * size])
    at = rng.randrange(max(1, len(data) - size + 1))
    if at + size > len(data):
        return boundary_bytes(data, rng)
    return put(data, at, order + ("H" if size == 2 else "I"), value), f"word{8 * size}{order}@{at}={value:#x}"


def truncation(data: bytes, rng: random.Random) -> Tuple[bytes, str]:
    at = rng.randrange(len(data))
    return data[:at], f"truncate@{at}"


def block_removal(data: bytes, rng: random.Random) -> Tuple[bytes, str]:
    at = rng.randrange(len(data))
    length = rng.randint(1, max(1, min(64, len(data) - at)))
    return data[:at] + data[at + length:], f"remove {length} bytes@{at}"


def block_repeat(data: bytes, rng: random.Random) -> Tuple[bytes, str]:
    at = rng.randrange(len(data))
    length = rng.randint(1, max(1, min(64, len(data) - at)))
    return data[:at + length] + data[at:at + length] + data[at + length:], f"repeat {length} bytes@{at}"


GENERIC: List[Callable[[bytes, random.Random], Tuple[bytes, str]]] = [
    bit_flips, bit_flips, boundary_bytes, boundary_bytes, boundary_word, truncation, block_removal, block_repeat]


def truncations(data: bytes, offsets: set) -> Mutations:
    return [(data[:at], f"truncate@{at}") for at in sorted(offsets) if 0 <= at < len(data)]


def flip_in(data: bytes, start: int, end: int, rng: random.Random) -> Tuple[bytes, int]:
    """`data` with one bit flipped in [start, end), and where."""
    changed = bytearray(data)
    at = rng.randrange(start, max(start + 1, end))
    changed[at] ^= 1 << rng.randrange(8)
    return bytes(changed), at


# ----------------------------------------------------------------------------------------------------------- PNG

def png_chunk_offsets(data: bytes) -> List[Tuple[int, int, bytes]]:
    """(offset, length, type) of each chunk, up to IEND."""
    chunks, at = [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I", data[at:at + 4])[0], data[at + 4:at + 8]
        chunks.append((at, length, kind))
        at += 12 + length
        if kind == b"IEND":
            break
    return chunks


def png_from(chunks: Sequence[Tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(kind, content) for kind, content in chunks)


def png_mutations(data: bytes, rng: random.Random) -> Mutations:
    offsets = png_chunk_offsets(data)
    chunks = [(kind, data[at + 8:at + 8 + length]) for at, length, kind in offsets]
    out: Mutations = []

    def replaced(kind: bytes, content: bytes) -> bytes:
        return png_from([(k, content if k == kind else c) for k, c in chunks])

    ends = {0, 4, 7, 8}
    for at, length, _ in offsets:
        ends |= {at, at + 4, at + 8, at + 8 + length // 2, at + 8 + length, at + 11 + length}
    out += truncations(data, ends)
    ihdr = dict(chunks)[b"IHDR"]
    fields = [("width", 0, ">I", [0, 1, 2, 41, 39, 65535, 65536, 70000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]),
              ("height", 4, ">I", [0, 1, 2, 33, 31, 65535, 65536, 0x7FFFFFFF, 0xFFFFFFFF]),
              ("bitdepth", 8, "B", [0, 1, 2, 3, 4, 7, 8, 16, 32, 255]),
              ("colortype", 9, "B", [0, 1, 2, 3, 4, 5, 6, 7, 8, 255]),
              ("compression", 10, "B", [1, 255]), ("filter", 11, "B", [1, 255]), ("interlace", 12, "B", [1, 2, 255])]
    for name, offset, form, values in fields:
        out += [(replaced(b"IHDR", put(ihdr, offset, form, v)), f"IHDR.{name}={v} crc fixed") for v in values]
        out.append((put(data, 16 + offset, "B", rng.choice(BOUNDARY_BYTES)), f"IHDR.{name} byte, crc wrong"))
    for colour_type in [0, 2, 3, 4, 6]:
        for depth in [1, 2, 4, 8, 16]:
            header = put(put(ihdr, 8, "B", depth), 9, "B", colour_type)
            out.append((replaced(b"IHDR", header), f"IHDR colortype={colour_type} bitdepth={depth}"))
    for at, length, kind in offsets:
        name = kind.decode("latin1")
        out += [(put(data, at, ">I", v), f"{name}.length={v}")
                for v in [0, 1, length - 1, length + 1, 0x7FFFFFFF, 0xFFFFFFFF] if 0 <= v != length]
    for i, (kind, content) in enumerate(chunks):
        name = kind.decode("latin1")
        out.append((png_from(chunks[:i + 1] + [(kind, content)] + chunks[i + 1:]), f"duplicate {name}"))
        out.append((png_from(chunks[:i] + chunks[i + 1:]), f"remove {name}"))
        if i + 1 < len(chunks):
            swapped = chunks[:]
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            out.append((png_from(swapped), f"swap {name} and {chunks[i + 1][0].decode('latin1')}"))
    for at, _, kind in offsets[:3]:
        for name in [b"\0\0\0\0", b"ihdr" if kind == b"IHDR" else b"idat", b"IDA\xff"]:
            out.append((data[:at + 4] + name + data[at + 8:], f"{kind.decode('latin1')} renamed {name!r}"))
    out += png_palette_mutations(chunks)
    out += png_image_data_mutations(chunks, rng)
    first = chunks[:1]
    out += [
        (data + b"garbage-after-iend" * 3, "bytes after IEND"),
        (data[:-12], "no IEND"),
        (data[:8] + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""), "IHDR and IEND only"),
        (png_from(first + [(b"zTXt", b"k\0\0" + b"\xff" * 40), (b"iCCP", b"p\0\0" + b"\0" * 20)] + chunks[1:]),
         "bad zTXt and iCCP"),
        (png_from(first + [(b"eXIf", b"MM\0*\0\0\0\x08\xff\xff")] + chunks[1:]), "bad eXIf"),
        (png_from(first + [(b"eXIf", b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0")] + chunks[1:]),
         "eXIf orientation 6"),
        (png_from(first + [(b"acTL", struct.pack(">II", 2, 0)),
                           (b"fcTL", struct.pack(">IIIIIHHBB", 0, 100, 100, 0, 0, 1, 1, 0, 0))] + chunks[1:]),
         "APNG frame larger than the image"),
    ]
    return out


def png_palette_mutations(chunks: List[Tuple[bytes, bytes]]) -> Mutations:
    kinds = [kind for kind, _ in chunks]
    if b"PLTE" not in kinds:
        at = 1
        out = [(png_from(chunks[:at] + [(b"tRNS", b"\0\x10" * (n // 2) + b"\x01" * (n % 2))] + chunks[at:]),
                f"tRNS of {n} bytes without a palette") for n in [0, 2, 6, 7]]
        out.append((png_from(chunks[:at] + [(b"PLTE", bytes(range(48)))] + chunks[at:]), "PLTE in a colour image"))
        return out
    table = dict(chunks)[b"PLTE"]
    at = kinds.index(b"PLTE")

    def with_table(content: bytes) -> bytes:
        return png_from([(k, content if k == b"PLTE" else c) for k, c in chunks])

    out = [(with_table((table * 300)[:3 * n]), f"PLTE of {n} entries") for n in [0, 1, 2, 4, 257]]
    out.append((with_table(table + b"\x01"), "PLTE length not a multiple of 3"))
    out.append((png_from([c for c in chunks if c[0] != b"IEND"] + [(b"tRNS", b"\x80" * 300), (b"IEND", b"")]),
                "tRNS after IDAT"))
    out.append((png_from(chunks[:at + 1] + [(b"tRNS", b"\0" * 300)] + chunks[at + 1:]), "tRNS longer than PLTE"))
    return out


def png_image_data_mutations(chunks: List[Tuple[bytes, bytes]], rng: random.Random) -> Mutations:
    stream = b"".join(content for kind, content in chunks if kind == b"IDAT")
    before = [c for c in chunks if c[0] not in (b"IDAT", b"IEND")]
    rows = zlib.decompress(stream)

    def with_data(content: bytes) -> bytes:
        return png_from(before + [(b"IDAT", content), (b"IEND", b"")])

    out = [(with_data(bytes([cmf, flg]) + stream[2:]), f"zlib header {cmf:#x},{flg:#x}")
           for cmf, flg in [(0x78, 0x9D), (0x78, 0x00), (0x08, 0x1D), (0x7F, 0x01), (0x78, 0xBB), (0x88, 0x98), (0, 0)]]
    for _ in range(12):
        flipped, how = bit_flips(stream, rng)
        out.append((with_data(flipped), f"IDAT {how}, crc fixed"))
    out += [(with_data(stream[:cut]), f"IDAT stream cut at {cut}, crc fixed")
            for cut in [len(stream) - 4, len(stream) - 1, len(stream) // 2, 2, 3]]
    out += [
        (with_data(stream + b"\0" * 10), "IDAT trailing zeros"),
        (with_data(zlib.compress(rows[:len(rows) // 2])), "IDAT half the rows"),
        (with_data(zlib.compress(rows + rows)), "IDAT twice the rows"),
        (with_data(zlib.compress(rows[:-1])), "IDAT one byte short"),
        (with_data(zlib.compress(b"")), "IDAT empty stream"),
        (with_data(b""), "IDAT of no bytes"),
    ]
    for value in [5, 0x7F, 0xFF]:
        out.append((with_data(zlib.compress(bytes([value]) + rows[1:])), f"row 0 filter {value}"))
    dictionary = zlib.compressobj(9, zlib.DEFLATED, 15, 9, 0, zdict=b"abc")
    out.append((with_data(dictionary.compress(rows) + dictionary.flush()), "IDAT with a preset dictionary"))
    return out


# ---------------------------------------------------------------------------------------------------------- JPEG

def jpeg_segments(data: bytes) -> List[Tuple[int, int, int, int]]:
    """(offset, marker, length, end) of each segment after SOI; a scan's end is past its entropy-coded data."""
    segments, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xD9:
            segments.append((at, marker, 0, at + 2))
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        end = at + 2 + length
        if marker == 0xDA:
            while end + 1 < len(data) and not (data[end] == 0xFF and data[end + 1] not in (0, *range(0xD0, 0xD8))):
                end += 1
        segments.append((at, marker, length, end))
        at = end
    return segments


def jpeg_mutations(data: bytes, rng: random.Random) -> Mutations:
    segments = jpeg_segments(data)
    out: Mutations = []
    ends = {0, 1, 2, 3}
    for at, _, length, end in segments:
        ends |= {at, at + 1, at + 2, at + 4, at + 2 + length, end, end - 1, (at + 2 + length + end) // 2}
    out += truncations(data, ends)
    for at, marker, length, end in segments:
        out += jpeg_segment_mutations(data, at, marker, length, end, rng)
    first_scan = next(at for at, marker, _, _ in segments if marker == 0xDA)
    out += [(data[:first_scan] + b"\xff\xdd\x00\x04" + struct.pack(">H", interval) + data[first_scan:],
             f"DRI interval {interval} without restart markers") for interval in [0, 1, 2, 0xFFFF]]
    last = [s for s in segments if s[1] == 0xDA][-1]
    scan = data[last[0]:last[3]]
    out += [(data[:last[3]] + scan * n + data[last[3]:], f"last scan repeated x{n}") for n in [10, 70]]
    out += jpeg_exif_mutations(data, segments)
    out += [
        (data[:2] + b"\0" + data[2:], "a byte after SOI"),
        (data[:2] + b"\xff\xff\xff" + data[2:], "fill bytes after SOI"),
        (data + b"\0" * 50, "trailing zeros"),
        (data[:-2], "no EOI"),
        (data[:-2] + data[2:], "a second image without SOI"),
        (data + data, "two JPEGs one after the other"),
    ]
    return out


def jpeg_segment_mutations(data: bytes, at: int, marker: int, length: int, end: int, rng: random.Random) -> Mutations:
    out: Mutations = []
    body = at + 4
    if marker in (0xC0, 0xC1, 0xC2):
        out += [(put(data, body, "B", v), f"SOF precision={v}") for v in [0, 1, 8, 12, 16, 255]]
        for v in [0, 1, 7, 0xFFFF, 0x8000, 65500]:
            out += [(put(data, body + 1, ">H", v), f"SOF height={v}"), (put(data, body + 3, ">H", v), f"SOF width={v}")]
        components = data[body + 5]
        out += [(put(data, body + 5, "B", v), f"SOF components={v}, length unchanged")
                for v in [0, 1, 2, 3, 4, 5, 255] if v != components]
        for c in range(components):
            entry = body + 6 + 3 * c
            out += [(put(data, entry + 1, "B", v), f"SOF component {c} sampling={v:#x}")
                    for v in [0x00, 0x11, 0x12, 0x21, 0x22, 0x44, 0x41, 0x14, 0x33, 0x55, 0xFF, 0x0F]]
            out += [(put(data, entry + 2, "B", v), f"SOF component {c} table={v}") for v in [1, 2, 3, 4, 255]]
            out += [(put(data, entry, "B", v), f"SOF component {c} id={v}")
                    for v in [0, 0xFF, data[body + 6 + 3 * ((c + 1) % components)]]]
        out += [(put(data, at + 1, "B", v), f"SOF marker {marker:#x} to {v:#x}")
                for v in [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC9, 0xCA, 0xCB, 0xCF, 0xF7] if v != marker]
    if marker == 0xC4:
        out += [(put(data, body, "B", v), f"DHT class and id={v:#x}")
                for v in [0x00, 0x01, 0x10, 0x11, 0x04, 0x14, 0x20, 0xFF]]
        out += [(put(data, body + 1 + k, "B", v), f"DHT count of codes of {k + 1} bits={v}")
                for k in [0, 7, 15] for v in [0, 0xFF]]
    if marker == 0xDB:
        out += [(put(data, body, "B", v), f"DQT precision and id={v:#x}") for v in [0x10, 0x04, 0x03, 0xFF, 0x01]]
        out.append((data[:body + 1] + b"\0" * 64 + data[body + 65:], "DQT all zero"))
    if marker == 0xDA:
        components = data[body]
        out += [(put(data, body, "B", v), f"SOS components={v}") for v in [0, 1, 2, 3, 4, 5, 255] if v != components]
        for c in range(components):
            out += [(put(data, body + 1 + 2 * c, "B", v), f"SOS component {c} selector={v:#x}")
                    for v in [0, 0xFF, 0x44]]
            out += [(put(data, body + 2 + 2 * c, "B", v), f"SOS component {c} tables={v:#x}")
                    for v in [0x00, 0x11, 0x44, 0xFF, 0x0F]]
        spectral = body + 1 + 2 * components
        out += [(put(data, spectral + k, "B", v), f"SOS {name}={v:#x}")
                for k, name in enumerate(["Ss", "Se", "AhAl"]) for v in [0, 1, 63, 64, 0xFF, 0x11, 0xDD]]
        start = at + 2 + length
        for _ in range(6):
            flipped, where = flip_in(data, start, end, rng)
            out.append((flipped, f"scan data bit flip@{where}"))
        for inserted in [0xD0, 0xD3, 0xD9, 0xD8, 0xC4, 0xFF]:
            where = rng.randrange(start, max(start + 1, end))
            out.append((data[:where] + bytes([0xFF, inserted]) + data[where:], f"FF{inserted:02X} in the scan@{where}"))
        out.append((data[:start] + b"\0" * (end - start) + data[end:], "scan data zeroed"))
        out.append((data[:start] + b"\xff\x00" * ((end - start) // 2) + data[end:], "scan data FF00"))
    if marker not in (0xD8, 0xD9):
        out += [(put(data, at + 2, ">H", v), f"segment {marker:#x} length={v}")
                for v in [0, 1, 2, 3, length - 1, length + 1, 0xFFFF] if v != length]
        out.append((data[:end] + data[at:end] + data[end:], f"segment {marker:#x} twice"))
        out.append((data[:at] + data[end:], f"segment {marker:#x} removed"))
    return out


def jpeg_exif_mutations(data: bytes, segments: List[Tuple[int, int, int, int]]) -> Mutations:
    app1 = [s for s in segments if s[1] == 0xE1]
    if not app1:
        out = []
        for orientation in [0, 6, 9, 0xFFFF]:
            exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0" + struct.pack("<H", orientation) + b"\0" * 6
            out.append((data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:],
                        f"EXIF orientation {orientation} added"))
        exif = b"Exif\0\0II*\0\x08\0\0\0\xff\xff"
        out.append((data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:],
                    "EXIF of 65535 entries added"))
        return out
    at, _, _, end = app1[0]
    segment = data[at:end]
    tag = segment.find(b"\x01\x12")
    big_endian = tag > 0
    tag = tag if tag > 0 else segment.find(b"\x12\x01")
    if tag <= 0:
        return []
    out = [(put(data, at + tag + 8, ">H" if big_endian else "<H", v), f"EXIF orientation={v}")
           for v in [0, 1, 5, 7, 8, 9, 255, 0xFFFF]]
    out += [(put(data, at + 18, "<H", v), f"EXIF entries={v}") for v in [0, 0xFFFF]]
    out += [(put(data, at + 14, "<I", v), f"EXIF IFD0 offset={v}") for v in [0, 0xFFFFFFF0, 3]]
    return out


# ----------------------------------------------------------------------------------------------------------- GIF

def gif_blocks(data: bytes) -> List[Tuple[int, str, int]]:
    """(offset, kind, value) of each block: hdr, lsd, gct, ext (its label), img, lct, lzw (the minimum code size),
    sub (a data sub-block's length), trailer."""
    blocks = [(0, "hdr", 6), (6, "lsd", 7)]
    at, packed = 13, data[10]
    if packed & 0x80:
        blocks.append((at, "gct", 3 * (2 << (packed & 7))))
        at += blocks[-1][2]

    def sub_blocks(at: int) -> int:
        while at < len(data):
            length = data[at]
            blocks.append((at, "sub", length))
            at += 1 + length
            if length == 0:
                break
        return at

    while at < len(data):
        if data[at] == 0x21:
            blocks.append((at, "ext", data[at + 1]))
            at = sub_blocks(at + 2)
        elif data[at] == 0x2C:
            blocks.append((at, "img", 10))
            packed = data[at + 9]
            at += 10
            if packed & 0x80:
                blocks.append((at, "lct", 3 * (2 << (packed & 7))))
                at += blocks[-1][2]
            blocks.append((at, "lzw", data[at]))
            at = sub_blocks(at + 1)
        else:
            if data[at] == 0x3B:
                blocks.append((at, "trailer", 1))
            break
    return blocks


def gif_mutations(data: bytes, rng: random.Random) -> Mutations:
    blocks = gif_blocks(data)
    out: Mutations = []
    ends = {3, 6, 8, 10, 11, 12}
    for at, _, _ in blocks:
        ends |= {at, at + 1, at + 2}
    out += truncations(data, ends)
    out += [(version + data[6:], f"version {version!r}") for version in [b"GIF87a", b"GIF88a", b"GIF8\x009a"]]
    for v in [0, 1, 0xFFFF, 1000, 20]:
        out += [(put(data, 6, "<H", v), f"screen width={v}"), (put(data, 8, "<H", v), f"screen height={v}")]
    packed = data[10]
    out += [(put(data, 10, "B", v), f"screen flags={v:#x}")
            for v in [0x00, 0x80, 0x87, 0xF0, 0xF7, 0x7F, 0xFF, packed ^ 0x80, (packed & 0xF8) | ((packed + 1) & 7),
                      (packed & 0xF8) | ((packed - 1) & 7)]]
    out += [(put(data, 11, "B", v), f"background={v}") for v in [0xFF, 200]]
    images = [b for b in blocks if b[1] == "img"]
    for i, (at, _, _) in enumerate(images[:2]):
        for offset, name in [(1, "left"), (3, "top"), (5, "width"), (7, "height")]:
            out += [(put(data, at + offset, "<H", v), f"image {i} {name}={v}")
                    for v in [0, 1, 0xFFFF, 39, 41, 100, 30000]]
        flags = data[at + 9]
        out += [(put(data, at + 9, "B", v), f"image {i} flags={v:#x}")
                for v in [0x00, 0x40, 0x80, 0x87, 0xC7, 0xFF, flags ^ 0x40, flags ^ 0x80,
                          (flags & 0xF8) | ((flags + 1) & 7)]]
    for i, (at, _, size) in enumerate([b for b in blocks if b[1] == "lzw"][:2]):
        out += gif_lzw_mutations(data, blocks, i, at, size, rng)
    for at, kind, length in blocks:
        if kind == "sub":
            out += [(put(data, at, "B", v), f"sub-block@{at} length {length} to {v}")
                    for v in [0, 1, 0xFF, length + 1, length - 1] if 0 <= v <= 255 and v != length]
    for at, kind, label in blocks:
        if kind != "ext":
            continue
        size = data[at + 2]
        out += [(put(data, at + 2, "B", v), f"extension {label:#x} block size {size} to {v}")
                for v in [0, 1, 2, 3, 5, 11, 255] if v != size]
        if label == 0xF9:
            out += [(put(data, at + 3, "B", v), f"graphic control flags={v:#x}") for v in [0x00, 0x01, 0x1C, 0xFF]]
            out.append((put(data, at + 6, "B", 0xFF), "transparent index 255"))
        out += [(put(data, at + 1, "B", v), f"extension label {label:#x} to {v:#x}")
                for v in [0x00, 0x01, 0xFE, 0xFF, 0x2C, 0x3B]]
    out += [(data[:-1], "no trailer"), (data[:-1] + b"\0\0\0", "zero bytes instead of the trailer")]
    if images:
        first = images[0][0]
        head, tail = data[:first], data[first:]
        out += [
            (head + b"\x3b", "trailer before the first image"),
            (head + b"\x21\xf9\x02\x01\x00\x00" + tail, "short graphic control before the image"),
            (head + b"\x21\xff\x03NET\x00" + tail, "application extension with a short identifier"),
            (head + b"\x21\xff\x0bNETSCAPE2.0\x01\x01\x00" + tail, "NETSCAPE2.0 with short loop data"),
            (head + b"\x21\xfe\x05hello\x00" + tail, "comment extension"),
            (head + b"\x21\xfe\x05hel", "cut in a comment before the image"),
            (head + b"\0\0\0" + tail, "zero bytes before the image"),
            (head + b"\x2c" + b"\0" * 8 + b"\x00\x08\x00" + tail, "frame of no pixels before the image"),
        ]
    return out


def gif_lzw_mutations(data: bytes, blocks: List[Tuple[int, str, int]], i: int, at: int, size: int,
                      rng: random.Random) -> Mutations:
    out = [(put(data, at, "B", v), f"image {i} LZW minimum code size={v}")
           for v in [0, 1, 2, 3, 7, 8, 9, 11, 12, 13, 255] if v != size]
    following = [b for b in blocks if b[1] == "sub" and b[0] > at][:1]
    if not following:
        return out
    start, _, length = following[0]
    for _ in range(6):
        flipped, where = flip_in(data, start + 1, start + 1 + max(1, length), rng)
        out.append((flipped, f"image {i} LZW data bit flip@{where}"))
    out.append((data[:start + 1] + b"\xff" * length + data[start + 1 + length:], f"image {i} LZW data all FF"))
    out.append((data[:start + 1] + b"\0" * length + data[start + 1 + length:], f"image {i} LZW data all 00"))
    end = start
    while end < len(data) and data[end] != 0:
        end += 1 + data[end]
    kept = max(1, length // 3)
    out.append((data[:start] + bytes([kept]) + data[start + 1:start + 1 + kept] + b"\0" + data[end + 1:],
                f"image {i} LZW data short, blocks closed"))
    return out


# ----------------------------------------------------------------------------------------------------------- BMP

def bmp_mutations(data: bytes, rng: random.Random) -> Mutations:
    header_size, offset = struct.unpack("<I", data[14:18])[0], struct.unpack("<I", data[10:14])[0]
    out = truncations(data, {0, 2, 6, 10, 14, 18, 22, 26, 28, 30, 34, 38, 46, 50, 14 + header_size, offset, offset + 1,
                             (offset + len(data)) // 2, len(data) - 1, len(data) - 2})
    out += [(put(data, 2, "<I", v), f"file size={v}")
            for v in [0, 1, 14, 54, len(data), len(data) + 1, 0x7FFFFFFF, 0xFFFFFFFF]]
    out += [(put(data, 10, "<I", v), f"pixel offset={v}")
            for v in [0, 1, 14, 53, 54, offset - 1, offset + 1, len(data), len(data) - 1, 0x7FFFFFFF, 0xFFFFFFFF]]
    out += [(put(data, 14, "<I", v), f"header size={v}")
            for v in [0, 12, 16, 39, 40, 52, 56, 64, 108, 124, 125, 200, 0xFFFFFFFF] if v != header_size]
    if header_size >= 40:
        out += bmp_info_header_mutations(data, header_size, offset, rng)
    else:
        out += [(put(data, 18, "<H", v), f"core width={v}") for v in [0, 1, 0xFFFF]]
    out.append((data + b"\0" * 200, "trailing zeros"))
    return out


def bmp_info_header_mutations(data: bytes, header_size: int, offset: int, rng: random.Random) -> Mutations:
    width, height = struct.unpack("<ii", data[18:26])
    out = [(put(data, 18, "<i", v), f"width={v}")
           for v in [0, 1, -1, -width, width + 1, width - 1, 65535, 65536, 0x7FFFFFFF, -0x80000000]]
    out += [(put(data, 22, "<i", v), f"height={v}")
            for v in [0, 1, -1, -height, height + 1, height - 1, 65536, 0x7FFFFFFF, -0x80000000, -0x7FFFFFFF]]
    out += [(put(data, 26, "<H", v), f"planes={v}") for v in [0, 2, 0xFFFF]]
    out += [(put(data, 28, "<H", v), f"bit count={v}") for v in [0, 1, 2, 3, 4, 5, 8, 15, 16, 24, 32, 48, 64, 0xFFFF]]
    out += [(put(data, 30, "<I", v), f"compression={v}") for v in [0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 0xFF, 0xFFFFFFFF]]
    out += [(put(data, 34, "<I", v), f"image size={v}") for v in [0, 1, 0xFFFFFFFF]]
    out += [(put(data, 46, "<I", v), f"colours used={v}")
            for v in [0, 1, 2, 15, 16, 17, 255, 256, 257, 1000, 0x7FFFFFFF, 0xFFFFFFFF]]
    out += [(put(data, 50, "<I", v), f"important colours={v}") for v in [0xFFFFFFFF, 1000]]
    compression, bits = struct.unpack("<I", data[30:34])[0], struct.unpack("<H", data[28:30])[0]
    if compression == 3:
        for masks in [(0, 0, 0), (0xFFFF, 0xFF00, 0xFF), (0xF000, 0x0F00, 0x000F), (0xF800, 0x07E0, 0x003F),
                      (0xFFFFFFFF, 0, 0), (0x1, 0x2, 0x4), (0xF0F0, 0x0F0F, 0)]:
            changed = bytearray(data)
            struct.pack_into("<III", changed, 54, *masks)
            out.append((bytes(changed), f"masks={', '.join(hex(m) for m in masks)}"))
    if bits in (16, 32) and compression == 0:
        out += [(put(data, 30, "<I", v), f"bit fields ({v}) without masks") for v in [3, 6]]
    out += [(put(put(data, 28, "<H", b), 30, "<I", c), f"bit count={b} compression={c}")
            for b in [1, 4, 8, 16, 24, 32] for c in [0, 1, 2, 3]]
    if offset > 14 + header_size:
        out.append((put(data, 46, "<I", 300), "colours used=300"))
        for kind in ["ramp", "random"]:
            table = (b"".join(bytes((i * 255 // 299,) * 3 + (0,)) for i in range(300)) if kind == "ramp"
                     else bytes(rng.randrange(256) for _ in range(4 * 300)))
            header = put(put(data[:14 + header_size], 46, "<I", 300), 10, "<I", 14 + header_size + len(table))
            out.append((header + table + data[offset:], f"palette of 300 entries, {kind}"))
    if compression in (1, 2):
        pixels = data[offset:]
        for prefix, name in [(b"\0\x02\xff\xff", "delta beyond the image"), (b"\0\x01", "end of bitmap first"),
                             (b"\0\0" * 40, "only ends of line"),
                             (b"\0\x03\x01\x02\x03", "absolute run of odd length unpadded"),
                             (b"\0\xff" + b"\x11" * 10, "absolute run too long"), (b"\0\x02\0\x05", "delta down")]:
            out.append((data[:offset] + prefix + pixels, f"RLE data begins with {name}"))
        out += [(data[:offset] + pixels[:len(pixels) // 2] + b"\0\x01", "RLE data ends early"),
                (data[:offset] + pixels[:-2], "RLE data without end of bitmap"),
                (data[:offset] + pixels + b"\0" * 100, "RLE data with trailing zeros")]
    return out


# ---------------------------------------------------------------------------------------------------------- WebP

def riff_chunks(data: bytes, start: int = 12, end: Optional[int] = None) -> List[Tuple[int, bytes, int]]:
    """(offset, fourcc, size) of each RIFF chunk in [start, end)."""
    end = len(data) if end is None else end
    chunks, at = [], start
    while at + 8 <= end:
        size = struct.unpack("<I", data[at + 4:at + 8])[0]
        chunks.append((at, data[at:at + 4], size))
        at += 8 + size + (size & 1)
    return chunks


def three_bytes(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + value.to_bytes(3, "little") + data[at + 3:]


def webp_mutations(data: bytes, rng: random.Random) -> Mutations:
    chunks = riff_chunks(data)
    ends = {0, 4, 8, 12, 16, 20, 30}
    for at, _, size in chunks:
        ends |= {at, at + 4, at + 8, at + 8 + size // 2, at + 8 + size, at + 10, at + 7 + size}
    out = truncations(data, ends)
    out += [(put(data, 4, "<I", v), f"RIFF size={v}")
            for v in [0, 4, len(data) - 9, len(data) - 7, len(data), 0x7FFFFFFF, 0xFFFFFFFF]]
    out.append((data[:8] + b"WEBX" + data[12:], "form type WEBX"))
    for at, fourcc, size in chunks:
        name, whole = fourcc.decode("latin1"), 8 + size + (size & 1)
        out += [(put(data, at + 4, "<I", v), f"{name} size={v}")
                for v in [0, 1, size - 1, size + 1, size + 2, 0x7FFFFFFF, 0xFFFFFFFF] if 0 <= v != size]
        out.append((data[:at] + data[at + whole:], f"{name} removed"))
        out.append((data[:at + whole] + data[at:at + whole] + data[at + whole:], f"{name} twice"))
        out += webp_chunk_mutations(data, at, fourcc, size, rng)
    out.append((data + b"\0" * 30, "trailing zeros"))
    return out


def webp_chunk_mutations(data: bytes, at: int, fourcc: bytes, size: int, rng: random.Random) -> Mutations:
    body, out = at + 8, []
    if fourcc == b"VP8 ":
        out += [(put(data, body, "B", v), f"VP8 frame tag={v:#x}") for v in [0x00, 0x01, 0xFF]]
        out.append((data[:body + 3] + b"\x9d\x01\x2b" + data[body + 6:], "VP8 start code wrong"))
        for v in [0, 1, 0x3FFF, 0x4000 | 40, 0xC000 | 40, 16383, 41]:
            out += [(put(data, body + 6, "<H", v), f"VP8 width={v:#x}"),
                    (put(data, body + 8, "<H", v), f"VP8 height={v:#x}")]
        for _ in range(8):
            flipped, where = flip_in(data, body + 10, body + size, rng)
            out.append((flipped, f"VP8 data bit flip@{where}"))
    if fourcc == b"VP8L":
        out += [(put(data, body, "B", v), f"VP8L signature={v:#x}") for v in [0x2E, 0x00, 0xFF]]
        bits = struct.unpack("<I", data[body + 1:body + 5])[0]
        for v in [0, 1, 0x3FFF, 100]:
            out.append((put(data, body + 1, "<I", (bits & ~0x3FFF) | v), f"VP8L width-1={v}"))
            out.append((put(data, body + 1, "<I", (bits & ~(0x3FFF << 14)) | (v << 14)), f"VP8L height-1={v}"))
        out.append((put(data, body + 1, "<I", bits | (7 << 29)), "VP8L version 7"))
        for _ in range(8):
            flipped, where = flip_in(data, body + 5, body + size, rng)
            out.append((flipped, f"VP8L data bit flip@{where}"))
    if fourcc == b"VP8X":
        out += [(put(data, body, "B", v), f"VP8X flags={v:#x}") for v in [0x00, 0x02, 0x10, 0x12, 0xFF]]
        for v in [0, 38, 40, 0xFFFFFF, 1000]:
            out += [(three_bytes(data, body + 4, v), f"VP8X canvas width-1={v}"),
                    (three_bytes(data, body + 7, v), f"VP8X canvas height-1={v}")]
    if fourcc == b"ALPH":
        out += [(put(data, body, "B", v), f"ALPH header={v:#x}")
                for v in [0x00, 0x01, 0x02, 0x03, 0x0C, 0x30, 0xC1, 0xFF]]
        for _ in range(4):
            flipped, where = flip_in(data, body + 1, body + size, rng)
            out.append((flipped, f"ALPH data bit flip@{where}"))
    if fourcc == b"ANIM":
        out += [(put(data, body + 4, "<H", v), f"ANIM loop count={v}") for v in [0, 0xFFFF]]
    if fourcc == b"ANMF":
        out += [(three_bytes(data, body + k, v), f"ANMF@{at} {name}={v}")
                for k, name in [(0, "X"), (3, "Y"), (6, "width-1"), (9, "height-1")] for v in [0, 1, 0xFFFFFF, 100]]
        out += [(put(data, body + 15, "B", v), f"ANMF@{at} flags={v:#x}") for v in [0x00, 0x03, 0xFF]]
        for inner, name, inner_size in riff_chunks(data, body + 16, body + size):
            label = name.decode("latin1")
            out += [(put(data, inner + 4, "<I", v), f"ANMF@{at} {label} size={v}")
                    for v in [0, 1, inner_size + 1, 0xFFFFFFFF]]
            out.append((data[:inner] + b"XXXX" + data[inner + 4:], f"ANMF@{at} {label} renamed XXXX"))
    return out


# ----------------------------------------------------------------------------------------------------------- TIFF

TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8,
                   18: 8}

# Values to give each tag; "len", "h" (the image's height) and "v" (the tag's own value) with an optional +N or -N.
TIFF_TAG_VALUES: Dict[int, List[Any]] = {
    256: [0, 1, 39, 41, 65535, 65536, 0x7FFFFFFF], 257: [0, 1, 31, 33, 65535, 65536, 0x7FFFFFFF],
    258: [0, 1, 2, 4, 7, 12, 16, 24, 32, 64, 255], 259: [0, 1, 2, 3, 4, 5, 6, 7, 8, 32773, 32946, 34712, 50000, 65535],
    262: [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 32844, 34892, 65535], 273: [0, 1, 8, "len-1", "len", "len+1000", 0xFFFFFFFF],
    277: [0, 1, 2, 3, 4, 5, 255, 65535], 278: [0, 1, "h-1", "h+1", 0xFFFFFFFF],
    279: [0, 1, "v-1", "v+1", 0x1000000, 0x7FFFFFFF, 0xFFFFFFFF], 284: [0, 1, 2, 3], 317: [0, 1, 2, 3, 4, 65535],
    338: [0, 1, 2, 3], 339: [0, 1, 2, 3, 4, 5, 6], 266: [0, 1, 2, 3], 274: [0, 1, 2, 3, 5, 6, 8, 9, 65535],
    254: [1, 2, 4], 320: [0, 8, 0xFFFFFFFF], 322: [16, 0, 8], 323: [16, 0]}

# Tags added to a TIFF that lacks them: (tag, type, value, name).
TIFF_ADDED_TAGS = [(322, 3, 16, "TileWidth"), (323, 3, 16, "TileLength"), (317, 3, 2, "Predictor=2"),
                   (317, 3, 3, "Predictor=3"), (317, 3, 7, "Predictor=7"), (338, 3, 2, "ExtraSamples=2"),
                   (339, 3, 2, "SampleFormat=2"), (339, 3, 3, "SampleFormat=3"), (284, 3, 2, "PlanarConfiguration=2"),
                   (274, 3, 6, "Orientation=6"), (274, 3, 8, "Orientation=8"), (266, 3, 2, "FillOrder=2"),
                   (262, 3, 5, "Photometric=5 (CMYK)"), (262, 3, 8, "Photometric=8 (CIELab)"),
                   (254, 4, 1, "NewSubfileType=1")]


@dataclass
class TiffIfd:
    order: str                                      # struct's byte order, "<" or ">"
    offset: int
    entries: List[Tuple[int, int, int, int]]        # (offset, tag, type, count)

    @property
    def next_offset(self) -> int:
        return self.offset + 2 + 12 * len(self.entries)

    def value_offset(self, data: bytes, at: int, kind: int, count: int) -> int:
        """Where an entry's values are: in the entry when they fit in 4 bytes, else where it points."""
        if TIFF_TYPE_SIZES.get(kind, 1) * count <= 4:
            return at + 8
        return struct.unpack(self.order + "I", data[at + 8:at + 12])[0]

    def values(self, data: bytes, tag: int) -> List[int]:
        """A SHORT or LONG tag's values (empty when the tag is missing)."""
        for at, t, kind, count in self.entries:
            if t == tag:
                form = self.order + ("H" if kind == 3 else "I")
                start, size = self.value_offset(data, at, kind, count), struct.calcsize(form)
                return [struct.unpack(form, data[start + k * size:start + (k + 1) * size])[0] for k in range(count)]
        return []


def tiff_ifd(data: bytes) -> TiffIfd:
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    entries = []
    for i in range(count):
        at = offset + 2 + 12 * i
        entries.append((at, *struct.unpack(order + "HHI", data[at:at + 8])))
    return TiffIfd(order, offset, entries)


def tiff_mutations(data: bytes, rng: random.Random) -> Mutations:
    ifd = tiff_ifd(data)
    order, count, after = ifd.order, len(ifd.entries), ifd.next_offset
    out: Mutations = []
    ends = {0, 2, 4, 8, ifd.offset, ifd.offset + 2, after, after + 4}
    for at, _, kind, n in ifd.entries:
        ends |= {at, at + 12}
        if TIFF_TYPE_SIZES.get(kind, 1) * n > 4:
            values = ifd.value_offset(data, at, kind, n)
            ends |= {values, values + TIFF_TYPE_SIZES.get(kind, 1) * n}
    strips, sizes = ifd.values(data, 273), ifd.values(data, 279)
    for start in strips:
        ends |= {start, start + 1, start + 5}
    for start, size in zip(strips, sizes):
        ends |= {start + size // 2, start + size - 1, start + size}
    out += tiff_strip_mutations(data, strips, sizes, rng)
    out += truncations(data, ends)
    out.append(((b"MM" if order == "<" else b"II") + data[2:], "byte order swapped"))
    out += [(put(data, 2, order + "H", v), f"magic={v}") for v in [43, 0, 0x2A00]]
    out += [(put(data, 4, order + "I", v), f"IFD offset={v}") for v in [0, 1, 7, len(data) - 1, len(data), 0xFFFFFFFF]]
    out += [(put(data, ifd.offset, order + "H", v), f"IFD entries={v}") for v in [0, 1, count - 1, count + 1, 0xFFFF]]
    out += [(put(data, after, order + "I", v), f"next IFD={v}") for v in [ifd.offset, 8, 0xFFFFFFFF, len(data) - 2]]
    height = (ifd.values(data, 257) or [32])[0]
    for entry in ifd.entries:
        out += tiff_entry_mutations(data, ifd, entry, height)
    present = {tag for _, tag, _, _ in ifd.entries}
    out += [(tiff_with_tag(data, ifd, tag, kind, value), f"{name} added")
            for tag, kind, value, name in TIFF_ADDED_TAGS if tag not in present]
    return out


def tiff_strip_mutations(data: bytes, strips: List[int], sizes: List[int], rng: random.Random) -> Mutations:
    out: Mutations = []
    if not strips or not sizes:
        return out
    for _ in range(10):
        k = rng.randrange(min(len(strips), len(sizes)))
        if sizes[k] > 2:
            flipped, where = flip_in(data, strips[k], strips[k] + sizes[k], rng)
            out.append((flipped, f"strip {k} data bit flip@{where}"))
    for k in range(min(2, len(strips), len(sizes))):
        start, size = strips[k], sizes[k]
        out += [(data[:start] + b"\xff" * size + data[start + size:], f"strip {k} data all FF"),
                (data[:start] + b"\0" * size + data[start + size:], f"strip {k} data all 00"),
                (data[:start] + b"\x80" + data[start + 1:], f"strip {k} first byte 0x80")]
    return out


def tiff_value(token: Any, data: bytes, own: Optional[int], height: int) -> Optional[int]:
    """A value of TIFF_TAG_VALUES: a number, or "len", "h" or "v" with an optional +N or -N (None: no such value)."""
    if isinstance(token, int):
        return token
    name, sign, amount = re.fullmatch(r"([a-z]+)([+-]?)(\d*)", token).groups()
    base = {"len": len(data), "h": height, "v": own}[name]
    if base is None:
        return None
    return base + (int(amount) if sign == "+" else -int(amount) if sign == "-" else 0)


def tiff_entry_mutations(data: bytes, ifd: TiffIfd, entry: Tuple[int, int, int, int], height: int) -> Mutations:
    at, tag, kind, count = entry
    order, out = ifd.order, []
    inline = TIFF_TYPE_SIZES.get(kind, 1) * count <= 4
    own = struct.unpack(order + ("H" if kind == 3 else "I"), data[at + 8:at + (10 if kind == 3 else 12)])[0] \
        if count == 1 and kind in (3, 4) else None
    for token in TIFF_TAG_VALUES.get(tag, []):
        value = tiff_value(token, data, own, height)
        if value is None or not (count == 1 or tag in (258, 273, 279)):
            continue
        where = at + 8 if inline else struct.unpack(order + "I", data[at + 8:at + 12])[0]
        if where + 4 > len(data):
            continue
        if kind == 3 and value <= 0xFFFF:
            out.append((put(data, where, order + "H", value), f"tag {tag}={value}"))
        elif kind == 4:
            out.append((put(data, where, order + "I", value & 0xFFFFFFFF), f"tag {tag}={value}"))
        elif kind == 3 and inline:
            out.append((put(put(data, at + 2, order + "H", 4), at + 8, order + "I", value & 0xFFFFFFFF),
                        f"tag {tag}={value} as a LONG"))
    out += [(put(data, at + 2, order + "H", v), f"tag {tag} type {kind} to {v}")
            for v in [0, 1, 2, 5, 7, 13, 16, 0xFFFF] if v != kind]
    out += [(put(data, at + 4, order + "I", v), f"tag {tag} count {count} to {v}")
            for v in [0, 2, 3, 4, count + 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF] if v != count]
    out.append((put(data, at, order + "H", 0xFFFE), f"tag {tag} renumbered 65534"))
    after = ifd.next_offset
    removed = data[:at] + data[at + 12:after + 4] + b"\0" * 12 + data[after + 4:]
    out.append((put(removed, ifd.offset, order + "H", len(ifd.entries) - 1), f"tag {tag} removed"))
    if own is not None:
        form = order + ("H" if kind == 3 else "I")
        twin = put(data[at:at + 12], 8, form, (own + 1) & (0xFFFF if kind == 3 else 0xFFFFFFFF))
        doubled = data[:at + 12] + twin + data[at + 12:]   # what follows moves by 12 bytes; offsets to it do not
        out.append((put(doubled, ifd.offset, order + "H", len(ifd.entries) + 1),
                    f"tag {tag} twice, another value (offsets shifted)"))
    return out


def tiff_with_tag(data: bytes, ifd: TiffIfd, tag: int, kind: int, value: int) -> bytes:
    """`data` with a new IFD at its end: the old entries and one more, in tag order."""
    order = ifd.order
    entries = [data[at:at + 12] for at, _, _, _ in ifd.entries]
    packed = struct.pack(order + "H", value) + b"\0\0" if kind == 3 else struct.pack(order + "I", value)
    entries.append(struct.pack(order + "HHI", tag, kind, 1) + packed)
    entries.sort(key=lambda entry: struct.unpack(order + "H", entry[:2])[0])
    padding = b"\0" * (len(data) & 1)
    table = struct.pack(order + "H", len(entries)) + b"".join(entries) + b"\0\0\0\0"
    return put(data + padding + table, 4, order + "I", len(data) + len(padding))


STRUCTURAL: Dict[str, Callable[[bytes, random.Random], Mutations]] = {
    "png": png_mutations, "jpg": jpeg_mutations, "gif": gif_mutations, "bmp": bmp_mutations, "webp": webp_mutations,
    "tif": tiff_mutations}


# --------------------------------------------------------------------------------------------------------- mutants

def mutants_of(file_name: str, data: bytes, count: int, rng: random.Random, seen: set) -> List[Mutant]:
    """`count` mutants of one seed image, none a copy of the seed or of a mutant already in `seen` (SHA-1s): about
    two thirds drawn from the format's structural edits, the rest generic; generic ones fill in where the structural
    ones run out."""
    stem, form = file_name.rsplit(".", 1)
    structural = STRUCTURAL[form](data, rng)
    rng.shuffle(structural)
    wanted_structural = (2 * count + 2) // 3
    picked: List[Mutant] = []

    def take(mutated: bytes, how: str) -> None:
        digest = hashlib.sha1(mutated).digest()
        if mutated != data and digest not in seen:
            seen.add(digest)
            picked.append(Mutant(f"{stem}-{len(picked) + 1:03d}", file_name, form, how, mutated))

    for mutated, how in structural:
        if len(picked) >= wanted_structural:
            break
        take(mutated, how)
    for _ in range(50 * count):
        if len(picked) >= count:
            break
        take(*rng.choice(GENERIC)(data, rng))
    return picked


def make_mutants(seeds: Dict[str, bytes], count: int, seed: int) -> List[Mutant]:
    """`count` mutants of each seed image, in the seeds' order, the same for the same `seed` (each seed image has its
    own generator, seeded by `seed` and its name). No two are alike: a truncation to nothing is made once."""
    seen: set = set()
    mutants: List[Mutant] = []
    for file_name in sorted(seeds):
        rng = random.Random(f"{seed}:{file_name}")
        mutants += mutants_of(file_name, seeds[file_name], count, rng, seen)
    return mutants


# ---------------------------------------------------------------------------------------------------------- oracle

def over_the_limits(size: Tuple[int, int], file_bytes: int) -> Optional[str]:
    """Why the service refuses an image of `size` for its pixels alone (docs/API.md: `image-too-many-pixels`,
    `image-side-too-long`), or None."""
    width, height = size
    pixels = width * height
    if pixels > MAX_PIXELS:
        return f"{width}x{height} is over {MAX_PIXELS:,} pixels"
    if max(width, height) > MAX_SIDE:
        return f"{width}x{height} has a side over {MAX_SIDE:,}"
    if pixels > DENSE_PIXELS and pixels > MAX_PIXELS_PER_BYTE * file_bytes:
        return f"{width}x{height} in {file_bytes} bytes is over {MAX_PIXELS_PER_BYTE:,} pixels a byte"
    return None


def judge(path: str) -> Dict[str, Any]:
    """What the trainer makes of an image file: {"pillow": "reads", "size": [w, h]}, {"pillow": "fails", "reason":
    ...}, or {"pillow": "over-limit", "reason": ...} for a header over the service's size limits (not decoded)."""
    from protopnet_trainer.image_files import open_image

    try:
        with Image.open(path) as picture:
            size = picture.size
    except Exception:   # open_image fails the same way, and says why in its words
        size = None
    reason = over_the_limits(size, os.path.getsize(path)) if size else None
    if reason:
        return {"pillow": "over-limit", "reason": reason}
    try:
        picture = open_image(path)   # decoded, upright and flattened to RGB, as the trainer reads a data set's image
        return {"pillow": "reads", "size": list(picture.size)}
    except Exception as error:   # what the trainer would stop on too, UnreadableImageError or not
        # UnreadableImageError's reason says it without the file's path.
        reason = getattr(error, "reason", "") or f"{type(error).__name__}: {error}"
        if re.fullmatch(r"-?\d+", reason):
            reason = f"decoder error {reason}"   # Pillow's OSError of a C decoder's status, e.g. libtiff's -2
        return {"pillow": "fails", "reason": reason[:300]}


def serve_oracle(requests: TextIO, answers: TextIO) -> int:
    """The oracle's child process: a path a line in, a JSON verdict a line out."""
    warnings.simplefilter("ignore")   # Pillow's warnings of corrupt EXIF, decompression bombs and the like
    for line in requests:
        answers.write(json.dumps(judge(line.rstrip("\n"))) + "\n")
        answers.flush()
    return 0


class Oracle:
    """judge() in a child process, so that a hang or a crash of Pillow is a verdict, not the end of the run."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> subprocess.Popen:
        environment = dict(os.environ)
        trainer = str(REPOSITORY / "src" / "trainer")
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [trainer, environment.get("PYTHONPATH")]))
        # libtiff and libjpeg print their complaints to stderr: not to the run's console.
        return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--oracle-worker"], env=environment,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                bufsize=1)

    def judge(self, path: Path) -> Dict[str, Any]:
        if self.process is None:
            self.process = self.start()
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        line = self.process.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        if not ready:
            self.close()
            return {"pillow": "fails", "reason": f"no verdict in {self.timeout:g} s (a hang)"}
        status = self.process.wait()
        self.process = None
        return {"pillow": "fails", "reason": f"the oracle's process ended with status {status} (a crash)"}

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


# ------------------------------------------------------------------------------------------------------------ HTTP

@dataclass
class Answer:
    status: int                 # 0: no answer (see error)
    content_type: str = ""
    body: bytes = b""
    seconds: float = 0.0
    error: str = ""


class Service:
    """The service at a URL, one request at a time over a kept-alive connection (opened again when it closes)."""

    def __init__(self, url: str, api_key: Optional[str], timeout: float):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.api_key, self.timeout = api_key, timeout
        self.connection: Optional[http.client.HTTPConnection] = None

    def connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None) -> Answer:
        headers = dict(headers or {})
        if self.api_key:
            headers["X-Api-Key"] = self.api_key
        for attempt in range(2):
            reused = self.connection is not None
            self.connection = self.connection or self.connect()
            started = time.monotonic()
            try:
                self.connection.request(method, self.prefix + path, body=body, headers=headers)
                response = self.connection.getresponse()
                content = response.read()
                return Answer(response.status, response.getheader("Content-Type") or "", content,
                              time.monotonic() - started)
            except TimeoutError:
                self.close()
                return Answer(0, seconds=time.monotonic() - started, error=f"no answer in {self.timeout:g} s")
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if reused and attempt == 0:
                    continue   # the server had closed the kept-alive connection: once more, on a new one
                return Answer(0, seconds=time.monotonic() - started, error=f"{type(error).__name__}: {error}")
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def classify_raw(self, mutant: Mutant) -> Answer:
        return self.request("POST", "/classify", mutant.data, {"Content-Type": CONTENT_TYPES[mutant.format]})

    def classify_multipart(self, mutant: Mutant) -> Answer:
        boundary = "fuzz" + hashlib.sha1(mutant.data).hexdigest()   # not in the file, and the same on every run
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{mutant.file_name}\"\r\n"
                f"Content-Type: {CONTENT_TYPES[mutant.format]}\r\n\r\n")
        body = head.encode() + mutant.data + f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", "/classify", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def is_live(self) -> bool:
        return self.request("GET", "/health/live").status == 200


# ------------------------------------------------------------------------------------------------------- judgement

def documented_problem_types(api_markdown: str) -> Dict[str, int]:
    """The problem types of docs/API.md's catalogue (its "Problem types" table), each with the status it is
    answered with."""
    rows = re.findall(r"^\| `(urn:protopnet:problem:[a-z0-9-]+)` \| (\d{3}) \|", api_markdown, flags=re.MULTILINE)
    return {kind: int(status) for kind, status in rows}


def problem_issues(status: int, content_type: str, body: bytes, documented: Dict[str, int]) -> List[str]:
    """What is wrong with a 4xx answer as a problem (docs/API.md, "Conventions" and "Problem types"); empty if
    nothing."""
    if content_type.split(";")[0].strip().lower() != "application/problem+json":
        return [f"content type {content_type or 'missing'}, not application/problem+json"]
    try:
        problem = json.loads(body)
    except ValueError:
        return ["a body that is not JSON"]
    if not isinstance(problem, dict):
        return ["a body that is not a JSON object"]
    issues = []
    kind = problem.get("type")
    if kind not in documented:
        issues.append(f"type {kind!r} not in docs/API.md")
    elif documented[kind] != status:
        issues.append(f"type {kind} answered {status}, documented {documented[kind]}")
    if problem.get("status") not in (None, status):
        issues.append(f"status member {problem.get('status')!r} in a {status} answer")
    detail = problem.get("detail")
    if not isinstance(detail, str) or not detail.strip():
        issues.append("no detail")
    elif not detail.isprintable():
        issues.append(f"detail not one printable line: {detail[:120]!r}")
    return issues


def answer_findings(mutant: Mutant, upload: str, answer: Answer, slow_seconds: float,
                    documented: Dict[str, int]) -> List[Dict[str, str]]:
    """The findings one answer makes."""
    found: List[Tuple[str, str]] = []
    if answer.status == 0:
        found.append((NO_ANSWER, answer.error))
    elif answer.status >= 500:
        found.append((SERVER_ERROR, f"{answer.status} {problem_summary(answer)}"))
    elif 400 <= answer.status < 500:
        found += [(BAD_PROBLEM, f"{answer.status}: {issue}")
                  for issue in problem_issues(answer.status, answer.content_type, answer.body, documented)]
        if DECODER_FAULT_DETAIL in problem_summary(answer):
            found.append((DECODER_FAULT, f"{answer.status} {problem_summary(answer)}"))
    if mutant.is_seed and answer.status != 200:
        found.append((SEED_REFUSED, f"{answer.status or answer.error} {problem_summary(answer)}".strip()))
    if answer.status and answer.seconds > slow_seconds:
        found.append((SLOW, f"{answer.seconds:.2f} s"))
    return [{"kind": kind, "mutant": mutant.name, "upload": upload, "detail": detail} for kind, detail in found]


def problem_summary(answer: Answer) -> str:
    """A problem's type slug and detail, for a line of the report."""
    try:
        problem = json.loads(answer.body)
        return f"{str(problem.get('type', '')).rsplit(':', 1)[-1]}: {problem.get('detail', '')}"[:200]
    except (ValueError, AttributeError):
        return ""


def answer_record(answer: Answer) -> Dict[str, Any]:
    record: Dict[str, Any] = {"status": answer.status, "seconds": round(answer.seconds, 4)}
    if answer.error:
        record["error"] = answer.error
    if answer.status >= 400:
        try:
            problem = json.loads(answer.body)
            record.update(type=problem.get("type"), detail=problem.get("detail"))
        except (ValueError, AttributeError):
            record["body"] = answer.body[:300].decode("latin1")
    return record


# The comparison table's columns: the service's answer to the raw upload against Pillow's verdict.
COLUMNS = ["both accept", "both refuse", "service 200, Pillow fails", "service 4xx, Pillow reads", "not compared"]


def comparison_column(status: int, pillow: str) -> str:
    """The column a mutant is counted in: "not compared" when the service gave no 200 or 4xx (a finding) or the
    image is over the service's size limits."""
    if pillow == "over-limit" or not (status == 200 or 400 <= status < 500):
        return "not compared"
    if status == 200:
        return "both accept" if pillow == "reads" else "service 200, Pillow fails"
    return "service 4xx, Pillow reads" if pillow == "reads" else "both refuse"


def comparison_table(results: List[Dict[str, Any]]) -> str:
    """Markdown: per format, how many mutants fall in each column (seeds not counted)."""
    counts: Counter = Counter()
    formats = sorted({r["format"] for r in results if not r["seed_image"]})
    for r in results:
        if not r["seed_image"]:
            column = comparison_column(r["raw"]["status"], r["oracle"]["pillow"])
            counts[r["format"], column] += 1
            counts["all", column] += 1
            counts[r["format"], "mutants"] += 1
            counts["all", "mutants"] += 1
    lines = ["| format | mutants | " + " | ".join(COLUMNS) + " |", "| --- " * (len(COLUMNS) + 2) + "|"]
    for form in formats + ["all"]:
        label = "**all**" if form == "all" else form
        cells = [str(counts[form, "mutants"])] + [str(counts[form, column]) for column in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------ run

def resident_mib(pid: Optional[int]) -> Optional[float]:
    """The process's resident memory (VmRSS) in MiB, or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def show_progress(args: argparse.Namespace) -> bool:
    """A progress bar on a terminal (or with --progress), as the trainer shows one."""
    return not args.no_progress and (args.progress or sys.stderr.isatty())


def write_files(folder: Path, files: List[Mutant]) -> Dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for mutant in files:
        paths[mutant.name] = folder / mutant.file_name
        paths[mutant.name].write_bytes(mutant.data)
    return paths


def fuzz(files: List[Mutant], paths: Dict[str, Path], service: Service, oracle: Oracle, args: argparse.Namespace,
         documented: Dict[str, int], work: Path) -> Tuple[List[Dict[str, Any]], List[Dict[str, str]], int]:
    """Sends and judges every file in turn; (results, findings, requests)."""
    results: List[Dict[str, Any]] = []
    findings: List[Dict[str, str]] = []
    requests = 0
    kept = work / "findings"
    with open(work / "results.jsonl", "w") as log, \
            tqdm(files, desc="fuzzing uploads", unit="file", leave=False, disable=not show_progress(args)) as bar:
        for mutant in bar:
            record: Dict[str, Any] = {"name": mutant.name, "seed": mutant.seed, "format": mutant.format,
                                      "seed_image": mutant.is_seed, "mutation": mutant.mutation,
                                      "bytes": len(mutant.data), "path": str(paths[mutant.name]),
                                      "oracle": oracle.judge(paths[mutant.name])}
            found: List[Dict[str, str]] = []
            stop = False
            for upload, send in (("raw", service.classify_raw), ("multipart", service.classify_multipart)):
                answer = send(mutant)
                requests += 1
                record[upload] = answer_record(answer)
                found += answer_findings(mutant, upload, answer, args.slow_seconds, documented)
                if answer.status == 0 and not service.is_live():
                    found.append({"kind": NOT_LIVE, "mutant": mutant.name, "upload": upload,
                                  "detail": "/health/live did not answer 200 after this upload: the run stopped here"})
                    stop = True
                    break
            if found:
                kept.mkdir(exist_ok=True)
                shutil.copyfile(paths[mutant.name], kept / mutant.file_name)
                for finding in found:
                    finding["file"] = str(kept / mutant.file_name)
                    if not bar.disable:
                        bar.write(finding_line(finding), file=sys.stderr)
            record["findings"] = found
            findings += found
            results.append(record)
            log.write(json.dumps(record) + "\n")
            bar.set_postfix(findings=len(findings), refresh=False)
            if stop:
                break
    return results, findings, requests


def finding_line(finding: Dict[str, str]) -> str:
    return f"- {finding['kind']}: {finding['mutant']} ({finding['upload']}): {finding['detail']} [{finding['file']}]"


def report(results: List[Dict[str, Any]], findings: List[Dict[str, str]], requests: int, seconds: float,
           rss: Tuple[Optional[float], Optional[float]], args: argparse.Namespace, work: Path) -> None:
    mutants = [r for r in results if not r["seed_image"]]
    print(f"## Uploads fuzzed: {len(mutants)} mutants of {len(results) - len(mutants)} seed images "
          f"(--seed {args.seed}, --count {args.count}) against {args.url}\n")
    print(comparison_table(results))
    print("\n(the service's answer to the raw upload against the trainer's open_image; \"not compared\": over the "
          "service's size limits, or no 200 or 4xx)\n")
    differing = sum(1 for r in mutants if "multipart" in r and r["raw"]["status"] != r["multipart"]["status"])
    kinds = Counter(f["kind"] for f in findings)
    print(f"- requests: {requests} in {seconds:.1f} s ({requests / max(seconds, 1e-9):.1f} a second)")
    print(f"- raw and multipart answered with different statuses: {differing} mutants")
    by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    print(f"- findings: {len(findings)}" + (f" ({by_kind})" if findings else ""))
    if rss[0] is not None or rss[1] is not None:
        start, end = (f"{value:.0f} MiB" if value is not None else "unknown" for value in rss)
        print(f"- service resident memory (pid {args.pid}): {start} at the start, {end} at the end")
    print(f"- every result: {work / 'results.jsonl'}")
    different = [r for r in mutants if comparison_column(r["raw"]["status"], r["oracle"]["pillow"]) in COLUMNS[2:4]]
    if different:
        print("\n### Differences from Pillow (reported, not failed)\n")
        for r in different[:args.list_findings]:
            slug = str(r["raw"].get("type") or "").rsplit(":", 1)[-1]
            service = f"{r['raw']['status']} {slug}".strip()
            pillow = "reads" if r["oracle"]["pillow"] == "reads" else f"fails ({r['oracle'].get('reason', '')[:100]})"
            print(f"- {r['name']} ({r['mutation']}): service {service}, Pillow {pillow}")
        if len(different) > args.list_findings:
            print(f"- ... and {len(different) - args.list_findings} more, in {work / 'results.jsonl'}")
    if findings:
        print("\n### Findings\n")
        for finding in findings[:args.list_findings]:
            print(finding_line(finding))
        if len(findings) > args.list_findings:
            print(f"- ... and {len(findings) - args.list_findings} more, in {work / 'results.jsonl'}")


def main(args: argparse.Namespace) -> int:
    if args.oracle_worker:
        return serve_oracle(sys.stdin, sys.stdout)
    unknown = set(args.formats or []) - set(CONTENT_TYPES)
    if unknown:
        print(f"--formats: no such format {', '.join(sorted(unknown))} (of {', '.join(CONTENT_TYPES)})",
              file=sys.stderr)
        return 2
    documented = documented_problem_types(Path(args.api_doc).read_text(encoding="utf-8"))
    if not documented:
        print(f"{args.api_doc}: no problem types found in its catalogue", file=sys.stderr)
        return 2
    service = Service(args.url, args.api_key, args.timeout)
    ready = service.request("GET", "/health/ready")
    if ready.status != 200:
        said = " ".join(filter(None, [str(ready.status or ready.error), ready.body[:200].decode("latin1")]))
        print(f"no ready service at {args.url}: /health/ready answered {said} (start it as the README says)",
              file=sys.stderr)
        return 2
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fuzz_uploads-"))
    for earlier in ("seeds", "mutants", "findings"):   # an earlier run's files in this folder are not this run's
        shutil.rmtree(work / earlier, ignore_errors=True)
    seeds = {name: data for name, data in seed_images().items()
             if not args.formats or name.rsplit(".", 1)[1] in args.formats}
    mutants = make_mutants(seeds, args.count, args.seed)
    seed_files = [Mutant(name.rsplit(".", 1)[0], name, name.rsplit(".", 1)[1], "seed", data)
                  for name, data in sorted(seeds.items())]
    paths = write_files(work / "seeds", seed_files)
    paths.update(write_files(work / "mutants", mutants))
    rss_before = resident_mib(args.pid)
    oracle = Oracle(args.oracle_timeout)
    started = time.monotonic()
    try:
        results, findings, requests = fuzz(seed_files + mutants, paths, service, oracle, args, documented, work)
    finally:
        oracle.close()
    if not service.is_live():
        findings.append({"kind": NOT_LIVE, "mutant": "-", "upload": "-", "file": "-",
                         "detail": "/health/live did not answer 200 at the end of the run"})
    service.close()
    report(results, findings, requests, time.monotonic() - started, (rss_before, resident_mib(args.pid)), args, work)
    return 1 if any(f["kind"] in FAILING for f in findings) else 0


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=True)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the running service (default: %(default)s)")
    parser.add_argument("--api-key", help="sent as X-Api-Key (a service with Security:ClassifyApiKey)")
    parser.add_argument("--seed", type=int, default=0, help="the mutants' random seed (default: %(default)s)")
    parser.add_argument("--count", type=int, default=20,
                        help="mutants per seed image, 52 seed images (default: %(default)s: 1,040 mutants, "
                             "2,184 requests with the seeds')")
    parser.add_argument("--formats", type=lambda text: text.split(","),
                        help="only these formats, e.g. png,tif (of png, jpg, gif, bmp, webp, tif)")
    parser.add_argument("--work", help="the folder for seeds/, mutants/, findings/ and results.jsonl "
                                       "(default: a new one under the temporary folder)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for an answer (default: %(default)s)")
    parser.add_argument("--slow-seconds", type=float, default=2.0,
                        help="an answer slower than this is a finding, not a failure (default: %(default)s)")
    parser.add_argument("--oracle-timeout", type=float, default=30.0,
                        help="seconds Pillow may take over one file (default: %(default)s)")
    parser.add_argument("--pid", type=int, help="the service's process id, for its resident memory at start and end")
    parser.add_argument("--api-doc", default=str(REPOSITORY / "docs" / "API.md"),
                        help="where the problem types are documented (default: the repository's docs/API.md)")
    parser.add_argument("--list-findings", type=int, default=50,
                        help="findings, and differences from Pillow, listed at the end (default: %(default)s each)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--progress", action="store_true", help="a progress bar even when stderr is not a terminal")
    parser.add_argument("--oracle-worker", action="store_true", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
