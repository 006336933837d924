"""The options the fashion-mnist recipe is made of: crop-flip augmentation, AdamW + OneCycle per batch (and its
resume), no warm-up, one push at the end, the clamped last layer, and the baseline trained in its own process."""
import json
import os

import pytest
import torch

from protopnet_trainer.cli import main
from protopnet_trainer.config import TrainConfig, preset_config
from protopnet_trainer.augmentation import make_augmentation
from protopnet_trainer.data import ImageSet
from protopnet_trainer.datasets import load_data_source
from protopnet_trainer.errors import TrainerError
from protopnet_trainer.last_layer import clamp_wrong_class_weights
from protopnet_trainer.optimizers import make_joint_optimizer, ramp_share

from test_cli import TINY_ARGS, _one_line_error, _versions
from trainer_runs import interrupt_after, quiet_trainer as _quiet, straight_and_resumed


def _onecycle(tiny, **changes):
    values = dict(epochs=4, warm_epochs=0, push_every=0, joint_optimizer="adamw-onecycle", onecycle_pct_start=0.25,
                  joint_lr_trunk=2e-3, joint_lr_add_on=3e-3, joint_lr_prototypes=4e-3, weight_decay=0.05)
    values.update(changes)
    return tiny(**values)


def test_the_fashion_mnist_preset_is_the_measured_recipe():
    cfg = preset_config("fashion-mnist")
    assert (cfg.small_cnn_widths, cfg.small_cnn_convs_per_stage, cfg.small_cnn_pools) == ([32, 64, 128], 2, 2)
    assert (cfg.prototype_dim, cfg.prototypes_per_class, cfg.add_on, cfg.similarity) == (64, 10, "regular", "log")
    assert (cfg.augmentation, cfg.crop_padding, cfg.warm_epochs, cfg.push_every) == ("crop-flip", 2, 0, 0)
    assert (cfg.joint_optimizer, cfg.onecycle_pct_start, cfg.joint_lr_trunk, cfg.weight_decay) == (
        "adamw-onecycle", 0.25, 2e-3, 0.05)
    assert (cfg.last_layer_lr, cfg.last_layer_batch_size, cfg.last_layer_clamp) == (1e-3, 512, True)
    assert (cfg.epochs, cfg.coef_clst, cfg.coef_sep, cfg.threads) == (50, 0.2, -0.02, 2)
    assert TrainConfig().joint_optimizer == "adam-step" and TrainConfig().augmentation == "paper"


def test_crop_flip_is_a_shifted_or_mirrored_copy_with_a_black_border():
    cfg = TrainConfig(dataset="synthetic", image_size=16, synthetic_classes=2, synthetic_train_per_class=2,
                      synthetic_test_per_class=1, synthetic_channels=1, augmentation="crop-flip", crop_padding=2)
    source = load_data_source(cfg)
    augmentation = make_augmentation(cfg)
    assert [type(t).__name__ for t in augmentation.transforms] == ["RandomCrop", "RandomHorizontalFlip"]
    plain = ImageSet(source.train, 16).image(0)
    padded = torch.nn.functional.pad(plain, (2, 2, 2, 2))       # black (0) border, as the crop pads
    candidates = [padded[:, y:y + 16, x:x + 16] for y in range(5) for x in range(5)]
    candidates += [c.flip(-1) for c in candidates]
    augmented = ImageSet(source.train, 16, augmentation=augmentation)
    torch.manual_seed(0)
    views = [augmented.image(0) for _ in range(12)]
    for view in views:
        assert view.shape == plain.shape
        assert any(torch.allclose(view, c, atol=1e-6) for c in candidates)
    assert any(not torch.allclose(view, plain) for view in views)
    assert make_augmentation(cfg.replace(augmentation="none")) is None


