"""The pieces of distributed.py that a whole torchrun run cannot tell apart from their mistakes: the collectives and
sharded passes on two real gloo ranks (started directly, without torchrun), each compared with one process; each
rank's training shard; which process is the main one; what counts as a torchrun launch; and a restarted group's resume
in the pipeline (on a one-process group, in this process)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch
from torch.utils.data import DataLoader

import distributed_group_check
import distributed_push_check
from protopnet_trainer import distributed
from protopnet_trainer.distributed import Group, process_group, set_epoch
from protopnet_trainer.errors import TrainerError
from protopnet_trainer.pipeline import TrainJob, train_and_publish

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINER_PATH = os.path.join(HERE, "..", "..", "src", "trainer")
CPU = torch.device("cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_torchrun(environment: Dict[str, str]) -> Dict[str, str]:
    """The environment less everything torchrun sets (the test may itself run under a launcher)."""
    return {k: v for k, v in environment.items()
            if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
            and not k.startswith("TORCHELASTIC_")}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> List[dict]:
    """What each of two gloo ranks computed (see distributed_group_check.py), in rank order."""
    root = tmp_path_factory.mktemp("ranks")
    torch.manual_seed(23)
    weights = str(root / "weights.pt")
    torch.save(distributed_push_check.model_with_random_weights().state_dict(), weights)
    port = str(_free_port())
    base = _without_torchrun(dict(os.environ))
    base["PYTHONPATH"] = os.pathsep.join([TRAINER_PATH, os.environ.get("PYTHONPATH", "")])
    processes = [subprocess.Popen([sys.executable, os.path.join(HERE, "distributed_group_check.py"), weights, str(root)],
                                  env=dict(base, WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank),
                                           MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for rank in (0, 1)]
    try:
        outputs = [p.communicate(timeout=120)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, output in zip(processes, outputs):
        assert p.returncode == 0, output
    return [dict(torch.load(str(root / f"rank-{rank}.pt")), weights=weights) for rank in (0, 1)]


def test_sum_and_gather_give_every_rank_both_ranks_values(two_ranks: List[dict]) -> None:
    # Signed values: a maximum, or a rank's own values left unreduced, would differ from the sum.
    mine = [distributed_group_check.rank_values(rank) for rank in (0, 1)]
    for result in two_ranks:
        assert torch.equal(result["sum"], mine[0] + mine[1])
        assert result["sum_numbers"] == (mine[0] + mine[1]).double().tolist()
        assert torch.equal(result["gather"], torch.stack(mine))
        assert result["gather_objects"] == [{"rank": 0}, {"rank": 1}]


def test_broadcast_module_gives_every_rank_rank_0s_parameters_and_batch_norm_statistics(two_ranks: List[dict]) -> None:
    expected = distributed_group_check.rank_module(0).state_dict()
    theirs = distributed_group_check.rank_module(1).state_dict()
    assert not torch.equal(theirs["1.running_mean"], expected["1.running_mean"])   # they did differ before
    for result in two_ranks:
        assert result["module"].keys() == expected.keys()
        assert all(torch.equal(result["module"][k], expected[k]) for k in expected)


def test_sharded_scores_and_predictions_are_the_one_process_pass_on_every_rank(two_ranks: List[dict]) -> None:
    model = distributed_push_check.model_with(two_ranks[0]["weights"])
    images = distributed_group_check.pass_set()
    scores, predictions, labels = [], [], []
    # Bit for bit needs the ranks' thread count (1): CPU convolutions sum in an order that depends on it, and other
    # tests of the session may have changed it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():   # the same batches in the same order as one process makes them
            for batch, batch_labels, _ in DataLoader(images, batch_size=distributed_group_check.PASS_BATCH_SIZE):
                out = model(batch)
                scores.append(out.similarities)
                predictions += out.logits.argmax(1).tolist()
                labels += batch_labels.tolist()
    finally:
        torch.set_num_threads(threads)
    expected_scores = torch.cat(scores)
    assert len(set(labels)) == 3 and len(expected_scores) == len(images)
    for result in two_ranks:
        # Rows of both ranks' batches, each at its image: exactly what one process computes.
        assert torch.equal(result["scores"], expected_scores)
        assert result["predictions"] == {"labels": labels, "predictions": predictions}


def _shard_order(rank: int, seed: int, epoch: int, items: int = 20, batch_size: int = 4) -> List[int]:
    """The items rank `rank` of 2 trains on in `epoch`, in order."""
    loader = Group(rank, 2, rank, CPU).train_loader(list(range(items)), batch_size, seed, 0)
    set_epoch(loader, epoch)
    return [int(i) for batch in loader for i in batch]


def test_each_rank_trains_on_its_own_half_reshuffled_each_epoch_by_the_recipes_seed() -> None:
    for epoch in (0, 1):
        halves = [_shard_order(rank, seed=7, epoch=epoch) for rank in (0, 1)]
        # Between them the two ranks see every item once: neither trains on the other's half.
        assert sorted(halves[0] + halves[1]) == list(range(20))
        assert len(halves[0]) == len(halves[1]) == 10
    # Shuffled, and anew each epoch (set_epoch); the recipe's seed decides the order, the same seed repeats it.
    first, second = _shard_order(0, seed=7, epoch=0), _shard_order(0, seed=7, epoch=1)
    assert first != sorted(first) and first != second
    assert _shard_order(0, seed=7, epoch=0) == first
    assert _shard_order(0, seed=8, epoch=0) != first


def test_the_main_process_is_rank_0_of_the_whole_group_not_each_nodes_first() -> None:
    # On two nodes of two GPUs each, rank 2 is LOCAL_RANK 0 of the second node: it must not write or publish too.
    assert Group(rank=0, world_size=4, local_rank=0, device=CPU).is_main
    assert not Group(rank=2, world_size=4, local_rank=0, device=CPU).is_main
    assert not Group(rank=1, world_size=4, local_rank=1, device=CPU).is_main


@pytest.mark.parametrize("present", [("LOCAL_RANK",), ("WORLD_SIZE",), ("RANK", "LOCAL_RANK")])
def test_a_process_without_all_of_torchruns_environment_runs_alone(monkeypatch, present) -> None:
    # Other launchers set LOCAL_RANK (or WORLD_SIZE=1) too; without all three there is no group to join.
    for name in distributed.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name in present:
        monkeypatch.setenv(name, "0" if name != "WORLD_SIZE" else "1")
    with process_group("cpu") as group:
        assert group is None
        assert not torch.distributed.is_initialized()


def test_a_local_rank_beyond_the_visible_gpus_is_refused_and_one_within_gets_its_gpu(monkeypatch) -> None:
    chosen: List[int] = []
    monkeypatch.setattr(distributed, "select_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    # LOCAL_RANK counts from 0: with 2 GPUs visible, 2 is a third process on the node.
    with pytest.raises(TrainerError, match="LOCAL_RANK 2 but only 2 GPUs are visible"):
        distributed._backend_and_device("cuda", 2)
    assert distributed._backend_and_device("cuda", 1) == ("nccl", torch.device("cuda", 1))
    assert chosen == [1]


def test_a_restarted_group_keeps_to_its_own_attempts_keys_in_the_agents_store(monkeypatch) -> None:
    import datetime as dt
    import torch.distributed as dist
    port = _free_port()
    agent = dist.TCPStore("127.0.0.1", port, 1, True, timeout=dt.timedelta(seconds=30))
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    killed = distributed._store_of_this_attempt(1, dt.timedelta(seconds=30))
    # A count the ranks of an attempt keep (as init_process_group counts those that joined) and an address they leave.
    assert killed.add("joined", 1) == 1
    killed.set("rank-0-address", "the killed group's")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    restarted = distributed._store_of_this_attempt(1, dt.timedelta(seconds=30))
    # The restarted group counts from zero and reads its own address, not those the killed group left.
    assert restarted.add("joined", 1) == 1
    restarted.set("rank-0-address", "the restarted group's")
    assert restarted.get("rank-0-address") == b"the restarted group's"
    assert killed.get("rank-0-address") == b"the killed group's"
    del agent


class Stop(Exception):
    """Stands for a killed run: raised from the end-of-epoch hook."""


def _one_process_group(monkeypatch, restarts: int) -> None:
    """torchrun's environment for the only process of a group, started `restarts` times before."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", str(restarts))
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)


