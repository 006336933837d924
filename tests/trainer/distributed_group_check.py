"""The group of distributed.py on one rank of a two-process gloo group, for test_distributed_ranks.py to compare with
what one process computes.

Run as each of 2 processes with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), started
directly rather than by torchrun (a second or two instead of torchrun's agent and rendezvous):
    distributed_group_check.py WEIGHTS OUT
Each rank saves what its collectives and the sharded passes gave it to OUT/rank-<r>.pt."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "trainer"))

from distributed_push_check import CONFIG, model_with  # noqa: E402
from protopnet_trainer.data import ImageSet  # noqa: E402
from protopnet_trainer.datasets import load_data_source  # noqa: E402

# 24 training images in batches of 5: five batches, the last one short; rank 0 computes three, rank 1 two.
PASS_BATCH_SIZE = 5


def rank_values(rank: int) -> torch.Tensor:
    """Signed values that differ by rank: only a true sum over both ranks gives the sum of both ranks' values."""
    return torch.tensor([rank + 1.0, -10.0 * (rank + 1), 0.25 * rank])


def rank_module(rank: int) -> torch.nn.Module:
    """A module whose parameters and batch-norm statistics differ by rank."""
    torch.manual_seed(100 + rank)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    module[1].running_mean.fill_(rank + 1.0)
    return module


def pass_set() -> ImageSet:
    return ImageSet(load_data_source(CONFIG).train, CONFIG.image_size)


def main(weights: str, out: str) -> None:
    from protopnet_trainer.distributed import process_group, sharded_predictions, sharded_scores
    torch.set_num_threads(1)   # as the test's one-process pass: the convolutions' sums depend on the thread count
    with process_group("cpu") as group:
        assert group is not None and group.world_size == 2, "run me as 2 processes with torchrun's environment"
        rank = group.rank
        module = rank_module(rank)
        group.broadcast_module(module)
        model = model_with(weights)
        images = pass_set()
        result = {
            "sum": group.sum(rank_values(rank)),
            "sum_numbers": group.sum_numbers(rank_values(rank).tolist()),
            "gather": group.gather(rank_values(rank)),
            "gather_objects": group.gather_objects({"rank": rank}),
            "module": {k: v.clone() for k, v in module.state_dict().items()},
            "scores": sharded_scores(model, group.shard(images, PASS_BATCH_SIZE), group, model.num_prototypes),
            "predictions": sharded_predictions(model, group.shard(images, PASS_BATCH_SIZE), group),
        }
        torch.save(result, os.path.join(out, f"rank-{rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
