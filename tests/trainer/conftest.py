"""Shared fixtures: the package on sys.path, few threads (the machine is shared), tiny configurations."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "trainer"))
torch.set_num_threads(1)  # the machine is shared: one thread is fastest under contention

from protopnet_trainer.config import TrainConfig  # noqa: E402


def tiny_config(**changes) -> TrainConfig:
    """A model that trains in about a second: 3 synthetic RGB classes, 16 px, 4x4 feature map."""
    values = dict(dataset="synthetic", image_size=16, synthetic_classes=3, synthetic_channels=3,
                  synthetic_train_per_class=12, synthetic_test_per_class=4, backbone="small-cnn",
                  small_cnn_widths=[8, 16], small_cnn_convs_per_stage=1, small_cnn_pools=2, prototype_dim=8,
                  prototypes_per_class=2, augment=False, epochs=3, warm_epochs=1, push_start=1, push_every=1,
                  last_layer_iterations=2, batch_size=8, test_batch_size=16, push_batch_size=16,
                  joint_lr_trunk=1e-3, device="cpu", seed=3)
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture
def tiny():
    return tiny_config


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory):
    """One tiny model trained through the whole schedule (with baseline) and published once per session."""
    from protopnet_trainer.export import example_images, write_bundle
    from protopnet_trainer.manifest import training_block
    from protopnet_trainer.report import report_writer
    from protopnet_trainer.train import Trainer

    root = tmp_path_factory.mktemp("bundle")
    cfg = tiny_config(with_baseline=True)
    trainer = Trainer(cfg, str(root / "run"), progress=False, log=lambda line: None)
    result = trainer.run()
    bundle = write_bundle(str(root / "models"), "tiny", result.model, classes=trainer.source.classes,
                          channels=3, image_size=cfg.image_size, interpolation=cfg.interpolation,
                          records=result.records, jpeg_draft=cfg.decodes_jpeg_draft,
                          training=training_block(cfg, result, len(trainer.source.train), len(trainer.source.test),
                                                  None),
                          report=report_writer(result, trainer.source.classes),
                          examples=example_images(trainer.loaders.test_set, 2))
    return {"path": bundle, "trainer": trainer, "result": result, "cfg": cfg, "root": root}
