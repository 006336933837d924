"""The ResNet-18 trunk imported from the NuGet package's ResNet18.onnx reproduces that file's output."""
import numpy as np
import onnx
import torch

from protopnet_trainer.model import build_model
from protopnet_trainer.onnx_graph import run_graph
from protopnet_trainer.resnet18_onnx import load_into_trunk, mean_image_bgr, resnet18_onnx_path
from protopnet_trainer.trunks import build_trunk


def _last_feature_map_name(path):
    graph = onnx.load(path).graph
    pool = [n for n in graph.node if n.op_type == "AveragePool"][-1]
    return pool.input[0], pool.output[0]


def test_imported_trunk_reproduces_the_onnx_file():
    path = resnet18_onnx_path()
    rng = np.random.RandomState(0)
    bgr = rng.uniform(0, 255, size=(1, 3, 224, 224)).astype(np.float32)
    feed = (bgr - mean_image_bgr()[None]).astype(np.float32)   # what the ONNX file expects
    reference = run_graph(path, feed)
    feature_name, pooled_name = _last_feature_map_name(path)

    trunk = build_trunk("resnet18", 3, weights="imagenet-onnx").eval()
    load_into_trunk(trunk, path)
    with torch.no_grad():
        features = trunk(torch.from_numpy(feed)).numpy()
    expected = reference[feature_name]
    assert features.shape == expected.shape == (1, 512, 7, 7)
    scale = np.abs(expected).max()
    assert scale > 0.1
    np.testing.assert_allclose(features, expected, atol=1e-4 * scale, rtol=1e-4)
    np.testing.assert_allclose(features.mean(axis=(2, 3)), reference[pooled_name][:, :, 0, 0],
                               atol=1e-4 * scale, rtol=1e-4)
    # A random trunk does not match (the comparison has teeth).
    random_trunk = build_trunk("resnet18", 3, weights="imagenet-onnx").eval()
    with torch.no_grad():
        assert not np.allclose(random_trunk(torch.from_numpy(feed)).numpy(), expected, atol=1e-2 * scale)


def test_model_normalisation_feeds_the_trunk_what_the_onnx_file_expects(tiny):
    """RGB [0, 1] through the model's in-graph normalisation and RGB-ordered first conv equals the ONNX file
    on 0-255 BGR minus the mean image's per-channel means."""
    cfg = tiny(backbone="resnet18", trunk_weights="imagenet-onnx", image_size=64)
    model = build_model(cfg, 3, 3, [0.0] * 3, [1.0] * 3).eval()
    rng = np.random.RandomState(1)
    rgb = rng.uniform(0, 1, size=(1, 3, 64, 64)).astype(np.float32)
    channel_means = mean_image_bgr().reshape(3, -1).mean(axis=1).reshape(1, 3, 1, 1)
    feed = (rgb[:, ::-1] * 255.0 - channel_means).astype(np.float32)
    path = resnet18_onnx_path()
    feature_name, _ = _last_feature_map_name(path)
    expected = run_graph(path, np.ascontiguousarray(feed), until=feature_name)[feature_name]
    with torch.no_grad():
        x = torch.from_numpy(rgb)
        got = model.trunk((x - model.mean) / model.std).numpy()
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, atol=2e-4 * scale, rtol=1e-3)
    assert np.allclose(model.std.view(-1).numpy(), 1 / 255.0)
