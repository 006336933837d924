"""The schedule: stages, push epochs, last-layer passes, checkpoints, resume, pruning, baseline."""
import json
import os

import pytest
import torch

from protopnet_trainer.checkpoint import load_checkpoint
from protopnet_trainer.errors import TrainerError
from trainer_runs import interrupt_after, quiet_trainer as _quiet, straight_and_resumed


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny, tmp_path):
    cfg = tiny(epochs=4, push_start=1, push_every=2, augment=True)
    straight, resumed_trainer = straight_and_resumed(cfg, tmp_path)
    resumed = resumed_trainer.run().model.state_dict()
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.allclose(straight[name].float(), resumed[name].float(), atol=1e-6), name
    # and the run really trained: the weights differ from a fresh model's
    fresh = _quiet(cfg, tmp_path / "fresh").model.state_dict()
    assert not torch.allclose(fresh["prototypes"], straight["prototypes"])
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_a_run_whose_loss_is_not_finite_stops_saying_it_diverged(tiny, tmp_path):
    trainer = _quiet(tiny(epochs=2), tmp_path)
    with torch.no_grad():
        trainer.model.prototypes.fill_(float("nan"))   # as weights that have blown up
    with pytest.raises(TrainerError, match="the training diverged: the loss of epoch 1 is nan"):
        trainer.run()
    assert not (tmp_path / "metrics.jsonl").exists()   # the broken epoch is not recorded


def test_resume_with_another_image_size_is_refused_before_loading_anything(tiny, tmp_path):
    cfg = tiny(epochs=3)
    interrupt_after(cfg, tmp_path, epochs_done=1)
    # The small CNN's weights would load at 24 px too: only the configured size can tell the runs apart.
    larger = _quiet(cfg.replace(image_size=24), tmp_path)
    with pytest.raises(TrainerError) as refused:
        larger.resume()
    message = str(refused.value)
    assert "--image-size 16" in message and "24" in message
    assert "start a new run" in message and "jpeg" not in message.lower()
    assert larger.epoch == 0 and larger.records == []          # nothing of the checkpoint was taken over
    assert _quiet(cfg, tmp_path).resume()                        # at the checkpoint's size it resumes


@pytest.mark.parametrize("changes, expected", [
    # Before, these resumed silently into a model that computes something else ...
    ({"similarity": "linear"}, ["--similarity log, not linear"]),
    ({"add_on": "bottleneck"}, ["--add-on regular, not bottleneck"]),
    # A generated data set is drawn from the seed: another seed would train the rest of the run on other images.
    ({"seed": 7}, ["--seed 3, not 7"]),
    # ... and these failed in load_state_dict with a raw size mismatch; every differing setting is named at once.
    ({"prototype_dim": 4, "small_cnn_widths": [8, 8]},
     ["--prototype-dim 8, not 4", "--small-cnn-widths 8,16, not 8,8", "(--small-cnn-widths 8,16 --prototype-dim 8)"]),
])
def test_resume_with_another_model_setting_is_refused_before_loading_anything(tiny, tmp_path, changes, expected):
    cfg = tiny(epochs=3)
    interrupt_after(cfg, tmp_path, epochs_done=1)
    other = _quiet(cfg.replace(**changes), tmp_path)
    with pytest.raises(TrainerError) as refused:
        other.resume()
    message = str(refused.value)
    assert all(part in message for part in expected), message
    assert "start a new run" in message and "--image-size" not in message
    assert other.epoch == 0 and other.records == []              # nothing of the checkpoint was taken over


def test_model_settings_name_real_options_and_fields():
    import argparse
    import dataclasses

    from protopnet_trainer.cli import add_config_options
    from protopnet_trainer.config import TrainConfig
    from protopnet_trainer.resume_rules import MODEL_SETTINGS

    parser = argparse.ArgumentParser()
    add_config_options(parser)                       # the options `train` takes for its configuration
    options = {option for action in parser._actions for option in action.option_strings}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, flag, _ in MODEL_SETTINGS:
        assert name in fields, name
        assert flag is None or flag in options, flag