def test_a_first_attempt_refuses_an_unfinished_run_and_a_restarted_one_resumes_it(tmp_path: Path, monkeypatch, tiny) -> None:
    cfg = tiny(epochs=2, push_start=2, with_baseline=False)
    job = TrainJob(cfg, str(tmp_path / "models"), "tiny", run_dir=str(tmp_path / "run"), report=False, examples=0,
                   scorecard=False)

    def stop_after_the_first_epoch(epoch: int) -> None:
        raise Stop()
    with pytest.raises(Stop):     # an earlier run, killed after its first checkpoint
        train_and_publish(job, log=lambda line: None, on_epoch_end=stop_after_the_first_epoch)
    lines: List[str] = []
    # A torchrun run started afresh on that folder is refused as a one-process run is: its work is not discarded, nor
    # taken over without --resume.
    _one_process_group(monkeypatch, restarts=0)
    with pytest.raises(TrainerError, match="holds a run that did not finish"):
        train_and_publish(job, log=lines.append)
    assert not (tmp_path / "models" / "tiny").exists()
    # The group torchrun restarted (--max-restarts) goes on from the checkpoint the killed group left.
    _one_process_group(monkeypatch, restarts=1)
    bundle = train_and_publish(job, log=lines.append)
    assert bundle is not None and os.path.isfile(os.path.join(bundle, "model.json"))
    assert any(line.startswith("resuming from") for line in lines), lines


