#!/usr/bin/python3
"""End-to-end check of the default model: every official Fashion-MNIST test image, as a PNG file, through
`POST /classify` of a running service; prints the served accuracy next to the trainer's (training.metrics
.testAccuracy of the bundle that answered). They must agree to 0.1 points: a larger difference means training
and serving see different pixels.

Usage (run by hand, loopback only):
  dotnet run --project src/ProtoPNet.Service -c Release --urls http://127.0.0.1:8080    # Models__Root=models
  scripts/check_default_model.py [--url http://127.0.0.1:8080] [--concurrency 4]
or let the script start (and stop) the service itself on a free loopback port:
  scripts/check_default_model.py --start-service
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE_POINTS = 0.1


def read_idx(path: str, dims: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")   # 8-bit grey, lossless: the exact data set pixels
    return buffer.getvalue()


def classify(url: str, data: bytes, name: str, model: Optional[str], content_type: str = "image/png") -> dict:
    """POST /classify with one image file; backs off as told on 429 and 503."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    query = "topClasses=1&topPrototypes=1&heatmaps=none" + (f"&model={model}" if model else "")
    request = urllib.request.Request(f"{url}/classify?{query}", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    for attempt in range(5):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code in (429, 503) and attempt < 4:   # bounded queue full: back off as asked
                time.sleep(float(error.headers.get("Retry-After") or 1))
                continue
            raise SystemExit(f"error: {name}: HTTP {error.code} {error.read()[:300]!r}")
    raise SystemExit(f"error: {name}: the service kept refusing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(models: str) -> Tuple[subprocess.Popen, str, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = os.path.join("/tmp", f"check-default-model-{port}.log")
    env = dict(os.environ, Models__Root=os.path.abspath(models), Inference__ExecutionProvider="cpu")
    log = open(log_path, "w")
    process = subprocess.Popen(["dotnet", "run", "--project", os.path.join(ROOT, "src", "ProtoPNet.Service"),
                                "-c", "Release", "--urls", url], env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"error: the service exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2):
                return process, url, log_path
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    process.terminate()
    raise SystemExit(f"error: the service did not become ready in 10 minutes; see {log_path}")


@contextlib.contextmanager
def service_url(args: argparse.Namespace) -> Iterator[str]:
    """The service the check talks to: --url, or with --start-service one started here and stopped afterwards."""
    if not args.start_service:
        yield args.url.rstrip("/")
        return
    process, url, log_path = start_service(args.models)
    print(f"service started at {url} (log {log_path})", flush=True)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def first_paragraph(doc: str) -> str:
    """A script's --help description: its docstring's first paragraph whole (its first line stopped mid-sentence)."""
    return " ".join(doc.strip().split("\n\n")[0].split())


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """--url, --start-service and --models: which service the check talks to (this script's and check_product_shots.py's)."""
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the running service (loopback)")
    parser.add_argument("--start-service", action="store_true",
                        help="start the service on a free 127.0.0.1 port with Models__Root=--models, stop it after")
    parser.add_argument("--models", default=os.path.join(ROOT, "models"), help="model repository root")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=first_paragraph(__doc__))
    add_service_arguments(parser)
    parser.add_argument("--model", help="model name (default: the service's default model)")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                        help="the Fashion-MNIST folder, t10k-*-ubyte.gz (default: Debian's, /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    parser.add_argument("--limit", type=int, help="only the first N test images (quick look; no verdict)")
    args = parser.parse_args(argv)

    images = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"), 3)
    labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"), 1)
    count = min(args.limit or len(labels), len(labels))
    with service_url(args) as url:
        started = time.time()
        answers: List[Optional[dict]] = [None] * count

        def one(index: int) -> None:
            answers[index] = classify(url, png_bytes(images[index]), f"t10k-{index:05d}.png", args.model)

        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            for done, _ in enumerate(pool.map(one, range(count)), 1):
                if done % 1000 == 0:
                    print(f"  {done}/{count} images, {done / (time.time() - started):.0f} images/s", flush=True)
        seconds = time.time() - started

    served = {(a["model"]["name"], a["model"]["version"]) for a in answers}
    if len(served) != 1:
        raise SystemExit(f"error: the answers came from several model versions {sorted(served)}")
    (name, version), = served
    correct = sum(int(a["prediction"]["classIndex"] == int(labels[i])) for i, a in enumerate(answers))
    accuracy = correct / count
    manifest_path = os.path.join(args.models, name, version, "model.json")
    with open(manifest_path, encoding="utf-8") as f:
        trainer_accuracy = float(json.load(f)["training"]["metrics"]["testAccuracy"])
    difference = 100 * (accuracy - trainer_accuracy)
    print(f"model {name}@{version}: {count} test images as PNG through POST /classify in {seconds:.1f}s "
          f"({count / seconds:.0f} images/s, concurrency {args.concurrency})")
    print(f"served accuracy  {100 * accuracy:.2f}% ({correct}/{count})")
    print(f"trainer accuracy {100 * trainer_accuracy:.2f}% (training.metrics.testAccuracy)")
    print(f"difference       {difference:+.2f} points (tolerance {TOLERANCE_POINTS})")
    if args.limit:
        print("(a subset: no verdict)")
        return 0
    if abs(difference) > TOLERANCE_POINTS:
        print("FAIL: training and serving see different pixels")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