def test_checkpoint_per_epoch_holds_state_dicts_not_modules(tiny, tmp_path):
    trainer = _quiet(tiny(epochs=4), tmp_path)
    trainer.run()
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert names == ["epoch-002.pt", "epoch-003.pt", "epoch-004.pt", "final.pt"]   # the 3 latest are kept
    raw = torch.load(tmp_path / "checkpoints" / "epoch-004.pt", map_location="cpu", weights_only=True)
    assert set(raw) == {"format", "structure", "tensors"}
    state = load_checkpoint(str(tmp_path / "checkpoints" / "epoch-004.pt"))
    assert state["epoch"] == 4 and state["config"]["epochs"] == 4
    assert all(isinstance(v, torch.Tensor) for v in state["model"].values())
    assert len(state["records"]) == 6


def test_schedule_warm_joint_push_and_final_push(tiny, tmp_path):
    cfg = tiny(epochs=5, warm_epochs=2, push_start=3, push_every=5)
    trainer = _quiet(cfg, tmp_path)
    assert [trainer.phase(e) for e in range(5)] == ["warm", "warm", "joint", "joint", "joint"]
    assert [trainer.push_due(e) for e in range(5)] == [False, False, False, True, True]  # epoch 4 and the last
    trunk_before = [p.detach().clone() for p in trainer.model.trunk.parameters()]
    last_before = trainer.model.last_layer.weight.detach().clone()
    trainer.train_epoch(0)                                    # warm-up: trunk frozen, last layer untouched
    assert all(torch.equal(a, b) for a, b in zip(trunk_before, trainer.model.trunk.parameters()))
    assert torch.equal(last_before, trainer.model.last_layer.weight)
    trainer.train_epoch(2)                                    # joint: the trunk learns
    assert not all(torch.equal(a, b) for a, b in zip(trunk_before, trainer.model.trunk.parameters()))
    history = trainer.run().history
    assert [m["epoch"] for m in history if m.get("pushed")] == [4, 5]


def test_the_joint_learning_rate_falls_by_the_gamma_every_step_of_joint_epochs_and_not_in_warm_up(tiny, tmp_path):
    # The reference's schedule (adam-step): StepLR over the joint epochs only, gamma 0.1 by default.
    trainer = _quiet(tiny(epochs=5, warm_epochs=1, joint_lr_step=2, joint_lr_trunk=1e-3), tmp_path)
    rates = []
    for epoch in range(5):
        trainer.train_epoch(epoch)
        rates.append(trainer.joint_optimizer.param_groups[0]["lr"])   # the trunk's
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5])


def test_last_layer_stage_trains_only_the_last_layer_on_cached_scores(tiny, tmp_path):
    trainer = _quiet(tiny(last_layer_iterations=3), tmp_path)
    trainer.push(0)
    frozen = {k: v.clone() for k, v in trainer.model.state_dict().items() if not k.startswith("last_layer")}
    before = trainer.model.last_layer.weight.detach().clone()
    calls = []
    original = trainer.push_set_scores
    trainer.push_set_scores = lambda: calls.append(1) or original()
    trainer.train_last_layer()
    assert len(calls) == 1                                    # the trunk ran once, not once per pass
    after = trainer.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items())
    assert not torch.equal(before, trainer.model.last_layer.weight)


def test_pruning_removes_prototypes_whose_nearest_patches_are_of_another_class(tiny, tmp_path):
    trainer = _quiet(tiny(prune_k=1, prune_threshold=1), tmp_path)
    trainer.push(0)
    # Prototype 0 (class 0) becomes a patch of an image of class 1: its nearest patch is then of class 1.
    other = trainer.loaders.push_set.split.labels.index(1)
    with torch.no_grad():
        z = trainer.model.features(trainer.loaders.push_set.image(other)[None])[0]
        trainer.model.prototypes[0] = z[:, 1, 1].view(-1, 1, 1)
    removed = trainer.prune()
    assert removed == 1
    assert trainer.model.num_prototypes == 5
    assert trainer.model.prototype_classes.tolist() == [0, 1, 1, 2, 2]
    assert trainer.model.last_layer.weight.shape == (3, 5)
    assert len(trainer.records) == 5 and [r["classIndex"] for r in trainer.records] == [0, 1, 1, 2, 2]


def test_cached_push_set_is_unaugmented(tiny, tmp_path):
    trainer = _quiet(tiny(augment=True), tmp_path)
    assert trainer.loaders.train_set.augmentation is not None
    assert trainer.loaders.push_set.augmentation is None and trainer.loaders.test_set.augmentation is None


