"""Lists, or keeps only some of, the GPU architectures in a CUDA library's kernels (its .nv_fatbin section).

ONNX Runtime's CUDA provider library (libonnxruntime_providers_cuda.so) is 284 MB, 218 MB of it kernels compiled for
six GPU architectures (sm_75 to sm_120); a host runs only those of its own GPU (sm_90 on an H100 or H200). Zeroing the
others leaves a library of the same size and layout, which the CUDA driver reads as before, but which compresses to a
fifth: what benchmarks/gpu_host.sh carries to a GPU host that has no room or means to install the full one.

    python3 benchmarks/cuda_fatbin.py LIB                        # kernels per architecture
    python3 benchmarks/cuda_fatbin.py LIB --keep 90 -o OUT.so    # the others zeroed

Layout read (the CUDA fatbinary container, as nvcc writes it): a section of containers, each a 16-byte header (magic
0xBA55ED50, version, header size, size of its entries) and then entries, each a header (kind: 1 PTX, 2 ELF; header
size; payload size; the architecture, as 90 for sm_90, at byte 28) followed by its payload.
"""
from __future__ import annotations

import argparse
import struct
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

FATBIN_MAGIC = 0xBA55ED50
KINDS = {1: "PTX", 2: "ELF"}


class FatbinError(ValueError):
    """The file is not a 64-bit ELF library holding CUDA kernels, or its kernels are not laid out as expected."""


@dataclass(frozen=True)
class Entry:
    kind: str
    arch: int
    payload_offset: int
    payload_size: int


def fatbin_section(data: bytes) -> Tuple[int, int]:
    """(file offset, size) of the .nv_fatbin section of a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise FatbinError("not a 64-bit little-endian ELF file")
    section_headers, = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)

    def header(index: int) -> Tuple[int, int, int]:
        name, _type, _flags, _address, offset, size = struct.unpack_from("<IIQQQQ", data, section_headers + index * entry_size)
        return name, offset, size

    _, names_offset, _ = header(names_index)
    for index in range(count):
        name, offset, size = header(index)
        end = data.index(b"\0", names_offset + name)
        if data[names_offset + name:end] == b".nv_fatbin":
            return offset, size
    raise FatbinError("no .nv_fatbin section: the file holds no CUDA kernels")


def entries(data: bytes) -> Iterator[Entry]:
    """Every kernel image in the .nv_fatbin section, in file order."""
    start, size = fatbin_section(data)
    position, end = start, start + size
    while position + 16 <= end:
        magic, _version, header_size, entries_size = struct.unpack_from("<IHHQ", data, position)
        if magic != FATBIN_MAGIC:
            position += 8  # containers are 8-byte aligned; padding lies between them
            continue
        entry, container_end = position + header_size, position + header_size + entries_size
        if container_end > end:
            raise FatbinError(f"a container at {position:#x} runs past the end of its section")
        while entry < container_end:
            kind, _version, entry_header_size, payload_size = struct.unpack_from("<HHIQ", data, entry)
            arch, = struct.unpack_from("<I", data, entry + 28)
            if entry_header_size < 32 or entry + entry_header_size + payload_size > container_end:
                raise FatbinError(f"an entry at {entry:#x} does not fit its container")
            yield Entry(KINDS.get(kind, f"kind {kind}"), arch, entry + entry_header_size, payload_size)
            entry += entry_header_size + payload_size
        position = container_end


def keep_only(data: bytes, keep: Sequence[int]) -> Tuple[bytearray, int, int]:
    """A copy of the library with the payload of every entry for another architecture zeroed: (copy, bytes kept, zeroed)."""
    pruned, kept, zeroed = bytearray(data), 0, 0
    for entry in entries(data):
        if entry.arch in keep:
            kept += entry.payload_size
        else:
            pruned[entry.payload_offset:entry.payload_offset + entry.payload_size] = bytes(entry.payload_size)
            zeroed += entry.payload_size
    if kept == 0:
        raise FatbinError(f"no kernels for architecture {', '.join(map(str, keep))}: the library could not run there")
    return pruned, kept, zeroed


def main(args: argparse.Namespace) -> int:
    data = Path(args.library).read_bytes()
    try:
        if args.keep is None:
            sizes, counts = Counter(), Counter()
            for entry in entries(data):
                sizes[(entry.arch, entry.kind)] += entry.payload_size
                counts[(entry.arch, entry.kind)] += 1
            for (arch, kind), size in sorted(sizes.items()):
                print(f"sm_{arch} {kind}: {counts[(arch, kind)]} kernel images, {size / 1e6:.1f} MB")
            return 0
        pruned, kept, zeroed = keep_only(data, args.keep)
    except FatbinError as error:
        print(f"{args.library}: {error}", file=sys.stderr)
        return 1
    Path(args.output).write_bytes(pruned)
    print(f"{args.output}: kept {kept / 1e6:.1f} MB of kernels for sm_{', sm_'.join(map(str, args.keep))}, zeroed {zeroed / 1e6:.1f} MB")
    return 0


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", help="a CUDA library, e.g. libonnxruntime_providers_cuda.so")
    parser.add_argument("--keep", type=lambda text: [int(a) for a in text.split(",")],
                        help="architectures to keep, as 90 or 89,90; without it, list them")
    parser.add_argument("-o", "--output", help="where to write the pruned copy (with --keep)")
    return parser


def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.keep is not None and args.output is None:
        parser.error("--keep needs -o OUTPUT")
    return args


if __name__ == "__main__":
    sys.exit(main(parse()))