def test_onecycle_ramps_to_each_group_peak_then_anneals_per_batch(tiny, tmp_path):
    cfg = _onecycle(tiny)
    trainer = _quiet(cfg, tmp_path)
    assert isinstance(trainer.joint_optimizer, torch.optim.AdamW)
    groups = trainer.joint_optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.05, 0.05, 0.0]      # prototypes never decay
    steps_per_epoch = len(trainer.loaders.train)
    peaks = [2e-3, 3e-3, 4e-3]
    assert [g["lr"] for g in groups] == pytest.approx([p / 25 for p in peaks])   # the ramp starts at peak / 25
    trajectory = []
    original_step = trainer.joint_scheduler.step

    def record_step(*args, **kwargs):      # the lr the batch that just ran was trained with
        trajectory.append([g["lr"] for g in groups])
        original_step(*args, **kwargs)

    trainer.joint_scheduler.step = record_step
    for epoch in range(cfg.epochs):
        trainer.train_epoch(epoch)
    assert len(trajectory) == cfg.epochs * steps_per_epoch                # stepped once per batch
    trunk = [lrs[0] for lrs in trajectory]
    peak_step = trunk.index(max(trunk))
    assert peak_step == round(0.25 * len(trunk)) - 1                     # the ramp ends at step pct * total - 1
    assert trajectory[peak_step] == pytest.approx(peaks)
    assert all(a <= b + 1e-12 for a, b in zip(trunk[:peak_step], trunk[1:peak_step + 1]))   # up, then
    assert all(a >= b - 1e-12 for a, b in zip(trunk[peak_step:], trunk[peak_step + 1:]))   # down
    assert trunk[-1] == pytest.approx(2e-3 / 25 / 1e4)                   # annealed to peak / 25 / 1e4


@pytest.mark.parametrize("total_steps, pct_start", [(4, 0.25), (2, 0.5), (10, 0.1), (1, 0.25), (3, 0.25)])
def test_onecycle_runs_through_a_schedule_whose_ramp_would_be_one_step(tiny, total_steps, pct_start):
    # OneCycleLR divided by zero for a ramp of exactly one step: a small data set with a OneCycle preset failed so.
    cfg = tiny(epochs=1, warm_epochs=0, joint_optimizer="adamw-onecycle", onecycle_pct_start=pct_start)
    weights = torch.nn.Parameter(torch.zeros(1))
    optimizer, scheduler, per_batch = make_joint_optimizer(cfg, [{"params": [weights], "lr": 1e-2}], total_steps)
    assert per_batch
    rates = []
    for _ in range(total_steps):
        optimizer.step()
        rates.append(scheduler.get_last_lr()[0])
        scheduler.step()
    assert all(0 < rate <= 1e-2 for rate in rates)
    assert ramp_share(0.25, 8) == 0.25 and ramp_share(0.25, 4) == 0.5


@pytest.mark.parametrize("warm_epochs", [3, 4])
def test_onecycle_without_a_joint_epoch_is_refused_before_training(tiny, warm_epochs):
    # OneCycleLR is stepped by the joint batches only: with none it would never leave its first learning rate.
    with pytest.raises(TrainerError, match=r"adamw-onecycle needs at least one joint epoch \(warm_epochs < epochs\)"):
        tiny(epochs=3, warm_epochs=warm_epochs, joint_optimizer="adamw-onecycle").validate()
    tiny(epochs=3, warm_epochs=warm_epochs).validate()          # the reference's StepLR has nothing to break


def test_onecycle_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny, tmp_path):
    cfg = _onecycle(tiny, augment=True, augmentation="crop-flip")
    straight, resumed_trainer = straight_and_resumed(cfg, tmp_path)
    assert resumed_trainer.joint_scheduler.last_epoch == 2 * len(resumed_trainer.loaders.train)
    resumed = resumed_trainer.run().model.state_dict()
    for name in straight:
        assert torch.allclose(straight[name].float(), resumed[name].float(), atol=1e-6), name
    # OneCycle's trajectory depends on the run's length: resuming with other epochs is refused
    longer = _quiet(cfg.replace(epochs=6), tmp_path / "resumed")
    with pytest.raises(TrainerError, match="different schedule") as refused:
        longer.resume()
    # ... saying why and what would resume it.
    assert "a one-cycle learning rate is fixed by its run's length" in str(refused.value)
    assert f"resume with --epochs {cfg.epochs} --warm-epochs {cfg.warm_epochs}, or train in a new run folder" in str(refused.value)
    # Another optimizer: named, with the checkpoint's own to resume with.
    other = _quiet(cfg.replace(joint_optimizer="adam-step"), tmp_path / "resumed")
    with pytest.raises(TrainerError, match="--joint-optimizer adam-step is asked for") as refused:
        other.resume()
    assert (f"resume with --epochs {cfg.epochs} --warm-epochs {cfg.warm_epochs} --joint-optimizer adamw-onecycle, or train "
            "in a new run folder") in str(refused.value)
    # Nor with JPEGs decoded another way than the checkpoint's epochs decoded them (the bundle says one way).
    full = _quiet(cfg.replace(jpeg_draft=not cfg.jpeg_draft), tmp_path / "resumed")
    with pytest.raises(TrainerError, match="resume with --"):
        full.resume()