def test_pruning_keeps_the_best_prototype_of_a_class_that_would_lose_all(tiny, tmp_path):
    trainer = _quiet(tiny(prune_k=5, prune_threshold=5), tmp_path)
    # A threshold above k, which the options refuse, makes every prototype fail: the case the safeguard is for.
    trainer.cfg = trainer.cfg.replace(prune_threshold=6)
    trainer.push(0)
    trainer.prune()
    assert sorted(trainer.model.prototype_classes.tolist()) == [0, 1, 2]


def test_a_class_that_would_lose_all_keeps_the_prototype_with_most_own_class_neighbours(tiny, tmp_path, monkeypatch):
    from protopnet_trainer import prune
    trainer = _quiet(tiny(), tmp_path)                        # prototypes of classes 0, 0, 1, 1, 2, 2
    # Each prototype's 5 nearest patches' classes: own-class counts 1, 3 | 4, 0 | 2, 2.
    neighbours = torch.tensor([[0, 1, 1, 2, 2], [0, 0, 0, 1, 2],
                               [1, 1, 1, 1, 0], [0, 0, 2, 2, 2],
                               [2, 2, 0, 0, 1], [0, 2, 1, 2, 1]])
    monkeypatch.setattr(prune, "nearest_patch_classes", lambda *args, **kwargs: neighbours)
    kept = prune.prune_prototypes(trainer.model, trainer.loaders.push_set, 16, torch.device("cpu"), k=5, threshold=4)
    assert kept == [1, 2, 4]                                  # the better of class 0; of a tie, the first


def test_only_the_current_push_keeps_its_pictures(tiny, tmp_path):
    trainer = _quiet(tiny(epochs=3, push_start=0, push_every=1), tmp_path)
    result = trainer.run()
    assert os.listdir(tmp_path / "push") == ["epoch-003"]
    assert all(r["pictures"].startswith(str(tmp_path / "push" / "epoch-003")) for r in result.records)


def test_an_epoch_of_copies_draws_every_image_that_many_times_and_so_do_the_last_layer_epochs(tiny, tmp_path,
                                                                                             monkeypatch):
    """--epoch-copies: the reference's epoch is one pass over 30 augmented copies of each image, and its last-layer
    epochs are too; an epoch here is that many passes of online augmentation, and so is a last-layer epoch."""
    import protopnet_trainer.train as train_module
    trainer = _quiet(tiny(epoch_copies=3, last_layer_iterations=2, prune_k=1, prune_threshold=1), tmp_path)
    images = len(trainer.loaders.train_set)
    assert len(trainer.loaders.train.dataset) == 3 * images
    drawn = [int(i) for _, _, indices in trainer.loaders.train for i in indices]
    assert sorted(drawn) == sorted(list(range(images)) * 3)      # each image three times an epoch, in a shuffled order

    passes = []
    fit = train_module.fit_last_layer
    monkeypatch.setattr(train_module, "fit_last_layer",
                        lambda *args, **kwargs: passes.append(args[6]) or fit(*args, **kwargs))
    trainer.push(0)
    trainer.train_last_layer()
    trainer.prune()
    # 2 last-layer epochs of 3 passes after a push; after pruning five times that, as the reference's 100 against 20
    assert passes == [2 * 3, 5 * 2 * 3]


def test_the_cub_presets_count_epochs_as_the_reference_does():
    from protopnet_trainer.config import preset_config
    for name in ("cub200-resnet34", "cub200-resnet18"):
        cfg = preset_config(name)
        assert (cfg.epoch_copies, cfg.epochs, cfg.warm_epochs, cfg.push_start, cfg.push_every,
                cfg.last_layer_iterations) == (30, 30, 5, 10, 10, 20), name
    with pytest.raises(TrainerError, match="--epoch-copies must be at least 1"):
        preset_config("smoke").replace(epoch_copies=0).validate()


