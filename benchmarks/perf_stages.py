#!/usr/bin/env python3
"""Where the service's CPU went: attributes every sample of a `perf record -g` profile of the service to one stage.

A sample belongs to the stage of the innermost frame on its stack that names one (a JPEG Huffman decoder called by
the request pipeline is "decode"; a kernel frame under a socket send is "http"). Samples in ONNX Runtime's library
are "onnxruntime" wherever they were called from. Frames are matched by the assembly and type names perf's map
gives (DOTNET_PerfMapEnabled=1; DOTNET_EnableWriteXorExecute=0 so the JIT's code is mapped where perf looks).

    perf script -i service.perf -F comm,tid,ip,sym,dso | benchmarks/perf_stages.py
"""
from __future__ import annotations

import argparse
import collections
import re
import sys
from typing import Iterable, Iterator

# Innermost match wins; within one frame, the first stage whose pattern matches.
STAGES: list[tuple[str, re.Pattern[str]]] = [
    ("onnxruntime", re.compile(r"libonnxruntime|Microsoft\.ML\.OnnxRuntime")),
    ("decode", re.compile(r"SixLabors\.ImageSharp|ImageDecoder|ImageCompleteness|TurboJpeg|libturbojpeg|libSystem\.IO\.Compression")),
    ("resize + tensor", re.compile(r"InputTensorWriter|Resamplers|ContrastNormalizer")),
    ("explanation", re.compile(r"ProtoPNet\.Inference\.Explanation\.(Explainer|HighActivationBox|BicubicUpsampler|Softmax|Unfamiliarity|EvidenceCheck)")),
    ("json", re.compile(r"System\.Text\.Json")),
    ("logging + metrics", re.compile(r"Serilog|Microsoft\.Extensions\.Logging|RequestMetrics|ServiceMetrics|System\.Diagnostics\.Metrics|DiagnosticContext")),
    ("batching hand-off", re.compile(r"InferenceBatcher|System\.Threading\.Channels|SemaphoreSlim")),
    ("http (kestrel, sockets, middleware)", re.compile(r"Kestrel|System\.Net\.Sockets|Microsoft\.AspNetCore|UploadReader|ClassifyApi|System\.IO\.Pipelines|epoll|__send|__libc_recv|__libc_write")),
    ("thread pool + scheduling", re.compile(r"ThreadPoolWorkQueue|PortableThreadPool|LowLevelLifoSemaphore|WorkerThread|sched_yield|futex")),
]

KERNEL = re.compile(r"\[kernel")
RUNTIME = re.compile(r"libcoreclr|libclrjit|libc\.so|ld-linux|\[unknown\]")


def samples(lines: Iterable[str]) -> Iterator[list[str]]:
    """The frames of each sample, innermost first (perf script prints a header line, then one frame per line)."""
    frames: list[str] = []
    for line in lines:
        if not line.strip():
            if frames:
                yield frames
            frames = []
        elif line.startswith((" ", "\t")):
            frames.append(line.strip())
    if frames:
        yield frames


def stage_of(frames: list[str]) -> str:
    for frame in frames:
        # The method and its type, not its parameter types (Write(Image<Rgb24>...) is not ImageSharp's code).
        method = frame.split("(", 1)[0] if "[" in frame else frame
        for stage, pattern in STAGES:
            if pattern.search(method) or pattern.search(frame.rsplit("(", 1)[-1]):
                return stage
    leaf = frames[0]
    if KERNEL.search(leaf):
        return "kernel (other)"
    if RUNTIME.search(leaf):
        return "runtime (GC, JIT, allocation, memset)"
    return "other"


def main(args: argparse.Namespace) -> int:
    counts: collections.Counter[str] = collections.Counter(stage_of(frames) for frames in samples(sys.stdin))
    total = sum(counts.values())
    if total == 0:
        print("no samples on stdin", file=sys.stderr)
        return 1
    print(f"| stage ({args.label}, {total} samples) | share of the service's CPU |")
    print("| --- | --- |")
    for stage, count in counts.most_common():
        print(f"| {stage} | {100 * count / total:.1f} % |")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="profile", help="what was profiled, for the table's header")
    sys.exit(main(parser.parse_args()))