def test_push_every_zero_pushes_once_after_the_last_epoch_and_no_warm_up(tiny, tmp_path):
    trainer = _quiet(_onecycle(tiny, epochs=3), tmp_path)
    assert [trainer.phase(e) for e in range(3)] == ["joint"] * 3
    assert [trainer.push_due(e) for e in range(3)] == [False, False, True]
    history = trainer.run().history
    assert [m["epoch"] for m in history if m.get("pushed")] == [3]
    assert "test_accuracy_before_push" in history[-1] and "test_accuracy_before_push" not in history[0]


def test_clamp_keeps_own_class_weights_and_makes_wrong_class_weights_non_positive():
    classes = torch.tensor([0, 0, 1, 2])
    weight = torch.tensor([[2.0, -1.0, 0.5, -0.2], [0.3, 0.7, 1.5, 0.0], [-0.4, 0.9, 0.1, 3.0]])
    clamp_wrong_class_weights(weight, classes)
    assert torch.equal(weight, torch.tensor([[2.0, -1.0, 0.0, -0.2], [0.0, 0.0, 1.5, 0.0], [-0.4, 0.0, 0.0, 3.0]]))


def test_clamped_last_layer_leaves_no_positive_wrong_class_weight(tiny, tmp_path):
    trainer = _quiet(tiny(last_layer_iterations=5, last_layer_clamp=True, last_layer_lr=5e-2,
                          last_layer_batch_size=4), tmp_path)
    trainer.push(0)
    with torch.no_grad():       # start from every weight positive: the clamp must undo it and keep it undone
        trainer.model.last_layer.weight.fill_(0.5)
    trainer.train_last_layer()
    weight = trainer.model.last_layer.weight.detach()
    own = torch.nn.functional.one_hot(trainer.model.prototype_classes, weight.shape[0]).t().bool()
    assert (weight[~own] <= 0).all()
    assert (weight[own] != 0.5).any()                  # and the layer did train
    # without the clamp the same start keeps positive wrong-class weights (the test above is not vacuous)
    unclamped = _quiet(tiny(last_layer_iterations=5, last_layer_lr=5e-2, last_layer_batch_size=4), tmp_path / "u")
    unclamped.push(0)
    with torch.no_grad():
        unclamped.model.last_layer.weight.fill_(0.5)
    unclamped.train_last_layer()
    assert (unclamped.model.last_layer.weight.detach()[~own] > 0).any()


def test_unknown_recipe_options_are_one_line_errors(tmp_path, capsys):
    for option, value in (("--augmentation", "rotate"), ("--joint-optimizer", "sgd"),
                          ("--onecycle-pct-start", "1.5")):
        code = main(["train", *TINY_ARGS, option, value, "--models", str(tmp_path / "m")])
        _one_line_error(capsys, code, option.lstrip("-").split("-")[0])