def test_a_run_interrupted_while_its_baseline_trains_resumes_the_baseline_from_its_last_epoch(tiny, tmp_path):
    # The baseline trained after the epochs and was saved only in final.pt: an interrupt lost all of it (for the
    # paper's recipe, as long as the ProtoPNet itself), and the resume said "at epoch 4" of a 3-epoch run.
    from protopnet_trainer.train import Trainer
    from trainer_runs import Interrupt
    cfg = tiny(epochs=3, with_baseline=True)
    straight = _quiet(cfg, tmp_path / "straight").run().baseline.history

    def stop_at_baseline_epoch_3(line):
        if line.startswith("baseline epoch 3/3"):
            raise Interrupt()

    with pytest.raises(Interrupt):
        Trainer(cfg, str(tmp_path / "resumed"), progress=False, log=stop_at_baseline_epoch_3).run()
    kept = str(tmp_path / "resumed" / "checkpoints" / "baseline.pt")
    saved_seconds = load_checkpoint(kept)["seconds"]
    # Another baseline recipe's state is not taken up (said); the same one's read from another data folder, with other
    # loader workers or threads, is.
    from protopnet_trainer.baseline import BaselineCheckpoint
    told = []
    stored = BaselineCheckpoint(kept, writes=False, before_write=lambda: None)
    assert stored.read(cfg.replace(baseline_lr_head=cfg.baseline_lr_head * 2), told.append) is None
    assert told == [f"baseline: {kept} was trained with another baseline_lr_head: the baseline trains from its first epoch"]
    assert stored.read(cfg.replace(data=str(tmp_path / "elsewhere"), num_workers=1, threads=1), told.append)["epoch"] == 2
    said = []
    trainer = Trainer(cfg, str(tmp_path / "resumed"), progress=False, log=said.append)
    assert trainer.resume()
    result = trainer.run()
    resumed = result.baseline.history
    # Its time counts the epochs trained before the interruption too.
    assert result.baseline.seconds >= saved_seconds > 0
    assert any("all 3 epochs are trained; the steps after them go on" in line for line in said), said
    assert any(line.startswith("baseline: resuming from") and line.endswith("at epoch 3") for line in said), said
    assert not any(line.startswith(("baseline epoch 1/3", "baseline epoch 2/3")) for line in said), said
    assert resumed == pytest.approx(straight)
    # Its result is in final.pt: the baseline's own checkpoint goes.
    assert not os.path.exists(tmp_path / "resumed" / "checkpoints" / "baseline.pt")
    assert load_checkpoint(str(tmp_path / "resumed" / "checkpoints" / "final.pt"))


@pytest.mark.parametrize("setting, option", [("train_limit", "--train-limit"), ("test_limit", "--test-limit"),
                                             ("calibration_holdout", "--calibration-holdout")])
def test_each_data_setting_is_compared_on_resume(tiny, setting, option):
    from protopnet_trainer.resume_rules import other_data_warning
    saved = tiny(epochs=3)
    changed = saved.replace(**{setting: 5 if getattr(saved, setting) != 5 else 6})
    warning = other_data_warning("c.pt", saved, changed)
    assert warning is not None and f"{option} " in warning
    assert other_data_warning("c.pt", saved, saved.replace(data="/elsewhere")) is None


def test_a_resume_with_other_data_says_so(tiny, tmp_path):
    # Accepted without a word, and the bundle then recorded the new data's size for epochs trained on the old.
    from protopnet_trainer.train import Trainer
    interrupt_after(tiny(epochs=3, synthetic_train_per_class=12), tmp_path, 1)
    said = []
    trainer = Trainer(tiny(epochs=3, synthetic_train_per_class=10), str(tmp_path), progress=False, log=said.append)
    assert trainer.resume()
    [warning] = [line for line in said if line.startswith("warning: resuming")]
    assert "with other data than it trained on (--synthetic-train-per-class 12, now 10)" in warning
    said.clear()
    # The same data in another folder (a job's workers mount the data root at different paths): nothing to say.
    same = Trainer(tiny(epochs=3, synthetic_train_per_class=12, data=str(tmp_path / "elsewhere")), str(tmp_path),
                   progress=False, log=said.append)
    assert same.resume() and not any(line.startswith("warning: resuming") for line in said)


def test_a_tuple_comes_back_a_tuple(tmp_path):
    from protopnet_trainer.checkpoint import load_checkpoint, save_checkpoint
    save_checkpoint({"config": {}, "model": {}, "classes": [], "betas": (0.9, 0.999)}, str(tmp_path / "c.pt"))
    assert load_checkpoint(str(tmp_path / "c.pt"))["betas"] == (0.9, 0.999)


def test_a_fresh_run_forgets_what_the_old_one_published(tmp_path):
    from protopnet_trainer.run_folder import RunFolder
    folder = RunFolder(str(tmp_path / "run"))
    folder.create()
    folder.record_published(str(tmp_path / "models" / "m" / "v1"), 3)
    folder.clear()
    assert folder.published(str(tmp_path / "models" / "m"), 3) is None


