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
