"""The localisation measure on data with true part boxes."""
import pytest
import torch

from protopnet_trainer.localisation import box_iou, centre_inside, localisation


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
    # With every predicted box equal to the true box, the measure is perfect.
    import protopnet_trainer.localisation as module
    boxes = iter(test_set.split.true_boxes)
    monkeypatch.setattr(module, "high_activation_box", lambda upsampled: next(boxes))
    perfect = localisation(model, test_set, torch.device("cpu"), batch_size=5)
    assert perfect["centre_hit_rate"] == 1.0 and perfect["mean_iou"] == 1.0