def test_the_last_layer_stage_learns_each_image_s_own_label(tiny):
    """fit_last_layer shuffles the cached scores every pass: each batch's labels must be those of the same images.
    Scores that name the class outright, from a last layer that starts predicting the next class, are learnt to the
    last image."""
    from protopnet_trainer.last_layer import fit_last_layer
    from protopnet_trainer.losses import LossCoefficients
    from protopnet_trainer.model import build_model
    cfg = tiny(last_layer_batch_size=4)
    model = build_model(cfg, 3, 3, [0.5] * 3, [0.25] * 3)          # prototypes of classes 0, 0, 1, 1, 2, 2
    labels = torch.arange(30) % 3
    scores = torch.nn.functional.one_hot(2 * labels, 6).float()
    with torch.no_grad():
        model.last_layer.weight.copy_(model.last_layer.weight.roll(1, dims=0))   # predicts class k + 1 for class k
    optimizer = torch.optim.Adam(model.last_layer.parameters(), lr=0.1)
    accuracy = fit_last_layer(model, scores, labels, optimizer, LossCoefficients(), cfg, 20,
                              torch.Generator().manual_seed(0))
    assert accuracy == 1.0
    assert torch.equal(model.last_layer(scores).argmax(1), labels)


def test_warm_up_trains_the_add_on_layers_and_prototypes_and_joint_training_the_trunk_too(tiny, tmp_path):
    """The paper's stages: warm-up trains the add-on layers and the prototypes on a frozen trunk with its own
    optimizer (the joint stage's Adam starts fresh after it), joint training trains trunk, add-on layers and
    prototypes together, and neither touches the last layer, which only its own stage trains."""
    trainer = _quiet(tiny(epochs=3, warm_epochs=1), tmp_path)
    model = trainer.model
    parts = {"trunk": lambda: list(model.trunk.parameters()), "add_on": lambda: list(model.add_on.parameters()),
             "prototypes": lambda: [model.prototypes], "last_layer": lambda: list(model.last_layer.parameters())}

    def trained_by(epoch):
        before = {name: [p.detach().clone() for p in get()] for name, get in parts.items()}
        trainer.train_epoch(epoch)
        return {name for name, get in parts.items() if any(not torch.equal(a, b) for a, b in zip(before[name], get()))}

    assert trained_by(0) == {"add_on", "prototypes"}
    assert trainer.warm_optimizer.state and not trainer.joint_optimizer.state
    assert trained_by(1) == {"trunk", "add_on", "prototypes"}


def test_the_epoch_loss_weighs_its_terms_with_the_recipe_s_coefficients(tiny, tmp_path):
    """Each of --coef-crs-ent, --coef-clst, --coef-sep and --coef-l1 weighs its own term of the training loss."""
    from protopnet_trainer.losses import LossCoefficients
    trainer = _quiet(tiny(coef_crs_ent=0.9, coef_clst=0.7, coef_sep=-0.06, coef_l1=2e-3), tmp_path)
    assert trainer.coefs == LossCoefficients(crs_ent=0.9, clst=0.7, sep=-0.06, l1=2e-3)
    metrics = trainer.train_epoch(0)
    weighed = (0.9 * metrics["loss_cross_entropy"] + 0.7 * metrics["loss_cluster"] - 0.06 * metrics["loss_separation"]
               + 2e-3 * metrics["loss_l1"])
    assert metrics["loss_total"] == pytest.approx(weighed, rel=1e-5)


def test_the_last_layer_stage_fits_the_similarity_scores_of_the_push_set(tiny, tmp_path):
    """The last layer is fitted on what it multiplies at inference: each push-set image's max similarities (not its
    distances), in the push set's order, which is the order of the labels it is fitted to."""
    trainer = _quiet(tiny(), tmp_path)
    push_set = trainer.loaders.push_set
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(torch.stack([push_set[n][0] for n in range(len(push_set))])).similarities
    assert torch.allclose(trainer.push_set_scores(), expected, atol=1e-5)


