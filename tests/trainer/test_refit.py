"""scripts/refit_default_model.py rebuilds a torch model from a bundle's graph, in which the export folded every batch
norm into its convolution: the rebuilt model must compute what the graph computes, and a model that does not is
refused before anything is refit."""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from protopnet_trainer.config import TrainConfig
from protopnet_trainer.onnx_graph import run_graph

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "refit_default_model.py")


@pytest.fixture(scope="module")
def refit():
    spec = importlib.util.spec_from_file_location("refit_default_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rebuilt_model_computes_what_the_graph_computes(refit, trained_bundle):
    folder = trained_bundle["path"]
    with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    model = refit.model_from_onnx(manifest, folder, TrainConfig.from_dict(manifest["training"]["config"]))
    images = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    graph = run_graph(os.path.join(folder, "model.onnx"), images.numpy())
    with torch.no_grad():
        out = model(images)
    assert np.allclose(out.logits.numpy(), graph["logits"], atol=1e-4)
    assert np.allclose(out.similarity_maps.numpy(), graph["similarity_maps"], atol=1e-4)
    # The trained trunk's batch norms are not identities, so this is the folding at work, not a trivial graph.
    trained = trained_bundle["result"].model.trunk
    assert any(float(m.running_var.sub(1).abs().max()) > 1e-3 for m in trained.modules()
               if isinstance(m, torch.nn.BatchNorm2d))


def test_a_model_that_does_not_reproduce_the_probe_is_refused(refit, trained_bundle):
    folder = trained_bundle["path"]
    with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["lastLayer"]["weights"] = [[w + 1.0 for w in row] for row in manifest["lastLayer"]["weights"]]
    with pytest.raises(SystemExit, match="does not reproduce the bundle's probe"):
        refit.model_from_onnx(manifest, folder, TrainConfig.from_dict(manifest["training"]["config"]))


def test_a_refit_publishes_a_new_version_that_records_its_push_and_its_calibration(refit, tiny, tmp_path):
    from protopnet_trainer.pipeline import TrainJob, train_and_publish
    # Ten classes: the script adds product photos of Fashion-MNIST's classes 0, 3, 7 and 9 to the examples.
    cfg = tiny(synthetic_classes=10, synthetic_train_per_class=4, synthetic_test_per_class=2, prototypes_per_class=1,
               epochs=2)
    models = tmp_path / "models"
    old = train_and_publish(TrainJob(cfg, str(models), "shapes", run_dir=str(tmp_path / "run"), examples=2,
                                     scorecard=False), log=lambda line: None)
    assert refit.main(refit.parse_args(["--bundle", old, "--models", str(models), "--calibration-images", "5",
                                        "--last-layer-iterations", "1", "--no-progress"])) == 0
    [new] = [v for v in os.listdir(models / "shapes") if not v.startswith(".") and v != os.path.basename(old)]
    manifests = []
    for folder in (old, str(models / "shapes" / new)):
        with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
            manifests.append(json.load(f))
    before, after = manifests
    assert after["input"]["contrast"] == "auto" and after["training"]["config"]["background_aware"] is True
    record = after["training"]["refit"]
    assert record["from"] == f"shapes@{os.path.basename(old)}"
    # A prototype moved when its patch is another image's or another cell of the same image.
    places = [[(p["source"]["item"], p["source"]["featureCell"]) for p in m["prototypes"]] for m in manifests]
    assert record["prototypesMoved"] == sum(a != b for a, b in zip(*places))
    # The threshold is placed on the last five test images, as asked.
    tests = before["training"]["testSize"]
    assert after["unfamiliarity"]["calibration"]["size"] == 5
    assert after["unfamiliarity"]["calibration"]["split"] == f"test[{tests - 5}:{tests}]"
    assert len(after["examples"]) == len(before["examples"]) + 4