def test_baseline_in_a_separate_process_goes_into_the_manifest(tmp_path, capsys):
    models, result = str(tmp_path / "models"), str(tmp_path / "baseline.json")
    recipe = [*TINY_ARGS, "--warm-epochs", "0", "--joint-optimizer", "adamw-onecycle", "--push-every", "0"]
    assert main(["train", *recipe, "--baseline-only", result]) == 0
    written = json.loads(open(result).read())
    assert 0 <= written["testAccuracy"] <= 1 and written["seconds"] > 0 and len(written["history"]) == 2
    assert not os.path.isdir(models)                             # the baseline alone publishes nothing
    assert main(["train", *recipe, "--models", models, "--name", "p", "--run-dir", str(tmp_path / "run"),
                 "--baseline-result", result]) == 0
    out = capsys.readouterr().out
    assert "baseline 1/2" not in out                              # not trained again in this process
    [version] = _versions(models, "p")
    training = json.loads((tmp_path / "models" / "p" / version / "model.json").read_text())["training"]
    assert training["baseline"]["testAccuracy"] == written["testAccuracy"]
    assert training["baseline"]["seconds"] == written["seconds"]
    assert training["seconds"] > 0 and training["config"]["joint_optimizer"] == "adamw-onecycle"
    # a baseline of another recipe is refused, with the reason
    code = main(["train", *recipe, "--epochs", "3", "--models", models, "--name", "p",
                 "--run-dir", str(tmp_path / "run3"), "--baseline-result", result])
    _one_line_error(capsys, code, "different epochs")


def test_a_baseline_result_not_there_yet_is_trained_by_a_child_process(tmp_path, capsys):
    models, result = str(tmp_path / "models"), str(tmp_path / "later" / "baseline.json")
    recipe = [*TINY_ARGS, "--threads", "1"]
    assert main(["train", *recipe, "--models", models, "--name", "p", "--run-dir", str(tmp_path / "run"),
                 "--baseline-result", result]) == 0
    assert "training the baseline in a parallel process" in capsys.readouterr().out
    assert os.listdir(tmp_path / "later") == ["baseline.json"]      # written atomically: no temporary file left
    written = json.loads(open(result).read())
    [version] = _versions(models, "p")
    training = json.loads((tmp_path / "models" / "p" / version / "model.json").read_text())["training"]
    assert training["baseline"] == written and written["process"] == "separate (--baseline-only)"
    # the child trained exactly the baseline a --baseline-only run of the recipe trains
    assert main(["train", *recipe, "--baseline-only", str(tmp_path / "here.json")]) == 0
    assert json.loads((tmp_path / "here.json").read_text())["history"] == written["history"]


def test_export_push_publishes_a_checkpoint_of_an_unfinished_run(tiny, tmp_path, capsys):
    cfg = _onecycle(tiny, epochs=3, last_layer_clamp=True)
    interrupt_after(cfg, tmp_path / "run", epochs_done=1)
    checkpoint = str(tmp_path / "run" / "checkpoints" / "epoch-001.pt")
    models = str(tmp_path / "models")
    code = main(["export", "--checkpoint", checkpoint, "--models", models, "--name", "cut", "--no-progress"])
    _one_line_error(capsys, code, "unpushed", "--push")
    assert main(["export", "--checkpoint", checkpoint, "--push", "--models", models, "--name", "cut",
                 "--no-progress"]) == 0
    [version] = _versions(models, "cut")
    manifest = json.loads((tmp_path / "models" / "cut" / version / "model.json").read_text())
    assert len(manifest["prototypes"]) == 6                         # every prototype pushed onto a real patch
    assert all(p["source"]["split"] == "train" for p in manifest["prototypes"])
    assert manifest["training"]["epochsCompleted"] == 1 and manifest["training"]["epochs"] == 3
    weight = torch.tensor(manifest["lastLayer"]["weights"])
    own = torch.nn.functional.one_hot(torch.tensor([p["classIndex"] for p in manifest["prototypes"]]), 3).t().bool()
    assert (weight[~own] <= 0).all()                                # the recipe's clamp held in the export too
    # The push was followed by its last-layer stage, as the run's own last push would have been: the checkpoint's
    # last layer (never trained: the epochs do not change it) was fitted to the pushed prototypes.
    from protopnet_trainer.model import last_layer_init
    classes = torch.tensor([p["classIndex"] for p in manifest["prototypes"]])
    assert weight.shape == (3, 6) and not torch.allclose(weight, last_layer_init(classes, 3), rtol=0, atol=1e-6)