def test_the_background_aware_cluster_cost_counts_foreground_cells_only(tiny, tmp_path):
    """--background-aware: an image's distance to its own class's prototypes in the cluster cost is taken over its
    cells that are not background, so that training does not pull prototypes onto the border's colour."""
    import copy
    from protopnet_trainer.background import background_to_leave_out, foreground_min_distances
    from protopnet_trainer.losses import cluster_cost, own_class_mask
    trainer = _quiet(tiny(background_aware=True, batch_size=64), tmp_path)   # one batch: the loss is the first model's
    images, labels, _ = next(iter(trainer.loaders.train))
    assert len(labels) == len(trainer.loaders.train_set)
    model = copy.deepcopy(trainer.model).train()             # the batch statistics of the same images, as in the epoch
    with torch.no_grad():
        out = model(images)
        leave_out = background_to_leave_out(images, *out.distances.shape[-2:])
        own = own_class_mask(model.prototype_classes, labels)
        foreground = float(cluster_cost(foreground_min_distances(out.distances, leave_out), own))
        everywhere = float(cluster_cost(out.min_distances, own))
    assert leave_out.any() and abs(foreground - everywhere) > 1e-3          # the pictures do have background cells
    assert trainer.train_epoch(0)["loss_cluster"] == pytest.approx(foreground, rel=1e-4)


def test_pruning_takes_k_and_the_threshold_from_the_recipe(tiny, tmp_path, monkeypatch):
    """--prune-k is how many nearest patches a prototype is judged by, --prune-threshold how many of them must be
    of its own class for it to stay."""
    from protopnet_trainer import prune
    trainer = _quiet(tiny(prune_k=5, prune_threshold=2), tmp_path)        # prototypes of classes 0, 0, 1, 1, 2, 2
    trainer.push(0)
    # Each prototype's 5 nearest patches' classes: own-class counts 1, 3 | 4, 0 | 2, 2.
    neighbours = torch.tensor([[0, 1, 1, 2, 2], [0, 0, 0, 1, 2],
                               [1, 1, 1, 1, 0], [0, 0, 2, 2, 2],
                               [2, 2, 0, 0, 1], [0, 2, 1, 2, 1]])
    asked = []
    monkeypatch.setattr(prune, "nearest_patch_classes",
                        lambda model, push_set, batch_size, device, k, *args, **kwargs: asked.append(k) or neighbours[:, :k])
    assert trainer.prune() == 2
    assert asked == [5]
    assert trainer.model.prototype_classes.tolist() == [0, 1, 2, 2]          # prototypes 1, 2, 4 and 5 stay


def test_each_stage_s_optimizer_takes_the_recipe_s_learning_rates(tiny, tmp_path):
    """Warm-up, joint and last-layer stages each have their own learning rates (the fashion-mnist recipe sets
    --last-layer-lr 1e-3 against the default 1e-4); a pruned model's last layer is fitted at the last-layer rate too."""
    cfg = tiny(warm_lr_add_on=1e-3, warm_lr_prototypes=2e-3, joint_lr_trunk=3e-4, joint_lr_add_on=4e-3,
               joint_lr_prototypes=5e-3, last_layer_lr=6e-3, prune_k=1, prune_threshold=1)
    trainer = _quiet(cfg, tmp_path)
    rates = lambda optimizer: [group["lr"] for group in optimizer.param_groups]
    assert rates(trainer.warm_optimizer) == pytest.approx([1e-3, 2e-3])
    assert rates(trainer.joint_optimizer) == pytest.approx([3e-4, 4e-3, 5e-3])
    assert rates(trainer.last_optimizer) == pytest.approx([6e-3])
    trainer.push(0)
    trainer.prune()
    assert rates(trainer.last_optimizer) == pytest.approx([6e-3])


def test_every_push_of_the_schedule_is_followed_by_a_last_layer_stage(tiny, tmp_path, monkeypatch):
    """The paper's schedule: after each push the last layer alone is fitted to the pushed prototypes' scores (the
    epochs never change it), and the epoch records that stage's accuracy."""
    import protopnet_trainer.train as train_module
    trainer = _quiet(tiny(epochs=4, warm_epochs=1, push_start=1, push_every=2), tmp_path)
    events = []
    push, fit = trainer.push, train_module.fit_last_layer

    def fitting(*args, **kwargs):
        accuracy = fit(*args, **kwargs)
        events.append(("last layer", accuracy))
        return accuracy

    monkeypatch.setattr(trainer, "push", lambda epoch: events.append(("push", epoch)) or push(epoch))
    monkeypatch.setattr(train_module, "fit_last_layer", fitting)
    history = trainer.run().history
    assert [kind for kind, _ in events] == ["push", "last layer", "push", "last layer"]
    assert [value for kind, value in events if kind == "push"] == [1, 3]
    assert [m["last_layer_accuracy"] for m in history if m.get("pushed")] == [a for kind, a in events if kind == "last layer"]


