"""Distributed training with real torchrun and two gloo processes on this machine: a run publishes one good
bundle, the distributed push equals the one-process push exactly, and a killed rank makes torchrun restart the
group, which resumes from the checkpoint and ends where an uninterrupted run ends."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import distributed_push_check
from protopnet_trainer.checkpoint import load_checkpoint, model_from_checkpoint
from protopnet_trainer.config import TrainConfig
from protopnet_trainer.data import make_loaders
from protopnet_trainer.datasets import load_data_source
from protopnet_trainer.evaluate import evaluate_accuracy
from protopnet_trainer.onnx_graph import run_graph

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINER_PATH = os.path.join(HERE, "..", "..", "src", "trainer")
# The smoke preset made small enough for CI's two busy cores; the baseline (the preset's) trains too.
SMOKE = ["--preset", "smoke", "--seed", "1", "--epochs", "5", "--warm-epochs", "1", "--push-start", "2",
         "--push-every", "2", "--synthetic-train-per-class", "40", "--synthetic-test-per-class", "15",
         "--last-layer-iterations", "3", "--calibration-holdout", "0", "--device", "cpu", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp_path, arguments, max_restarts=0, module=True, rendezvous="c10d"):
    """torchrun with 2 processes on this host, started (not waited for). --redirects/--tee 1: torch 1.13 on Python
    3.11 cannot parse the defaults (see shared notes); the console still gets every rank's lines."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--rdzv_backend", rendezvous, "--rdzv_endpoint", f"127.0.0.1:{_free_port()}",
               "--max_restarts", str(max_restarts), "--monitor_interval", "1", "--redirects", "1", "--tee", "1",
               "--log_dir", str(tmp_path / "torchrun-logs")]
    command += ["-m", "protopnet_trainer", *arguments] if module else arguments
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TRAINER_PATH, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def _finish(process, timeout=240):
    # Under the test command's 5-minute limit per test, so a hung run fails here; and the whole torchrun group is
    # killed whatever stops the wait (the limit's own exception too): gloo ranks stuck in a collective ignore SIGTERM
    # and outlived pytest.
    try:
        output, _ = process.communicate(timeout=timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, output
    return output


def _versions(models, name):
    family = os.path.join(models, name)
    return sorted(d for d in os.listdir(family) if not d.startswith("."))


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    models, run_dir = root / "models", root / "run"
    output = _finish(_torchrun(root, ["train", *SMOKE, "--models", str(models), "--run-dir", str(run_dir),
                                      "--name", "smoke"]))
    return {"root": root, "models": str(models), "run": str(run_dir), "output": output}


def test_two_process_run_publishes_one_bundle_that_passes_the_bundle_checks(two_process_run):
    output, models = two_process_run["output"], two_process_run["models"]
    # Rank 0 speaks and publishes; rank 1 trains in silence.
    assert _publications(output) == ["[default0]"]
    assert "[default1]:" not in output
    assert "[default0]:epoch 5/5 joint" in output and "[default0]:baseline epoch 5/5" in output
    [version] = _versions(models, "smoke")
    bundle = os.path.join(models, "smoke", version)
    with open(os.path.join(bundle, "model.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    checkpoint = load_checkpoint(os.path.join(two_process_run["run"], "checkpoints", "final.pt"))
    model = model_from_checkpoint(checkpoint).eval()
    cfg = TrainConfig.from_dict(checkpoint["config"])

    # The ONNX graph computes what the final checkpoint's model computes.
    onnx.checker.check_model(onnx.load(os.path.join(bundle, "model.onnx")))
    images = np.random.RandomState(0).rand(3, 3, 32, 32).astype(np.float32)
    values = run_graph(os.path.join(bundle, "model.onnx"), images)
    with torch.no_grad():
        expected = model(torch.from_numpy(images))
    for name in ("logits", "similarities", "similarity_maps", "min_distances"):
        np.testing.assert_allclose(values[name], getattr(expected, name).numpy(), rtol=1e-4, atol=1e-4)
    assert np.array_equal(np.array(manifest["lastLayer"]["weights"], dtype=np.float32),
                          model.last_layer.weight.detach().numpy())

    # Every prototype is a patch of a training image of its class, with its three pictures.
    source = load_data_source(cfg.replace(augment=False))
    loaders = make_loaders(cfg, source)
    assert len(manifest["prototypes"]) == model.num_prototypes == 8
    for j, prototype in enumerate(manifest["prototypes"]):
        item = source.train.ids.index(prototype["source"]["item"])
        assert source.train.labels[item] == prototype["classIndex"] == int(model.prototype_classes[j])
        cell = prototype["source"]["featureCell"]
        with torch.no_grad():
            distances = model.distances(model.features(loaders.push_set.image(item)[None]))[0, j]
        assert float(distances[cell["row"], cell["column"]]) <= 1e-5
        for kind, path in prototype["images"].items():
            with Image.open(os.path.join(bundle, path)) as picture:
                assert picture.format == "PNG"

    # The metrics reduced over both ranks are those of the whole test set and training set.
    training = manifest["training"]
    assert training["trainSize"] == 160 and training["testSize"] == 60
    accuracy = evaluate_accuracy(model, loaders.test, torch.device("cpu"), progress=False)
    assert training["metrics"]["testAccuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert 0 <= training["baseline"]["testAccuracy"] <= 1
    history = checkpoint["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert all(0 <= h["train_accuracy"] <= 1 for h in history)


def test_distributed_push_equals_the_one_process_push_prototype_by_prototype(tmp_path):
    torch.manual_seed(11)
    weights = str(tmp_path / "weights.pt")
    torch.save(distributed_push_check.model_with_random_weights().state_dict(), weights)
    out = tmp_path / "out"
    out.mkdir()
    _finish(_torchrun(tmp_path, [os.path.join(HERE, "distributed_push_check.py"), weights, str(out)],
                      module=False))
    # Bit-for-bit needs the ranks' thread count (1): CPU convolutions sum in an order that depends on it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected_prototypes, expected_records = distributed_push_check.push(weights, str(tmp_path / "one-process"))
        aware_prototypes, aware_records = distributed_push_check.push(weights, None, background_aware=True)
    finally:
        torch.set_num_threads(threads)
    half = len(distributed_push_check.doubled_push_set()) // 2
    assert len(expected_records) == 9 and all(r["item"] < half for r in expected_records)
    for rank in (0, 1):
        pushed = torch.load(str(out / f"rank-{rank}.pt"))
        assert torch.equal(pushed["prototypes"], expected_prototypes)
        assert len(pushed["records"]) == len(expected_records)
        for mine, theirs in zip(pushed["records"], expected_records):
            assert (mine["item"], mine["itemId"], mine["featureCell"], mine["box"]) == \
                   (theirs["item"], theirs["itemId"], theirs["featureCell"], theirs["box"])
            assert mine["distanceBeforePush"] == theirs["distanceBeforePush"]
        # The background-aware push too: its 16 candidates per prototype are merged across ranks and rank 0's
        # box check chooses for all.
        assert torch.equal(pushed["aware"]["prototypes"], aware_prototypes)
        assert [(r["item"], r["featureCell"], r["box"], r["distanceBeforePush"]) for r in pushed["aware"]["records"]] \
            == [(r["item"], r["featureCell"], r["box"], r["distanceBeforePush"]) for r in aware_records]
    # On this data the box check moves some prototypes off their nearest patch, so the merged candidates beyond the
    # first and rank 0's handover of its choice are exercised, not only the plain push again.
    assert [(r["item"], r["featureCell"]) for r in aware_records] != [(r["item"], r["featureCell"]) for r in expected_records]
    # Each nearest image has its copy on the other rank (an exact tie), and rank 1 holds some of the winners:
    # the merge chose the lower index across ranks, as one process does.
    owners = {(r["item"] // distributed_push_check.BATCH_SIZE) % 2 for r in expected_records}
    assert owners == {0, 1}
    # Only rank 0 rendered, and its pictures are the one-process pictures.
    for j in range(9):
        for name in ("patch", "source", "activation"):
            ours = np.asarray(Image.open(out / "pictures" / str(j) / f"{name}.png"))
            reference = np.asarray(Image.open(tmp_path / "one-process" / str(j) / f"{name}.png"))
            assert np.array_equal(ours, reference)


def _publications(output: str) -> list:
    """The rank prefix ("[default0]") of each line that says a bundle was published. Lines, not words: a rank stopped by
    torchrun's SIGTERM (its group restarted after a rank was killed, when the signal comes before the broken connection)
    says "error: terminated; nothing was published (...)"."""
    return [prefix for prefix, _, text in (line.partition(":") for line in output.splitlines()) if text.startswith("published ")]


def _parents():
    """pid -> parent pid of every process."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def _worker_of_rank(torchrun_pid: int, rank: int):
    """The pid of the torchrun worker process with RANK=rank (a descendant of torchrun), or None."""
    parents = _parents()
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, torchrun_pid):
            ancestor = parents.get(ancestor)
        if ancestor != torchrun_pid:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environment = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        except OSError:
            continue
        if environment.get(b"RANK") == str(rank).encode() and b"LOCAL_RANK" in environment:
            return pid
    return None


# Both rendezvous kinds: with the static one (and with the c10d one from torch 2.5 on) torchrun's agent hosts one
# store for every attempt, which the restarted group must not confuse with the killed one's.
@pytest.mark.parametrize("rendezvous", ["c10d", "static"])
def test_a_killed_rank_makes_torchrun_restart_the_group_and_the_run_resumes(two_process_run, tmp_path, rendezvous):
    models, run_dir = tmp_path / "models", tmp_path / "run"
    process = _torchrun(tmp_path, ["train", *SMOKE, "--models", str(models), "--run-dir", str(run_dir),
                                   "--name", "smoke"], max_restarts=1, rendezvous=rendezvous)
    first = run_dir / "checkpoints" / "epoch-001.pt"
    deadline = time.time() + 300
    while not first.exists():
        assert process.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    victim = _worker_of_rank(process.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    output = _finish(process)
    assert "resuming from" in output and str(run_dir / "checkpoints" / "epoch-00") in output
    # One publication, rank 0's (the killed group's rank 0 may have said "nothing was published": see _publications).
    assert _publications(output) == ["[default0]"]
    assert len(_versions(str(models), "smoke")) == 1
    # Resume is exact: the same final weights as the uninterrupted two-process run.
    resumed = load_checkpoint(str(run_dir / "checkpoints" / "final.pt"))["model"]
    straight = load_checkpoint(os.path.join(two_process_run["run"], "checkpoints", "final.pt"))["model"]
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_shards_are_every_nth_batch_of_the_one_process_batching_and_the_batch_size_is_global():
    from protopnet_trainer.distributed import BatchShard, Group
    from protopnet_trainer.errors import TrainerError
    dataset = list(zip(range(23), range(23), range(23)))   # (image, label, index) triples
    shards = [[batch[2].tolist() for batch in BatchShard(dataset, 5, rank, 2)] for rank in (0, 1)]
    assert shards == [[[0, 1, 2, 3, 4], [10, 11, 12, 13, 14], [20, 21, 22]], [[5, 6, 7, 8, 9], [15, 16, 17, 18, 19]]]
    group = Group(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"))
    loader = group.train_loader(dataset, 8, seed=1, num_workers=0)
    assert loader.batch_size == 4 and len(loader.sampler) == 12
    with pytest.raises(TrainerError, match="global batch"):
        Group(rank=0, world_size=3, local_rank=0, device=torch.device("cpu")).train_loader(dataset, 8, 1, 0)


def test_the_group_keeps_its_collectives_tensors_until_it_is_destroyed():
    """Gloo's worker thread lets go of a collective's tensors after the collective returns; if it held the last
    reference it would need the GIL, which destroy_process_group holds while waiting for that thread (torch 2.6 runs
    never ended so). The group keeps them, so the caller dropping its results leaves them alive."""
    import gc
    import weakref

    import torch.distributed as dist
    from protopnet_trainer.distributed import Group
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        group = Group(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
        summed = weakref.ref(group.sum(torch.ones(3)))
        gathered = group.gather(torch.ones(2))
        parts = weakref.ref(gathered)
        del gathered
        gc.collect()
        assert summed() is not None and torch.equal(summed(), torch.ones(3))
        assert parts() is None            # the stacked copy is the caller's; the gathered parts are held
        assert any(torch.equal(t, torch.ones(2)) for t in group._held)
        group.broadcast_module(torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(10)]))   # 20 tensors
        assert len(group._held) == 16     # only the last collectives': bounded, whatever the run's length
    finally:
        dist.destroy_process_group()


def test_a_two_process_run_on_an_image_folder_shares_the_image_check_and_leaves_out_the_same_files(tmp_path):
    from test_image_check import image_folder, truncate
    data = image_folder(tmp_path / "data", per_class=(6, 2))
    truncate(data / "train" / "dog" / "5.png")
    models = tmp_path / "models"
    output = _finish(_torchrun(tmp_path, [
        "train", "--preset", "smoke", "--dataset", "imagefolder", "--data", str(data), "--skip-unreadable-images",
        "--epochs", "2", "--push-start", "1", "--push-every", "1", "--last-layer-iterations", "1", "--no-baseline",
        "--batch-size", "4", "--device", "cpu", "--no-progress", "--models", str(models), "--name", "photos",
        "--run-dir", str(tmp_path / "run")]))
    # Rank 0 says it once; both ranks left the file out (a rank that had not would train on another data set, and its
    # sampler's shard or the reduced metrics would not match).
    assert output.count("warning: leaving out 1 of 16 image files that cannot be read (train/dog/5.png: ") == 1
    [version] = _versions(str(models), "photos")
    with open(os.path.join(models, "photos", version, "model.json"), encoding="utf-8") as f:
        training = json.load(f)["training"]
    assert training["trainSize"] == 11 and training["testSize"] == 4


def test_sharded_scores_put_each_row_at_its_image(tmp_path):
    from types import SimpleNamespace
    from protopnet_trainer.distributed import BatchShard, Group, sharded_scores

    class One(Group):
        def sum(self, values):
            return values.clone()
    data = [(torch.full((2,), float(i)), 0, i) for i in range(10)]
    model = lambda images: SimpleNamespace(similarities=images)
    rows = sharded_scores(model, BatchShard(data, 4, 0, 1), One(0, 1, 0, torch.device("cpu")), 2)
    assert rows[:, 0].tolist() == [float(i) for i in range(10)]
