"""scripts/check_default_model.py against a stand-in service on the loopback: every test image goes through
POST /classify as a PNG file, a refusal to wait (503, 429) is waited out, and the verdict compares the served accuracy
with the trainer's in both directions."""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import struct
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Iterator, Set

import numpy as np
import pytest
from PIL import Image

from repository_script import load_script
from stand_in_http import send_json, serving

IMAGES = 10
SHADE = 20   # image i of class k is a flat grey of k * SHADE: the stand-in service reads its class from its pixels


@pytest.fixture(scope="module")
def check() -> ModuleType:
    return load_script("scripts/check_default_model.py")


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as the Fashion-MNIST distribution has it (gzip, big-endian sizes after a magic number)."""
    magic = struct.pack(">HBB", 0, 0x08, array.ndim)
    sizes = struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(magic + sizes + array.astype(np.uint8).tobytes())


class StandIn:
    """Answers /classify as the service does, the class read from the image's grey level, wrong for the images in
    `wrong`; the first `refusals` requests are refused with 503 and Retry-After: 0."""

    def __init__(self, wrong: Set[int], refusals: int = 0):
        self.wrong, self.refusals, self.seen, self.lock = wrong, refusals, [], threading.Lock()

    def handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with stand_in.lock:
                    if stand_in.refusals:
                        stand_in.refusals -= 1
                        self.send_response(503)
                        self.send_header("Retry-After", "0")
                        self.end_headers()
                        return
                index = int(re.search(rb'filename="t10k-(\d+)\.png"', body).group(1))
                png = body[body.index(b"\x89PNG"):body.rindex(b"\r\n--")]
                with Image.open(io.BytesIO(png)) as picture:
                    assert picture.format == "PNG" and picture.mode == "L"   # the data set's exact grey pixels
                    grey = int(np.asarray(picture).mean())
                predicted = grey // SHADE + (1 if index in stand_in.wrong else 0)
                with stand_in.lock:
                    stand_in.seen.append(index)
                send_json(self, {"model": {"name": "fashion-mnist", "version": "v1"}, "prediction": {"classIndex": predicted}})

            def log_message(self, *args) -> None:
                pass
        return Handler


@pytest.fixture
def serve() -> Iterator:
    with contextlib.ExitStack() as servers:
        yield lambda stand_in: servers.enter_context(serving(stand_in.handler()))


@pytest.fixture
def data_and_models(tmp_path: Path):
    """Ten test images of classes 0..9 and a bundle whose trainer measured 90% on them."""
    labels = np.arange(IMAGES) % 10
    images = np.repeat((labels * SHADE)[:, None, None], 28 * 28, axis=1).reshape(IMAGES, 28, 28)
    data = tmp_path / "data"
    data.mkdir()
    write_idx(data / "t10k-images-idx3-ubyte.gz", images)
    write_idx(data / "t10k-labels-idx1-ubyte.gz", labels)
    bundle = tmp_path / "models" / "fashion-mnist" / "v1"
    bundle.mkdir(parents=True)
    (bundle / "model.json").write_text(json.dumps({"training": {"metrics": {"testAccuracy": 0.9}}}))
    return ["--data", str(data), "--models", str(tmp_path / "models"), "--concurrency", "2"]


def test_a_service_that_serves_the_trainers_accuracy_passes_after_waiting_out_refusals(check, serve, data_and_models,
                                                                                        capsys) -> None:
    stand_in = StandIn(wrong={4}, refusals=2)
    code = check.main(["--url", serve(stand_in), *data_and_models])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "served accuracy  90.00% (9/10)" in out and out.rstrip().endswith("OK")
    assert sorted(stand_in.seen) == list(range(IMAGES))   # every image once, the refused ones sent again


@pytest.mark.parametrize("wrong", [{1, 4}, set()], ids=["served-lower", "served-higher"])
def test_a_served_accuracy_off_the_trainers_by_more_than_the_tolerance_fails(check, serve, data_and_models, capsys,
                                                                             wrong: Set[int]) -> None:
    # Serving worse than training is what the check is for (pixels decoded differently); better is as suspect.
    code = check.main(["--url", serve(StandIn(wrong)), *data_and_models])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL: training and serving see different pixels" in out


def test_help_describes_the_check_in_whole_sentences_and_every_option(check, capsys):
    # The description was the docstring's first line, which stopped mid-sentence ("... as a PNG file, through").
    with pytest.raises(SystemExit) as exited:
        check.main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "as a PNG file, through `POST /classify` of a running service; prints the served accuracy" in text
    assert "--data DATA the Fashion-MNIST folder" in text
    assert "--concurrency CONCURRENCY requests in flight at once (default 4)" in text
