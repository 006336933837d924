"""Network pieces: trunks, add-on layers, prototype layer, last layer."""
import argparse
import math

import pytest
import torch

from protopnet_trainer.config import preset_config
from protopnet_trainer.errors import TrainerError
from protopnet_trainer.model import build_add_on, build_model, last_layer_init
from protopnet_trainer.trunks import build_trunk


def test_last_layer_starts_at_one_for_own_class_and_minus_half_elsewhere(tiny):
    model = build_model(tiny(), 3, 3, [0.5] * 3, [0.25] * 3)
    assert model.last_layer.bias is None
    expected = torch.tensor([[1, 1, -.5, -.5, -.5, -.5],
                             [-.5, -.5, 1, 1, -.5, -.5],
                             [-.5, -.5, -.5, -.5, 1, 1]])
    assert torch.equal(model.last_layer.weight.data, expected)
    assert model.prototype_classes.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(last_layer_init(torch.tensor([1, 0]), 2), torch.tensor([[-.5, 1.], [1., -.5]]))


def test_logits_are_last_layer_times_similarities_and_distances_match_brute_force(tiny):
    torch.manual_seed(0)
    model = build_model(tiny(), 3, 3, [0.5] * 3, [0.25] * 3).eval()
    images = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        out = model(images)
        z = model.features(images)
    assert out.similarity_maps.shape == (5, 6, 4, 4)
    brute = ((z.unsqueeze(1) - model.prototypes.view(1, 6, -1, 1, 1)) ** 2).sum(2)     # [N, M, h, w]
    assert torch.allclose(out.min_distances, brute.flatten(2).min(2)[0], atol=1e-5)
    assert torch.allclose(out.logits, out.similarities @ model.last_layer.weight.t(), atol=1e-6)
    assert torch.allclose(out.similarities, out.similarity_maps.flatten(2).max(2)[0])


def test_log_and_linear_similarity(tiny):
    d = torch.tensor([0.0, 1.0, 3.0])
    log_model = build_model(tiny(similarity="log"), 3, 3, [0.5] * 3, [0.25] * 3)
    expected = [math.log(1 / 1e-4), math.log(2 / (1 + 1e-4)), math.log(4 / (3 + 1e-4))]
    assert log_model.similarity(d).tolist() == pytest.approx(expected, rel=1e-5)
    linear_model = build_model(tiny(similarity="linear"), 3, 3, [0.5] * 3, [0.25] * 3)
    assert linear_model.similarity(d).tolist() == [-0.0, -1.0, -3.0]


def test_small_cnn_gives_seven_by_seven_on_28_px_and_its_size_is_configurable():
    cfg = preset_config("fashion-mnist")
    trunk = build_trunk("small-cnn", 1, cfg.small_cnn_widths, cfg.small_cnn_convs_per_stage, cfg.small_cnn_pools)
    assert trunk(torch.rand(2, 1, 28, 28)).shape == (2, 128, 7, 7)
    narrow = build_trunk("small-cnn", 1, [8, 12, 24, 40], 3, 2)
    assert narrow(torch.rand(1, 1, 28, 28)).shape == (1, 40, 7, 7)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in narrow.modules()) == 12


@pytest.mark.parametrize("name,channels", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048),
                                           ("vgg16", 512), ("vgg19", 512), ("densenet121", 1024)])
def test_torchvision_trunks_without_classifier(name, channels):
    trunk = build_trunk(name, 3).eval()
    assert trunk.out_channels == channels
    with torch.no_grad():
        assert trunk(torch.rand(1, 3, 64, 64)).shape == (1, channels, 2, 2)   # 224 px would give 7x7


def test_grey_input_on_an_rgb_trunk(tiny):
    model = build_model(tiny(backbone="resnet18", image_size=32), 1, 3, [0.5], [0.25]).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 32, 32)).logits.shape == (2, 3)


def test_add_on_layers():
    regular = build_add_on("regular", 512, 128)
    assert [type(m).__name__ for m in regular] == ["Conv2d", "ReLU", "Conv2d", "Sigmoid"]
    bottleneck = build_add_on("bottleneck", 512, 128)
    convs = [m for m in bottleneck if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(512, 256), (256, 256), (256, 128), (128, 128)]
    assert isinstance(bottleneck[-1], torch.nn.Sigmoid)
    out = bottleneck(torch.randn(1, 512, 3, 3))
    assert out.shape == (1, 128, 3, 3) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_unknown_trunk_is_refused():
    with pytest.raises(TrainerError, match="unknown trunk 'alexnet'"):
        build_trunk("alexnet", 3)