class _CollectivesInThisProcess(Group):
    """Rank `rank` of a group as the Trainer sees it, whose collectives stay in this process (no other rank runs)."""

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return values.clone()

    def gather_objects(self, value: Any) -> List[Any]:
        return [value] * self.world_size

    def broadcast_module(self, module: torch.nn.Module) -> None:
        pass

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        return module

    def barrier(self) -> None:
        pass


def _first_epoch_seed(cfg, folder: Path, group, monkeypatch) -> int:
    """The seed a trainer on `group` draws its first epoch's randomness (augmentation, dropout) from."""
    from protopnet_trainer import train as train_module
    from protopnet_trainer.train import Trainer
    seeds: List[int] = []

    def seed_and_stop(seed: int) -> None:
        seeds.append(seed)
        raise Stop()
    trainer = Trainer(cfg, str(folder), progress=False, log=lambda line: None, group=group)
    monkeypatch.setattr(train_module, "seed_everything", seed_and_stop)   # the epochs' seeding, not the model's
    with pytest.raises(Stop):
        trainer.run()
    monkeypatch.undo()
    return seeds[0]


def test_each_rank_draws_its_epochs_randomness_from_a_seed_of_its_own(tmp_path: Path, monkeypatch, tiny) -> None:
    # Ranks that drew alike would crop and flip their shards' k-th images alike: less augmentation than one process.
    cfg = tiny(augment=True)
    seeds = [_first_epoch_seed(cfg, tmp_path / str(rank), _CollectivesInThisProcess(rank, 2, rank, CPU), monkeypatch)
             for rank in (0, 1)]
    assert seeds[0] != seeds[1]
    # Still fixed by the recipe's seed, epoch and rank, so that a resumed run draws as the killed one did.
    again = _first_epoch_seed(cfg, tmp_path / "again", _CollectivesInThisProcess(1, 2, 1, CPU), monkeypatch)
    assert again == seeds[1]
