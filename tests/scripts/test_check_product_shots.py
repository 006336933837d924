"""scripts/check_product_shots.py against a stand-in service on the loopback: each set reaches /classify as the files
it should be, the accuracy and the unfamiliarity AUCs are measured the right way round, and a threshold calibrated here
on held-out images says that they were not trained on."""
from __future__ import annotations

import json
import re
import sys
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator

import pytest

from repository_script import REPOSITORY, load_script

sys.path.insert(0, str(REPOSITORY / "src" / "trainer"))

from protopnet_trainer.config import TrainConfig  # noqa: E402
from protopnet_trainer.datasets import load_data_source  # noqa: E402
from stand_in_http import send_json, serving  # noqa: E402

LIMIT, HELD_OUT = 6, 9
# The stand-in's unfamiliarity score of each set: noise and the other data set above every test image, the product
# shots among them.
BASE_SCORE = {"test": 0.0, "shots": 0.025, "noise": 5.0, "other": 3.0, "holdout": 0.0}


@pytest.fixture(scope="module")
def check() -> ModuleType:
    return load_script("scripts/check_product_shots.py")


class StandIn:
    """Answers /classify with class 0 for every image and a score by set (see BASE_SCORE), and notes what came."""

    def __init__(self) -> None:
        self.types: Dict[str, set] = defaultdict(set)
        self.counts: Dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                name, index = re.search(rb'filename="([a-z]+)-(\d+)"', body).groups()
                content_type = re.search(rb"Content-Type: (\S+)\r\n\r\n", body).group(1).decode()
                name = name.decode()
                with stand_in.lock:
                    stand_in.types[name].add(content_type)
                    stand_in.counts[name] += 1
                send_json(self, {"model": {"name": "shapes", "version": "v1"}, "prediction": {"classIndex": 0},
                                 "unfamiliarity": {"score": BASE_SCORE[name] + 0.01 * int(index), "measure": "stand-in"}})

            def log_message(self, *args) -> None:
                pass
        return Handler


@pytest.fixture
def service() -> Iterator:
    stand_in = StandIn()
    with serving(stand_in.handler()) as url:
        yield stand_in, url


def test_the_sets_their_accuracy_and_their_auc_and_a_threshold_calibrated_on_held_out_images(check, service, tmp_path,
                                                                                             capsys) -> None:
    stand_in, url = service
    # A bundle of the synthetic shapes whose recipe held HELD_OUT training images out (the script reads only model.json).
    cfg = TrainConfig(dataset="synthetic", image_size=16, synthetic_classes=3, synthetic_channels=3,
                      synthetic_train_per_class=12, synthetic_test_per_class=4, calibration_holdout=HELD_OUT)
    bundle = tmp_path / "models" / "shapes" / "v1"
    bundle.mkdir(parents=True)
    (bundle / "model.json").write_text(json.dumps({"input": {"width": 16, "channels": 3},
                                                   "training": {"config": cfg.to_dict(), "metrics": {}}}))
    calibration_out = tmp_path / "calibration.json"
    numbers = tmp_path / "numbers.json"

    code = check.main(["--url", url, "--models", str(tmp_path / "models"), "--model", "shapes", "--limit", str(LIMIT),
                       "--calibrate", str(HELD_OUT), "--calibration-out", str(calibration_out), "--json", str(numbers),
                       "--concurrency", "2"])

    out = capsys.readouterr().out
    assert code == 0, out
    # Every image once, the product shots as JPEG and the rest as PNG; the calibration on the held-out images.
    assert dict(stand_in.counts) == {"test": LIMIT, "shots": LIMIT, "noise": LIMIT, "other": LIMIT, "holdout": HELD_OUT}
    assert stand_in.types["shots"] == {"image/jpeg"}
    assert all(stand_in.types[name] == {"image/png"} for name in ("test", "noise", "other", "holdout"))
    sets = json.loads(numbers.read_text())["sets"]
    # The stand-in says class 0 for all: the accuracy is the share of class 0 among the first test images.
    labels = load_data_source(cfg.replace(calibration_holdout=0)).test.labels[:LIMIT]
    assert sets["test"]["accuracy"] == sets["shots"]["accuracy"] == labels.count(0) / LIMIT
    # Noise and the other data set score above every test image: an AUC of 1 against the test images, not 0.
    assert sets["noise"]["auc"] == sets["other"]["auc"] == 1.0
    assert 0.0 < sets["shots"]["auc"] < 1.0
    calibration = json.loads(calibration_out.read_text())
    assert calibration["calibration"]["size"] == HELD_OUT
    # The last HELD_OUT training images are exactly those the recipe held out: the model never trained on them.
    assert calibration["calibration"]["trainedOn"] is False
    assert "(held out of training)" in out