def test_training_noise_has_a_sigma_per_image_up_to_the_maximum_and_stays_in_range():
    from protopnet_trainer.augmentation import add_training_noise
    grey = torch.full((200, 3, 16, 16), 0.5)
    assert torch.equal(add_training_noise(grey, 0.0), grey)
    torch.manual_seed(0)
    noisy = add_training_noise(grey, 0.2)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    sigmas = (noisy - grey).flatten(1).std(dim=1)
    assert sigmas.max() < 0.2 * 1.1 and sigmas.min() < 0.02          # drawn from [0, 0.2]: some nearly clean
    assert 0.08 < float(sigmas.mean()) < 0.12                         # uniform: mean sigma about 0.1
    torch.manual_seed(0)
    assert torch.equal(add_training_noise(grey, 0.2), noisy)          # the trainer's per-epoch seed fixes it


def test_noise_augmentation_changes_training_and_stays_reproducible(tiny, tmp_path):
    clean = _quiet(tiny(epochs=2), tmp_path / "clean").run().model.state_dict()
    noisy = _quiet(tiny(epochs=2, noise_augment=0.3), tmp_path / "noisy").run().model.state_dict()
    again = _quiet(tiny(epochs=2, noise_augment=0.3), tmp_path / "again").run().model.state_dict()
    assert not torch.equal(clean["prototypes"], noisy["prototypes"])
    assert all(torch.equal(noisy[key], again[key]) for key in noisy)
    with pytest.raises(TrainerError, match="noise-augment"):
        tiny(noise_augment=1.5).validate()


def test_a_separate_baseline_must_match_every_recipe_extra():
    from protopnet_trainer.config import preset_config
    from protopnet_trainer.manifest import baseline_mismatches, recipe_extras
    cfg = preset_config("smoke").replace(noise_augment=0.2, contrast="auto", calibration_holdout=0, polarity_augment=0.0)
    assert recipe_extras(cfg) == {"noiseAugment": 0.2, "contrast": "auto"}      # only what is on
    block = {"backbone": cfg.backbone, "epochs": cfg.epochs, "seed": cfg.seed, "augmentation": cfg.augmentation,
             "jointOptimizer": cfg.joint_optimizer, **recipe_extras(cfg)}
    assert baseline_mismatches(block, cfg) == []
    assert baseline_mismatches(block, cfg.replace(noise_augment=0.0)) == ["noiseAugment"]
    assert baseline_mismatches(block, cfg.replace(contrast="none", calibration_holdout=10)) == ["contrast",
                                                                                             "calibrationHoldout"]
    assert baseline_mismatches(block, cfg.replace(polarity_augment=0.5)) == ["polarityAugment"]


def test_a_presets_calibration_holdout_stays_with_its_own_data_set():
    from protopnet_trainer.cli import build_parser, config_from_args

    def holdout(*words):
        return config_from_args(build_parser().parse_args(["train", "--preset", "smoke", *words])).calibration_holdout

    assert holdout() == 400
    assert holdout("--dataset", "synthetic") == 400
    # On a user's image folder smoke's 400 would be arbitrary, and more than a small folder holds.
    assert holdout("--dataset", "imagefolder", "--data", "photos") == 0
    assert holdout("--dataset", "imagefolder", "--data", "photos", "--calibration-holdout", "12") == 12


def test_the_photo_presets_crop_only_cub200_so_their_photos_elsewhere_decode_at_the_draft_scale():
    from protopnet_trainer.cli import build_parser, config_from_args

    def config(*words):
        return config_from_args(build_parser().parse_args(["train", *words]))

    on_cub = config("--preset", "cub200-resnet18")
    assert on_cub.crop_to_box and on_cub.jpeg_draft_size is None        # the crop, not the file, is resized
    # The photo recipe on the user's own folder: no boxes to crop to, so the JPEGs decode at the reduced DCT scale,
    # and the bundle tells the service to decode uploads the same way.
    on_folder = config("--preset", "cub200-resnet18", "--dataset", "imagefolder", "--data", "photos")
    assert not on_folder.crop_to_box and on_folder.jpeg_draft_size == (224, 224)
    with pytest.raises(TrainerError, match="--crop-to-box .* needs --dataset cub200"):
        config("--preset", "cub200-resnet18", "--dataset", "imagefolder", "--data", "photos", "--crop-to-box")
    with pytest.raises(TrainerError, match="needs --dataset cub200"):
        config("--preset", "smoke", "--crop-to-box")
    # A run folder from before: its preset's crop left on for a folder cropped nothing but decoded JPEGs in full, and
    # its checkpoint says so (a resume must then decode in full too, and its bundle says so).
    before = TrainConfig.from_dict({**on_cub.to_dict(), "dataset": "imagefolder", "data": "photos"})
    assert not before.crop_to_box and before.jpeg_draft_size is None
    assert TrainConfig.from_dict(on_cub.to_dict()).crop_to_box               # CUB's own crop is kept


