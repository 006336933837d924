"""The localisation measure on data with true part boxes."""
import pytest
import torch
from PIL import Image

from protopnet_trainer.boxes import box_iou, centre_inside
from protopnet_trainer.localisation import localisation


def test_box_iou_and_centre():
    assert box_iou((0, 0, 4, 4), (0, 0, 4, 4)) == 1.0
    assert box_iou((0, 0, 4, 4), (2, 0, 4, 4)) == pytest.approx(8 / 24)
    assert box_iou((0, 0, 2, 2), (5, 5, 2, 2)) == 0.0
    assert centre_inside((0, 0, 10, 10), (4, 4, 2, 2)) and not centre_inside((0, 0, 3, 3), (4, 4, 2, 2))


def test_localisation_uses_the_top_contributing_prototype(trained_bundle, monkeypatch):
    trainer = trained_bundle["trainer"]
    model = trained_bundle["result"].model
    test_set = trainer.loaders.test_set
    scores = localisation(model, test_set, torch.device("cpu"))
    assert scores["images"] == 12
    assert 0 <= scores["centre_hit_rate"] <= 1 and 0 <= scores["mean_iou"] <= 1

    # The map each image's box is drawn from is that of the prototype adding most to the predicted class's logit.
    model.eval()
    with torch.no_grad():
        out = model(torch.stack([test_set[n][0] for n in range(len(test_set))]))
    weights = model.last_layer.weight
    expected = []
    for n in range(len(test_set)):
        predicted = int(out.logits[n].argmax())
        contributions = [float(weights[predicted, j] * out.similarities[n, j]) for j in range(out.similarities.shape[1])]
        expected.append(out.similarity_maps[n, contributions.index(max(contributions))])
    import protopnet_trainer.localisation as module
    drawn_from = []
    real_upsample = module.upsample_activation

    def recording_upsample(activation, height, width):
        drawn_from.append(activation.clone())
        return real_upsample(activation, height, width)

    monkeypatch.setattr(module, "upsample_activation", recording_upsample)
    # With every predicted box equal to the true box, the measure is perfect.
    boxes = iter(test_set.split.true_boxes)
    monkeypatch.setattr(module, "high_activation_box", lambda upsampled: next(boxes))
    perfect = localisation(model, test_set, torch.device("cpu"), batch_size=5)
    assert perfect["centre_hit_rate"] == 1.0 and perfect["mean_iou"] == 1.0
    assert len(drawn_from) == len(expected)
    for n, (drawn, wanted) in enumerate(zip(drawn_from, expected)):
        assert torch.allclose(drawn, wanted, atol=1e-5), f"image {n}: the box is drawn from another prototype's map"


def test_localisation_weighs_similarity_by_the_predicted_class_weight():
    from types import SimpleNamespace
    from protopnet_trainer.data import ImageSet, Split
    from protopnet_trainer.localisation import localisation

    class Stub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.last_layer = torch.nn.Linear(2, 2, bias=False)
            with torch.no_grad():
                self.last_layer.weight.copy_(torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))

        def forward(self, images):
            n = len(images)
            maps = torch.zeros(n, 2, 4, 4)
            maps[:, 0, 0, 0] = 1.0          # prototype 0: most similar, but counts against class 0
            maps[:, 1, 3, 3] = 1.0          # prototype 1: less similar, for class 0: where the pattern is
            similarities = torch.tensor([[0.9, 0.5]]).repeat(n, 1)
            return SimpleNamespace(logits=torch.tensor([[1.0, 0.0]]).repeat(n, 1), similarities=similarities,
                                   similarity_maps=maps)
    split = Split("test", ["a", "b"], 1, ["0"], [0], lambda i: Image.new("L", (16, 16)), true_boxes=[(12, 12, 4, 4)])
    assert localisation(Stub(), ImageSet(split, 16), torch.device("cpu"))["centre_hit_rate"] == 1.0


def test_a_hit_needs_the_true_part_s_centre_inside_the_explanation_s_box():
    """centre_hit_rate counts an image when the centre of its true box lies in the predicted box, not the other way
    round: a small box in the corner of a true box that covers the whole image explains nothing about its centre."""
    from types import SimpleNamespace
    from protopnet_trainer.data import ImageSet, Split

    class Stub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.last_layer = torch.nn.Linear(1, 1, bias=False)

        def forward(self, images):
            maps = torch.zeros(len(images), 1, 4, 4)
            maps[:, 0, 0, 0] = 1.0          # the top-left corner only
            return SimpleNamespace(logits=torch.ones(len(images), 1), similarities=torch.ones(len(images), 1),
                                   similarity_maps=maps)
    split = Split("test", ["a"], 1, ["0"], [0], lambda i: Image.new("L", (16, 16)), true_boxes=[(0, 0, 16, 16)])
    scores = localisation(Stub(), ImageSet(split, 16), torch.device("cpu"))
    assert scores["centre_hit_rate"] == 0.0 and 0 < scores["mean_iou"] < 0.25
