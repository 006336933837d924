"""benchmarks/cuda_fatbin.py zeroes the kernels of other GPU architectures and nothing else, on a small ELF library laid
out as nvcc lays out a CUDA library's kernels (the real one, ONNX Runtime's CUDA provider, is 284 MB)."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import List, Tuple

import pytest

from repository_script import load_script

cuda_fatbin = load_script("benchmarks/cuda_fatbin.py")


def container(kernels: List[Tuple[int, int, bytes]]) -> bytes:
    """A fatbin container of (kind, arch, payload) entries."""
    body = b""
    for kind, arch, payload in kernels:
        header = struct.pack("<HHIQ", kind, 0x101, 64, len(payload)) + struct.pack("<IIII", len(payload), 0, 0x10008, arch)
        body += header.ljust(64, b"\0") + payload
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def library(fatbin: bytes, section_name: bytes = b".nv_fatbin") -> bytes:
    """A 64-bit ELF file with a code-like prefix, one section holding the fatbin, and the section-name table."""
    names = b"\0" + section_name + b"\0.shstrtab\0"
    code = b"\x90" * 40
    fatbin_offset = 64 + len(code)
    names_offset = fatbin_offset + len(fatbin)
    section_headers = names_offset + len(names)
    elf = bytearray(b"\x7fELF\x02\x01\x01".ljust(64, b"\0"))
    struct.pack_into("<Q", elf, 0x28, section_headers)
    struct.pack_into("<HHH", elf, 0x3A, 64, 3, 2)

    def section(name: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQ", name, 1, 2, 0, offset, size).ljust(64, b"\0")

    headers = bytes(64) + section(1, fatbin_offset, len(fatbin)) + section(len(section_name) + 2, names_offset, len(names))
    return bytes(elf) + code + fatbin + names + headers


KERNELS = [(2, 80, b"\xaa" * 48), (2, 90, b"\xbb" * 40), (1, 90, b"ptx for sm_90\0\0\0")]
# Two containers with 8 bytes of padding between them, as the linker aligns them.
FATBIN = container(KERNELS[:2]) + bytes(8) + container([(2, 86, b"\xcc" * 24), KERNELS[2]])


def test_lists_every_kernel_image_with_its_architecture() -> None:
    found = [(entry.kind, entry.arch, entry.payload_size) for entry in cuda_fatbin.entries(library(FATBIN))]
    assert found == [("ELF", 80, 48), ("ELF", 90, 40), ("ELF", 86, 24), ("PTX", 90, 16)]


def test_zeroes_the_other_architectures_and_leaves_every_other_byte_as_it_was() -> None:
    original = library(FATBIN)
    pruned, kept, zeroed = cuda_fatbin.keep_only(original, [90])
    assert (kept, zeroed) == (40 + 16, 48 + 24)
    assert len(pruned) == len(original)
    assert b"\xaa" not in pruned and b"\xcc" not in pruned
    assert b"\xbb" * 40 in pruned and b"ptx for sm_90" in pruned
    changed = [i for i, (a, b) in enumerate(zip(original, pruned)) if a != b]
    payloads = [(e.payload_offset, e.payload_offset + e.payload_size) for e in cuda_fatbin.entries(original) if e.arch != 90]
    assert changed and all(any(start <= i < end for start, end in payloads) for i in changed)
    # The pruned library still reads as the same containers and entries.
    assert [(e.arch, e.payload_size) for e in cuda_fatbin.entries(bytes(pruned))] == [(80, 48), (90, 40), (86, 24), (90, 16)]


def test_refuses_to_keep_an_architecture_it_has_no_kernels_for() -> None:
    with pytest.raises(cuda_fatbin.FatbinError, match="no kernels for architecture 70"):
        cuda_fatbin.keep_only(library(FATBIN), [70])


@pytest.mark.parametrize("data, reason", [
    (b"#!/usr/bin/env bash\n", "not a 64-bit little-endian ELF file"),
    (library(FATBIN, section_name=b".rodata"), "no .nv_fatbin section"),
])
def test_says_why_a_file_is_not_a_cuda_library(data: bytes, reason: str) -> None:
    with pytest.raises(cuda_fatbin.FatbinError, match=reason):
        list(cuda_fatbin.entries(data))


def test_refuses_an_entry_that_runs_past_its_container() -> None:
    broken = bytearray(FATBIN)
    struct.pack_into("<Q", broken, 16 + 8, 10_000)  # the first entry's payload size
    with pytest.raises(cuda_fatbin.FatbinError, match="does not fit its container"):
        list(cuda_fatbin.entries(library(bytes(broken))))


def test_command_line_writes_the_pruned_copy_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, output = tmp_path / "libkernels.so", tmp_path / "pruned.so"
    source.write_bytes(library(FATBIN))
    assert cuda_fatbin.main(cuda_fatbin.parse([str(source)])) == 0
    assert "sm_86 ELF: 1 kernel images" in capsys.readouterr().out
    assert cuda_fatbin.main(cuda_fatbin.parse([str(source), "--keep", "86,90", "-o", str(output)])) == 0
    assert b"\xcc" * 24 in output.read_bytes() and b"\xaa" not in output.read_bytes()
    assert cuda_fatbin.main(cuda_fatbin.parse([str(tmp_path / "pruned.so"), "--keep", "75", "-o", str(tmp_path / "x")])) == 1
    assert "no kernels for architecture 75" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cuda_fatbin.parse([str(source), "--keep", "90"])