def test_a_background_aware_run_pushes_background_aware(tiny, tmp_path):
    """--background-aware holds for the run's pushes, not only for its cluster cost: the trainer's push lands where
    the background-aware push lands (on this untrained model, not where the plain push lands)."""
    import copy
    from protopnet_trainer.push import push_prototypes
    trainer = _quiet(tiny(background_aware=True), tmp_path)

    def places(records):
        return [(r["item"], r["featureCell"]["row"], r["featureCell"]["column"]) for r in records]

    def pushed(aware):
        return places(push_prototypes(copy.deepcopy(trainer.model), trainer.loaders.push_set, 16, torch.device("cpu"),
                                      None, progress=False, background_aware=aware))

    aware = pushed(True)
    assert aware != pushed(False)
    trainer.push(0)
    assert places(trainer.records) == aware


def test_pruning_defaults_to_the_paper_s_k_of_6_and_threshold_of_3():
    """The paper removes a prototype when fewer than 3 of its 6 nearest training patches are of its own class: a
    run's --prune and the prune command default to that."""
    from protopnet_trainer.cli import build_parser
    from protopnet_trainer.config import TrainConfig
    assert (TrainConfig().prune_k, TrainConfig().prune_threshold) == (6, 3)
    args = build_parser().parse_args(["prune", "--checkpoint", "final.pt"])
    assert (args.k, args.threshold) == (6, 3)


