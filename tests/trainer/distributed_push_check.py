"""The push of test_distributed.py on every rank of a torchrun group, and the one-process push it is compared with.

Run by torchrun:  distributed_push_check.py WEIGHTS OUT
Each rank pushes the model of WEIGHTS over the push set below, plainly and background-aware, and saves its
prototypes and records to OUT/rank-<r>.pt; rank 0 also writes the plain push's pictures to OUT/pictures.

The push set holds every training image twice (the copy after the original), with an odd number of batches per
copy, so an image and its copy lie in batches of different ranks: every prototype's nearest patch is a tie between
two ranks, which the merge must settle as one process does, for the lower index."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "trainer"))

from protopnet_trainer.config import TrainConfig  # noqa: E402
from protopnet_trainer.data import ImageSet, Split  # noqa: E402
from protopnet_trainer.datasets import load_data_source  # noqa: E402
from protopnet_trainer.model import build_model  # noqa: E402
from protopnet_trainer.push import push_prototypes  # noqa: E402

BATCH_SIZE = 8
CONFIG = TrainConfig(dataset="synthetic", image_size=16, synthetic_classes=3, synthetic_channels=3,
                     synthetic_train_per_class=8, synthetic_test_per_class=2, backbone="small-cnn",
                     small_cnn_widths=[8, 16], small_cnn_convs_per_stage=1, small_cnn_pools=2, prototype_dim=8,
                     prototypes_per_class=3, augment=False, device="cpu", seed=5)


def doubled_push_set() -> ImageSet:
    """The training split followed by a copy of itself: 24 + 24 images, 3 batches of 8 per copy."""
    train = load_data_source(CONFIG).train
    n = len(train)
    assert n % BATCH_SIZE == 0 and (n // BATCH_SIZE) % 2 == 1
    doubled = Split(train.name, train.classes, train.channels, train.ids + [f"{i}-copy" for i in train.ids],
                    train.labels + train.labels, lambda index: train.load(index % n),
                    cached=torch.cat([train.cached, train.cached]) if train.cached is not None else None)
    return ImageSet(doubled, CONFIG.image_size)


def model_with_random_weights():
    return build_model(CONFIG, 3, 3, [0.2] * 3, [0.3] * 3)


def model_with(weights: str):
    model = model_with_random_weights()
    model.load_state_dict(torch.load(weights))
    return model.eval()


def push(weights: str, picture_dir, group=None, background_aware: bool = False):
    model = model_with(weights)
    records = push_prototypes(model, doubled_push_set(), BATCH_SIZE, torch.device("cpu"), picture_dir,
                              progress=False, group=group, background_aware=background_aware)
    return model.prototypes.detach().clone(), records


def main(weights: str, out: str) -> None:
    from protopnet_trainer.distributed import process_group
    torch.set_num_threads(1)   # as the test's one-process push: the convolutions' sums depend on the thread count
    with process_group("cpu") as group:
        assert group is not None and group.world_size == 2, "run me with torchrun --nproc_per_node 2"
        prototypes, records = push(weights, os.path.join(out, "pictures"), group)
        aware_prototypes, aware_records = push(weights, None, group, background_aware=True)
        torch.save({"prototypes": prototypes, "records": records,
                    "aware": {"prototypes": aware_prototypes, "records": aware_records}},
                   os.path.join(out, f"rank-{group.rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