def test_trunk_weights_from_a_file(tmp_path):
    from protopnet_trainer.trunks import load_trunk_weights
    from torchvision.models import resnet18
    torch.manual_seed(5)
    classifier = resnet18()                                   # a torchvision checkpoint: trunk + fc
    torch.save(classifier.state_dict(), tmp_path / "resnet18.pth")
    trunk = build_trunk("resnet18", 3)
    source, mean, std = load_trunk_weights(trunk, "resnet18", str(tmp_path / "resnet18.pth"), 3)
    assert source == str(tmp_path / "resnet18.pth")
    assert (mean, std) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])   # what torchvision's trunks learned with
    assert torch.equal(trunk.layer4[1].conv2.weight, classifier.layer4[1].conv2.weight)
    assert torch.equal(trunk.bn1.running_var, classifier.bn1.running_var)
    # A grey model's normalisation is the three channels' average (a grey pixel has one value in R, G and B).
    grey = build_trunk("resnet18", 1)
    _, mean, std = load_trunk_weights(grey, "resnet18", str(tmp_path / "resnet18.pth"), 1)
    assert mean == pytest.approx([(0.485 + 0.456 + 0.406) / 3]) and std == pytest.approx([(0.229 + 0.224 + 0.225) / 3])
    with pytest.raises(TrainerError, match="do not fit resnet34"):
        load_trunk_weights(build_trunk("resnet34", 3), "resnet34", str(tmp_path / "resnet18.pth"), 3)
    with pytest.raises(TrainerError, match="does not exist"):
        load_trunk_weights(trunk, "resnet18", str(tmp_path / "absent.pth"), 3)
    # A file that pickles more than tensors (training state, any object) is refused on every torch, not run.
    torch.save({"state_dict": classifier.state_dict(), "hyper_parameters": argparse.Namespace(lr=0.1)}, tmp_path / "lightning.ckpt")
    with pytest.raises(TrainerError, match="must hold tensors only"):
        load_trunk_weights(trunk, "resnet18", str(tmp_path / "lightning.ckpt"), 3)
    # One holding its state dict under "state_dict" (and only tensors and plain values) loads.
    torch.save({"state_dict": classifier.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    assert load_trunk_weights(build_trunk("resnet18", 3), "resnet18", str(tmp_path / "wrapped.pth"), 3)[0] == str(tmp_path / "wrapped.pth")


def test_torchvision_weights_missing_from_the_cache_name_what_train_and_a_job_can_do(tmp_path, monkeypatch):
    from protopnet_trainer.trunks import load_trunk_weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))   # an empty cache: torch.hub looks in $TORCH_HOME/hub
    with pytest.raises(TrainerError) as refused:
        load_trunk_weights(build_trunk("resnet34", 3), "resnet34", "torchvision", 3)
    message = str(refused.value)
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "train --trunk-weights a weights file" in message
    assert "a training job's trunkWeights takes 'torchvision' or, for resnet18, 'imagenet-onnx'" in message


def test_distances_are_never_negative_where_a_prototype_is_a_latent_patch():
    """A pushed prototype is one of the latent patches, so its distance there is 0 but for rounding: in float32
    ||z||^2 - 2 z.p + ||p||^2 cancels to a few 1e-5 either side of 0, and a negative squared distance (a cluster
    cost below 0, a linear similarity above its maximum) must come out as 0."""
    from protopnet_trainer.model import squared_distances
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        z = torch.rand(2, 128, 7, 7, generator=generator)
        prototypes = torch.stack([z[0, :, 3, 4], z[1, :, 0, 6]]).view(2, 128, 1, 1)
        distances = squared_distances(z, prototypes)
        assert float(distances.min()) >= 0.0
        assert float(distances[0, 0, 3, 4]) <= 1e-4 and float(distances[1, 1, 0, 6]) <= 1e-4


def test_log_similarity_uses_the_configured_epsilon(tiny):
    """The manifest records the model's epsilon and the exported graph is traced from the network: the network must
    compute log((d + 1) / (d + epsilon)) with the configured epsilon, not the default 1e-4."""
    model = build_model(tiny(epsilon=1e-2), 3, 3, [0.5] * 3, [0.25] * 3)
    d = torch.tensor([0.0, 1.0, 3.0])
    expected = [math.log(1 / 1e-2), math.log(2 / 1.01), math.log(4 / 3.01)]
    assert model.similarity(d).tolist() == pytest.approx(expected, rel=1e-5)


def test_keeping_prototypes_keeps_each_one_s_own_last_layer_column(tiny):
    """Pruning keeps some prototypes: each keeps its vector, its class and its column of last-layer weights (the
    weights of its own evidence), not the column of the prototype that happened to sit at its new index."""
    model = build_model(tiny(), 3, 3, [0.5] * 3, [0.25] * 3)          # prototypes of classes 0, 0, 1, 1, 2, 2
    weight = torch.arange(18.0).view(3, 6)
    with torch.no_grad():
        model.last_layer.weight.copy_(weight)
    prototypes = model.prototypes.detach().clone()
    model.keep_prototypes(torch.tensor([1, 2, 5]))
    assert model.prototype_classes.tolist() == [0, 1, 2]
    assert torch.equal(model.prototypes.detach(), prototypes[[1, 2, 5]])
    assert torch.equal(model.last_layer.weight.detach(), weight[:, [1, 2, 5]])


def test_the_cross_entropy_trains_the_prototypes_and_the_features_through_the_similarities(tiny):
    """The joint stage trains the network end to end: the classification loss reaches the prototypes, the add-on
    layers and the trunk through the max-pooled similarities, not the last layer alone."""
    torch.manual_seed(0)
    model = build_model(tiny(), 3, 3, [0.5] * 3, [0.25] * 3)
    out = model(torch.rand(4, 3, 16, 16))
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0])).backward()
    for name, parameter in (("prototypes", model.prototypes), ("add-on", model.add_on[0].weight),
                            ("trunk", next(model.trunk.parameters()))):
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name


def test_new_prototypes_start_uniform_in_the_unit_cube_of_the_latent_space(tiny):
    """The reference draws the prototypes uniformly from [0, 1]^D, the range of the add-on layers' sigmoid."""
    torch.manual_seed(0)
    prototypes = build_model(tiny(prototypes_per_class=100), 3, 3, [0.5] * 3, [0.25] * 3).prototypes.detach()
    assert prototypes.shape == (300, 8, 1, 1)
    assert float(prototypes.min()) >= 0.0 and float(prototypes.max()) <= 1.0
    assert float(prototypes.mean()) == pytest.approx(0.5, abs=0.05) and float(prototypes.min()) < 0.05
