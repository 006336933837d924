"""Unfamiliar images (issue 16): the held-out split, the calibration a real training run writes into model.json, and
the measure's behaviour on images the model has never seen the like of (uniform noise)."""
import json
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from protopnet_trainer.config import preset_config
from protopnet_trainer.datasets import load_data_source
from protopnet_trainer.errors import TrainerError
from protopnet_trainer.unfamiliarity import (MEASURE, flagged_share, model_scores, roc_auc, threshold_for_share,
                                             unfamiliarity_scores)


def test_roc_auc_of_known_orderings():
    assert roc_auc([1, 2, 3], [4, 5]) == 1.0
    assert roc_auc([4, 5], [1, 2, 3]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5                   # ties count half
    assert roc_auc([1, 3], [2, 4]) == pytest.approx(0.75)   # 3 of the 4 pairs ordered right


def test_the_threshold_flags_the_asked_share():
    scores = np.random.RandomState(0).randn(1000)
    threshold = threshold_for_share(scores, 0.01)
    assert flagged_share(scores, threshold) == pytest.approx(0.01)
    assert flagged_share(scores, threshold_for_share(scores, 0.2)) == pytest.approx(0.2)


def test_the_score_is_minus_the_best_similarity_of_any_prototype():
    similarities = torch.tensor([[1.0, 4.0, 2.0], [0.5, 0.2, 0.1]])
    assert unfamiliarity_scores(similarities).tolist() == [-4.0, -0.5]


def test_the_holdout_is_the_end_of_the_training_split_and_training_keeps_the_rest(tiny):
    plain = load_data_source(tiny())
    held = load_data_source(tiny(calibration_holdout=6))
    assert held.train.ids == plain.train.ids[:-6] and held.holdout.ids == plain.train.ids[-6:]
    assert held.holdout.labels == plain.train.labels[-6:]
    assert np.array_equal(np.asarray(held.holdout.load(0)), np.asarray(plain.train.load(len(plain.train) - 6)))
    assert plain.holdout is None
    with pytest.raises(TrainerError, match="calibration-holdout"):
        load_data_source(tiny(calibration_holdout=len(plain.train)))


def test_the_smoke_preset_holds_out_images_without_changing_what_it_trains_on():
    smoke = preset_config("smoke")
    source = load_data_source(smoke)
    earlier = load_data_source(smoke.replace(synthetic_train_per_class=200, calibration_holdout=0))
    assert len(source.holdout) == smoke.calibration_holdout
    assert source.train.ids == earlier.train.ids
    assert torch.equal(source.train.cached, earlier.train.cached)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A tiny model trained and published by the real pipeline, with 600 training images held out to calibrate a
    threshold that flags a tenth of them (a tenth, so that a few hundred test images measure the share well)."""
    from conftest import tiny_config
    from protopnet_trainer.pipeline import TrainJob, train_and_publish
    root = tmp_path_factory.mktemp("calibrated")
    cfg = tiny_config(synthetic_train_per_class=220, synthetic_test_per_class=150, calibration_holdout=600,
                      unfamiliar_share=0.1, epochs=4, push_every=0, push_start=0)
    folder = train_and_publish(TrainJob(cfg, models=str(root / "models"), name="tiny", run_dir=str(root / "run"),
                                        report=False, examples=0), log=lambda line: None)
    with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    from protopnet_trainer.checkpoint import load_checkpoint, model_from_checkpoint
    model = model_from_checkpoint(load_checkpoint(str(root / "run" / "checkpoints" / "final.pt")))
    return manifest, model, cfg


def test_training_writes_the_calibration_into_the_manifest(calibrated):
    manifest, _, cfg = calibrated
    block = manifest["unfamiliarity"]
    assert block["measure"] == MEASURE and block["targetShare"] == 0.1
    assert block["calibration"] == {"split": "train-holdout", "size": 600, "flaggedShare": 0.1}
    assert manifest["training"]["trainSize"] == 3 * 220 - 600
    assert manifest["training"]["config"]["calibration_holdout"] == 600
    # A colour data set: product shots (grey garments painted dark on light) would say nothing about it.
    assert "productShotAccuracy" not in manifest["training"]["metrics"]


def test_the_threshold_flags_about_the_intended_share_of_unseen_images(calibrated):
    manifest, model, cfg = calibrated
    source = load_data_source(cfg)
    from protopnet_trainer.data import ImageSet
    test_images = DataLoader(ImageSet(source.test, cfg.image_size), batch_size=100)
    scores = model_scores(model, test_images, torch.device("cpu"))
    share = flagged_share(scores, manifest["unfamiliarity"]["threshold"])
    assert len(scores) == 450 and 0.04 <= share <= 0.17, share


def test_uniform_noise_is_flagged(calibrated):
    manifest, model, cfg = calibrated
    generator = torch.Generator().manual_seed(7)
    noise = torch.rand(200, 3, cfg.image_size, cfg.image_size, generator=generator)
    loader = DataLoader(TensorDataset(noise, torch.zeros(200), torch.zeros(200)), batch_size=100)
    scores = model_scores(model, loader, torch.device("cpu"))
    assert flagged_share(scores, manifest["unfamiliarity"]["threshold"]) >= 0.9