def test_a_recipe_cut_short_or_a_calibration_too_small_is_warned_of_before_training():
    from protopnet_trainer.pipeline import recipe_warnings
    photo = preset_config("cub200-resnet18")
    assert recipe_warnings(photo.replace(calibration_holdout=300)) == []
    # Cut to 2 epochs, the photo recipe's 5 warm-up epochs leave the trunk untrained (a walkthrough got chance level).
    [warm] = recipe_warnings(photo.replace(epochs=2, calibration_holdout=300))
    assert warm.startswith("all 2 epochs are warm-up epochs (--warm-epochs 5)")
    [warm] = recipe_warnings(photo.replace(epochs=1, calibration_holdout=300))   # not "all 1 epochs are ..."
    assert warm.startswith("the one epoch is a warm-up epoch (--warm-epochs 5)")
    assert recipe_warnings(photo.replace(epochs=6, calibration_holdout=300)) == []
    # Three held-out images cannot place a 1 % threshold: the lowest it can flag is one of them.
    [small] = recipe_warnings(photo.replace(calibration_holdout=3))
    assert small.startswith("--calibration-holdout 3 is too few images") and "hold out 100 or more" in small
    assert recipe_warnings(photo.replace(calibration_holdout=0))[0].startswith("no training images are held out")


def test_a_model_near_chance_and_explanations_that_carry_nothing_are_warned_of():
    from protopnet_trainer.pipeline import chance_warning
    from protopnet_trainer.scorecard import scorecard_warnings
    # The walkthrough's photo model: 3 classes at 33 %.
    assert chance_warning(1 / 3, 3).startswith("test accuracy 33.3% is near chance (33.3% for 3 classes)")
    assert chance_warning(0.6, 3) is None and chance_warning(0.012, 200) is None
    assert chance_warning(0.006, 200) is not None
    block = {"deletion": {"ratio": -3.045}, "prototypes": [{}] * 30, "backgroundPrototypes": 30}
    deletion, background = scorecard_warnings(block)
    assert "deletion ratio -3.045" in deletion and background.startswith("30 of 30 prototypes are patches of background")
    assert scorecard_warnings({"deletion": {"ratio": 2.5}, "prototypes": [{}] * 100, "backgroundPrototypes": 3}) == []
    assert scorecard_warnings({"deletion": {"ratio": None}, "prototypes": [], "backgroundPrototypes": 0}) == []


def test_crop_flip_without_flip_only_crops():
    from protopnet_trainer.augmentation import make_augmentation
    from protopnet_trainer.config import TrainConfig
    cfg = TrainConfig(augment=True, augmentation="crop-flip", crop_padding=2, flip=False, image_size=16)
    assert [type(t).__name__ for t in make_augmentation(cfg).transforms] == ["RandomCrop"]


def test_paper_rotation_turns_both_ways():
    from protopnet_trainer.augmentation import make_augmentation
    from protopnet_trainer.config import TrainConfig
    choice, _ = make_augmentation(TrainConfig(augment=True, image_size=16)).transforms
    assert choice.transforms[0].degrees == [-15.0, 15.0]


def test_a_one_cycle_schedule_starts_after_the_warm_up(tiny, tmp_path):
    """With warm-up epochs, the one-cycle schedule spans the joint epochs alone: warm-up batches do not step it, so
    the first joint batch starts the cycle and the last ends it (OneCycleLR refuses a step past its end)."""
    trainer = _quiet(_onecycle(tiny, epochs=3, warm_epochs=1), tmp_path)
    start = [group["lr"] for group in trainer.joint_optimizer.param_groups]
    trainer.train_epoch(0)
    assert [group["lr"] for group in trainer.joint_optimizer.param_groups] == start
    assert len(trainer.run().history) == 3