def test_an_epoch_trains_in_training_mode_whatever_ran_before_it(tiny, tmp_path):
    """Evaluation and push leave the model in eval mode; each epoch puts it back in training mode, so that its batch
    norms normalise by the batch and learn the data's running statistics, as the reference trains."""
    trainer = _quiet(tiny(), tmp_path)
    trainer.model.eval()                                    # as a push or an evaluation leaves it
    norms = [m for m in trainer.model.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    trainer.train_epoch(0)
    assert norms and all(not torch.equal(a, m.running_mean) for a, m in zip(before, norms))


def test_the_last_layer_stage_steps_once_per_batch_of_the_last_layer_batch_size(tiny):
    """--last-layer-batch-size sets the last-layer stage's batches (the fashion-mnist recipe fits 512 scores a step
    against training batches of 128); 0 takes the training batch size."""
    from protopnet_trainer.last_layer import fit_last_layer
    from protopnet_trainer.losses import LossCoefficients
    from protopnet_trainer.model import build_model
    labels = torch.arange(30) % 3
    scores = torch.rand(30, 6, generator=torch.Generator().manual_seed(0))
    for last_layer_batch_size, steps in ((4, 2 * 8), (0, 2 * 4)):       # 30 scores: 8 batches of 4, 4 of 8
        cfg = tiny(batch_size=8, last_layer_batch_size=last_layer_batch_size)
        model = build_model(cfg, 3, 3, [0.5] * 3, [0.25] * 3)
        optimizer = torch.optim.Adam(model.last_layer.parameters(), lr=1e-3)
        taken = []
        step = optimizer.step
        optimizer.step = lambda *args, **kwargs: taken.append(1) or step(*args, **kwargs)
        fit_last_layer(model, scores, labels, optimizer, LossCoefficients(), cfg, 2, torch.Generator().manual_seed(0))
        assert len(taken) == steps, last_layer_batch_size


def test_a_pruned_model_s_last_layer_is_fitted_again(tiny, tmp_path, monkeypatch):
    """After pruning, the last layer of the prototypes that stay is trained again (the reference's 100 epochs): the
    stage's optimizer must hold the new, smaller last layer, not the layer pruning replaced."""
    trainer = _quiet(tiny(prune_k=1, prune_threshold=1), tmp_path)
    trainer.push(0)
    kept = []
    keep = trainer.model.keep_prototypes

    def keeping(indices):
        keep(indices)
        kept.append(trainer.model.last_layer.weight.detach().clone())

    monkeypatch.setattr(trainer.model, "keep_prototypes", keeping)
    trainer.prune()
    assert len(kept) == 1 and kept[0].shape == trainer.model.last_layer.weight.shape
    assert not torch.equal(kept[0], trainer.model.last_layer.weight)


def test_the_last_layer_stage_draws_every_score_once_a_pass_in_a_new_shuffled_order(tiny):
    """The last-layer stage runs in shuffled batches, reshuffled every pass (from its own generator, so that a run
    is reproducible): not the push set's order, which groups no class but repeats the same batches every pass."""
    from protopnet_trainer.last_layer import fit_last_layer
    from protopnet_trainer.losses import LossCoefficients
    from protopnet_trainer.model import build_model
    cfg = tiny(last_layer_batch_size=10)
    scores = torch.arange(30.0).view(30, 1).repeat(1, 6)           # score row n holds n: the batches name their rows
    labels = torch.arange(30) % 3

    def orders(seed):
        model = build_model(cfg, 3, 3, [0.5] * 3, [0.25] * 3)
        seen = []
        model.last_layer.register_forward_hook(lambda module, inputs, output: seen.extend(inputs[0][:, 0].tolist()))
        fit_last_layer(model, scores, labels, torch.optim.Adam(model.last_layer.parameters(), lr=0.0),
                       LossCoefficients(), cfg, 2, torch.Generator().manual_seed(seed))
        return [[int(n) for n in seen[:30]], [int(n) for n in seen[30:]]]

    first, second = orders(5)
    assert sorted(first) == sorted(second) == list(range(30))
    assert first != list(range(30)) and first != second
    assert orders(5) == [first, second]


def test_a_push_right_after_an_epoch_projects_onto_the_patches_inference_sees(tiny, tmp_path):
    """An epoch leaves the model in training mode; the push runs it in eval mode, as a prediction does, so that each
    prototype is the latent patch its source image has at inference (distance 0 there) and the push leaves the
    batch norms' running statistics as training left them."""
    trainer = _quiet(tiny(), tmp_path)
    trainer.train_epoch(0)
    assert trainer.model.training
    running = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running" in k}
    trainer.push(0)
    after = trainer.model.state_dict()
    assert running and all(torch.equal(v, after[k]) for k, v in running.items())
    trainer.model.eval()
    with torch.no_grad():
        for j, record in enumerate(trainer.records):
            distances = trainer.model(trainer.loaders.push_set.image(record["item"])[None]).distances
            assert float(distances[0, j, record["featureCell"]["row"], record["featureCell"]["column"]]) <= 1e-5, j


def test_pruning_judges_prototypes_by_the_patches_inference_sees(tiny, tmp_path):
    """A model comes out of a checkpoint in training mode: pruning scans the push set in eval mode, as a prediction
    runs, so that the nearest patches are those inference sees and the scan leaves the batch norms' running
    statistics alone."""
    import copy
    from protopnet_trainer.prune import nearest_patch_classes
    trainer = _quiet(tiny(), tmp_path)
    push_set = trainer.loaders.push_set
    reference = copy.deepcopy(trainer.model).eval()
    with torch.no_grad():
        distances = reference(torch.stack([push_set[n][0] for n in range(len(push_set))])).min_distances
    expected = torch.tensor(push_set.split.labels)[distances.topk(6, dim=0, largest=False).indices].t()
    trainer.model.train()
    running = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running" in k}
    assert torch.equal(nearest_patch_classes(trainer.model, push_set, 16, torch.device("cpu"), 6, progress=False),
                       expected)
    after = trainer.model.state_dict()
    assert running and all(torch.equal(v, after[k]) for k, v in running.items())


def test_a_run_with_prune_prunes_after_its_last_epoch(tiny, tmp_path, monkeypatch):
    """--prune: once its epochs are done the run prunes, and its final model (final.pt, what the bundle publishes) is
    the pruned one."""
    from protopnet_trainer import prune
    trainer = _quiet(tiny(epochs=2, prune=True, prune_k=2, prune_threshold=1), tmp_path)
    neighbours = trainer.model.prototype_classes.view(-1, 1).repeat(1, 2)
    neighbours[0] = (neighbours[0] + 1) % 3                 # prototype 0's two nearest patches are of another class
    monkeypatch.setattr(prune, "nearest_patch_classes", lambda *args, **kwargs: neighbours)
    result = trainer.run()
    assert result.model.prototype_classes.tolist() == [0, 1, 1, 2, 2] and len(result.records) == 5
    final = load_checkpoint(str(tmp_path / "checkpoints" / "final.pt"))
    assert final["model"]["prototypes"].shape[0] == 5 and len(final["records"]) == 5
