"""Training configuration: one flat, JSON-serialisable dataclass plus the named presets."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .errors import TrainerError

# The bundle's contrast step (contrast.py); spelled here, where torch is not imported, for the CLI and the job options.
CONTRAST_MODES = ("none", "auto")

AUGMENTATIONS = ("paper", "crop-flip", "none")
ADD_ONS = ("regular", "bottleneck")
SIMILARITIES = ("log", "linear")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")   # PIL's names, as model.json's input.interpolation
MIN_IMAGE_SIZE = 8   # the smallest --image-size, on the command line as in a job
GENERATED_DATASETS = ("synthetic", "synthetic-parts")   # drawn by the trainer from its seed: no --data folder
# The files an image folder's class folder is read for (any case); the service counts a data folder's images by the
# same names (GET /training/data, from `options --json`).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
JOINT_OPTIMIZERS = ("adam-step", "adamw-onecycle")


@dataclass
class TrainConfig:
    # data
    dataset: str = "fashion-mnist"          # one of datasets.DATASETS
    data: Optional[str] = None               # dataset folder (default per dataset)
    image_size: int = 28                     # model input is image_size x image_size
    crop_to_box: bool = False                # cub200: crop every image to its bird box (the paper's setting)
    augment: bool = True                     # online augmentation of the training set (off: --no-augment)
    augmentation: str = "paper"              # paper: rotation / skew-shear / flip | crop-flip: padded random crop + flip
    crop_padding: int = 2                    # crop-flip: pixels of black padding before the random crop
    rotation_degrees: float = 15.0
    shear_degrees: float = 10.0
    skew: float = 0.2                        # perspective distortion scale
    flip: bool = True
    polarity_augment: float = 0.0            # share of training images re-rendered as product shots (dark on light,
                                             # tinted, scaled, shifted; product_shots.PolarityAugment); 0: off
    noise_augment: float = 0.0               # each training image gets Gaussian noise of a sigma drawn uniformly
                                             # from [0, noise_augment] (pixels in [0, 1]; augmentation.add_training_noise)
    interpolation: str = "bilinear"         # resize interpolation (recorded in the manifest)
    contrast: str = "none"                   # auto: contrast.py's polarity and contrast normalisation of every
                                             # image, declared in the manifest and applied by the service too
    skip_unreadable_images: bool = False     # image files that do not decode are left out (with a warning naming
                                             # them) rather than stop the run before it trains (image_check.py)
    jpeg_draft: bool = True                  # decode a JPEG at the smallest libjpeg DCT scale (1/2, 1/4, 1/8) that
                                             # keeps it at least image_size (image_files.jpeg_draft_scale), as the service
                                             # then does for uploads (the manifest's input.jpegDraft)
    synthetic_classes: int = 4
    synthetic_channels: int = 3
    synthetic_train_per_class: int = 60
    synthetic_test_per_class: int = 20
    train_limit: Optional[int] = None        # use only the first N training items (quick experiments)
    test_limit: Optional[int] = None
    calibration_holdout: int = 0             # the last N training images are held out of training and calibrate
                                             # the unfamiliarity threshold (unfamiliarity.py); 0: no calibration
    unfamiliar_share: float = 0.01           # share of the held-out images the threshold flags as unfamiliar
    # model
    backbone: str = "small-cnn"
    trunk_weights: Optional[str] = None      # file with a trunk state dict, "imagenet-onnx", "torchvision" or None
    small_cnn_widths: List[int] = field(default_factory=lambda: [32, 64, 128])
    small_cnn_convs_per_stage: int = 2
    small_cnn_pools: int = 2                 # 28 px / 2**2 = 7x7 feature map
    add_on: str = "regular"                  # regular | bottleneck
    prototype_dim: int = 128
    prototypes_per_class: int = 10
    background_aware: bool = False           # cluster cost and push only on feature cells whose patch is not mostly
                                             # the border's colour (background.py), so no prototype is background
    similarity: str = "log"                  # log | linear
    epsilon: float = 1e-4
    # schedule
    epochs: int = 30
    warm_epochs: int = 5
    push_start: int = 10
    push_every: int = 10                     # 0: push once, after the last epoch only
    last_layer_iterations: int = 20          # last-layer epochs after each push (each `epoch_copies` passes)
    epoch_copies: int = 1                    # passes over the training set per epoch: the reference trains on 30
                                             # offline-augmented copies of each image, so one of its epochs is 30
                                             # passes of online augmentation (and the schedule counts those epochs)
    joint_lr_step: int = 5
    joint_lr_gamma: float = 0.1
    warm_lr_add_on: float = 3e-3
    warm_lr_prototypes: float = 3e-3
    joint_lr_trunk: float = 1e-4
    joint_lr_add_on: float = 3e-3
    joint_lr_prototypes: float = 3e-3
    weight_decay: float = 1e-3               # trunk and add-on (prototypes never decay)
    joint_optimizer: str = "adam-step"       # adam-step: Adam + StepLR per epoch (the reference) |
                                             # adamw-onecycle: AdamW + OneCycleLR stepped per batch
    onecycle_pct_start: float = 0.25         # adamw-onecycle: share of the joint steps that ramp the lr up
    last_layer_lr: float = 1e-4
    last_layer_batch_size: int = 0           # 0: the training batch size
    last_layer_clamp: bool = False           # clamp wrong-class last-layer weights to <= 0 after every step
    # losses
    coef_crs_ent: float = 1.0
    coef_clst: float = 0.8
    coef_sep: float = -0.08
    coef_l1: float = 1e-4
    # pruning
    prune: bool = False
    prune_k: int = 6
    prune_threshold: int = 3
    # batches and machine
    batch_size: int = 80
    test_batch_size: int = 100
    push_batch_size: int = 75
    num_workers: int = 0
    threads: int = 0                         # torch threads; 0 = leave torch's default
    seed: int = 1
    device: str = "auto"
    # black-box baseline: same trunk + global average pooling + linear, same budget and augmentation
    with_baseline: bool = False
    baseline_lr_head: float = 3e-3

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        # A configuration written before jpeg_draft existed decoded every JPEG in full.
        fields = {"jpeg_draft": False, **{k: v for k, v in values.items() if k in known}}
        if fields.get("crop_to_box") and fields.get("dataset", cls.dataset) != "cub200":
            # Written before the crop was held to CUB-200: it cropped nothing, but decoded every JPEG in full.
            fields.update(crop_to_box=False, jpeg_draft=False)
        return cls(**fields)

    @property
    def decodes_jpeg_draft(self) -> bool:
        """Whether JPEG files are decoded at a reduced DCT scale (the bundle's input.jpegDraft). CUB's crop to the bird
        box decodes in full: the crop, not the file, is what gets resized to the input."""
        return self.jpeg_draft and not self.crop_to_box

    @property
    def jpeg_draft_size(self) -> Optional[Tuple[int, int]]:
        """The (width, height) JPEG files are decoded for at a reduced DCT scale, or None for full decoding."""
        return (self.image_size, self.image_size) if self.decodes_jpeg_draft else None

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @property
    def last_layer_passes(self) -> int:
        """Passes over the cached scores in one last-layer stage: its epochs, each `epoch_copies` passes as a training
        epoch is."""
        return self.last_layer_iterations * self.epoch_copies

    def validate(self) -> None:
        if self.epochs < 1:
            raise TrainerError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.image_size < MIN_IMAGE_SIZE:   # checked here, before the job ranges, so 0 is not "at least 1"
            raise TrainerError(f"--image-size must be at least {MIN_IMAGE_SIZE} (got {self.image_size})")
        for option, value in (("--batch-size", self.batch_size),
                              ("--test-batch-size", self.test_batch_size), ("--push-batch-size", self.push_batch_size),
                              ("--prototypes-per-class", self.prototypes_per_class),
                              ("--prototype-dim", self.prototype_dim)):
            if value < 1:
                raise TrainerError(f"{option} must be at least 1 (got {value})")
        if self.epoch_copies < 1:
            raise TrainerError(f"--epoch-copies must be at least 1 (got {self.epoch_copies})")
        if self.warm_epochs < 0 or self.push_start < 0 or self.push_every < 0:
            raise TrainerError("schedule: warm_epochs, push_start and push_every must be >= 0")
        if self.warm_epochs >= self.epochs and self.joint_optimizer == "adamw-onecycle":
            raise TrainerError("adamw-onecycle needs at least one joint epoch (warm_epochs < epochs)")
        if self.augmentation not in AUGMENTATIONS:
            raise TrainerError(f"unknown augmentation '{self.augmentation}' (use {', '.join(AUGMENTATIONS)})")
        if not 0.0 <= self.polarity_augment <= 1.0:
            raise TrainerError(f"--polarity-augment must be between 0 and 1 (got {self.polarity_augment})")
        if not 0.0 <= self.noise_augment <= 1.0:
            raise TrainerError(f"--noise-augment must be between 0 and 1 (got {self.noise_augment})")
        if self.prune_k < 1 or not 1 <= self.prune_threshold <= self.prune_k:
            raise TrainerError(f"pruning needs --prune-k at least 1 and --prune-threshold from 1 to --prune-k "
                               f"(got k={self.prune_k}, threshold={self.prune_threshold})")
        if self.calibration_holdout < 0:
            raise TrainerError("--calibration-holdout must be >= 0")
        if not 0.0 < self.unfamiliar_share < 1.0:
            raise TrainerError(f"--unfamiliar-share must be between 0 and 1 (got {self.unfamiliar_share})")
        if self.crop_padding < 0:
            raise TrainerError("--crop-padding must be >= 0")
        if self.joint_optimizer not in JOINT_OPTIMIZERS:
            raise TrainerError(f"unknown joint optimizer '{self.joint_optimizer}' "
                               f"(use {', '.join(JOINT_OPTIMIZERS)})")
        if not 0.0 < self.onecycle_pct_start < 1.0:
            raise TrainerError(f"--onecycle-pct-start must be between 0 and 1 (got {self.onecycle_pct_start})")
        if self.last_layer_batch_size < 0:
            raise TrainerError("--last-layer-batch-size must be >= 0")
        if self.similarity not in SIMILARITIES:
            raise TrainerError(f"unknown similarity '{self.similarity}' (use {' or '.join(SIMILARITIES)})")
        if self.add_on not in ADD_ONS:
            raise TrainerError(f"unknown add-on type '{self.add_on}' (use {' or '.join(ADD_ONS)})")
        if self.prototypes_per_class < 1:
            raise TrainerError("--prototypes-per-class must be at least 1")
        if self.contrast not in CONTRAST_MODES:
            raise TrainerError(f"unknown contrast mode '{self.contrast}' (use {', '.join(CONTRAST_MODES)})")
        if self.interpolation not in INTERPOLATIONS:
            raise TrainerError(f"unknown interpolation '{self.interpolation}' (use {', '.join(INTERPOLATIONS)})")


PRESETS: Dict[str, Dict[str, Any]] = {
    # A colour model on the synthetic data set in well under a minute on 2 CPU cores.
    "smoke": dict(
        dataset="synthetic", image_size=32, synthetic_classes=4, synthetic_channels=3,
        synthetic_train_per_class=300, synthetic_test_per_class=50,
        calibration_holdout=400,   # the last 100 per class of 300: training keeps the same 800 images as before
        backbone="small-cnn", small_cnn_widths=[16, 32], small_cnn_convs_per_stage=1, small_cnn_pools=2,
        prototype_dim=32, prototypes_per_class=2, augment=False,
        # 100 last-layer passes of 25 steps: with 10, the push after epoch 11 left test accuracy at 0.85 (0.945 with
        # 100; at lr 1e-4 a weight moves at most 0.025 in 10 passes), and the run ended at 0.95 against 0.965.
        epochs=20, warm_epochs=2, push_start=10, push_every=5, last_layer_iterations=100,
        joint_lr_trunk=1e-3, joint_lr_step=8, batch_size=32, test_batch_size=100, push_batch_size=100, with_baseline=True,
    ),
    # Parts that define classes (synthetic_parts.py): 6 classes of 64 px RGB images, each two of 6 shared parts among
    # distractors. Recipe measured against the scorecard's targets (README, "Interpretability scorecard"):
    # - a 2-stage CNN (16, 32 then 32 channels after 2 max-pools): a 16x16 feature map of 4 px cells whose receptive
    #   field (18 px) is about a part's size (10-18 px), so a prototype's similarity peaks on the part itself; the
    #   4-stage trunk before (8x8 map, 38 px field) matched cells beside the parts (pointing game 44 %);
    # - one prototype per class: with two, the class's top prototype alternated between its two parts from image to
    #   image, and noise flipped it (stability 80 %); one prototype makes the top prototype the class's own;
    # - no separation cost: every part belongs to two classes, so pushing prototypes away from other classes' parts
    #   drove them onto background (10 of 12 background prototypes with -0.08);
    # - a push after epoch 5 whose last layer (negative weights for the neighbouring class's part) breaks the tie
    #   between the two classes that share a prototype's part; the fixed initial layer cannot (train accuracy stuck
    #   near 70 %); then 15 more joint epochs and the final push;
    # - Gaussian noise of sigma up to 0.25 on training images, so the 0.2 of the stability measure is familiar.
    # Seed 1: pointing game 100 %, consistency 100 %, noise 95.7 %, JPEG 96.7 %, deletion ratio 77.0, test accuracy
    # 99.33 %; seed 2 meets the targets too (noise 94.3 %), seed 3 does not (two prototypes on no one part; README).
    # 20 epochs of 900 images at batch 16 train in about 40 s on one thread (1.5 s per epoch); one thread, because on
    # this shared 2-core machine two threads beside another busy process ran at 20 images/s against 650 with one.
    "synthetic-parts": dict(
        dataset="synthetic-parts", image_size=64, synthetic_classes=6, synthetic_channels=3,
        synthetic_train_per_class=150, synthetic_test_per_class=50,
        backbone="small-cnn", small_cnn_widths=[16, 32, 32], small_cnn_convs_per_stage=1, small_cnn_pools=2,
        prototype_dim=32, prototypes_per_class=1, augment=False, noise_augment=0.25,
        epochs=20, warm_epochs=0, push_start=4, push_every=15, last_layer_iterations=10,
        joint_optimizer="adamw-onecycle", onecycle_pct_start=0.25, joint_lr_trunk=5e-3, joint_lr_add_on=3e-3,
        joint_lr_prototypes=3e-3, weight_decay=1e-3, last_layer_lr=1e-3, last_layer_clamp=True, coef_sep=0.0,
        batch_size=16, test_batch_size=100, push_batch_size=100, threads=1, with_baseline=False,
    ),
    # The default model's recipe (grey Fashion-MNIST, 28x28 -> 7x7 feature map), as measured on it:
    # trunk 32,32,M,64,64,M,128,128 with BN trained from scratch (so no warm-up: the OneCycle ramp replaces it),
    # padded-crop + flip augmentation, AdamW + OneCycle per batch, one push after the last epoch, and a last
    # layer whose wrong-class weights stay <= 0. Cluster and separation costs at a quarter of the reference
    # (0.2, -0.02): on one trunk, 3 joint epochs gave 92.85% test against 92.28% with 0.8/-0.08, and the
    # prototypes' mean squared distance to their nearest own-class patch before the push was 2.5 against 4.4.
    # 50 epochs on 2 threads fit the 60-minute budget (about 58 s per epoch on this 2-core machine) and gave 94.19%
    # against the baseline's 94.50% in 3,003 s; 30 epochs on 1 thread had given 93.82% against 94.37%.
    # The committed default model is that run refit by scripts/refit_default_model.py (contrast step, background-aware
    # push, last layer, unfamiliarity calibration): model.json `training.refit`. A new run that wants the same serves
    # with --contrast auto --background-aware --calibration-holdout 3000.
    "fashion-mnist": dict(
        dataset="fashion-mnist", image_size=28, backbone="small-cnn",
        small_cnn_widths=[32, 64, 128], small_cnn_convs_per_stage=2, small_cnn_pools=2,
        add_on="regular", prototype_dim=64, prototypes_per_class=10, similarity="log",
        augment=True, augmentation="crop-flip", crop_padding=2, flip=True,
        epochs=50, warm_epochs=0, push_start=0, push_every=0,
        joint_optimizer="adamw-onecycle", onecycle_pct_start=0.25, coef_clst=0.2, coef_sep=-0.02,
        joint_lr_trunk=2e-3, joint_lr_add_on=3e-3, joint_lr_prototypes=3e-3, weight_decay=0.05,
        last_layer_iterations=20, last_layer_lr=1e-3, last_layer_batch_size=512, last_layer_clamp=True,
        batch_size=128, test_batch_size=500, push_batch_size=500, baseline_lr_head=3e-3,
        threads=2, with_baseline=True,
    ),
    # The paper's recipe on cropped CUB-200-2011. Its epochs are the reference's: each is 30 passes of online
    # augmentation over the training set, as the reference's epoch is one pass over 30 augmented copies of each image
    # (5,994 images at batch 80: 2,250 steps an epoch, not 75), and so are its last-layer epochs (about 45,000 steps
    # after each push, where 20 passes of 75 steps cannot move a weight by more than 20 x 75 x lr = 0.15).
    "cub200-resnet34": dict(
        dataset="cub200", image_size=224, crop_to_box=True, backbone="resnet34", trunk_weights="torchvision",
        add_on="regular", prototype_dim=128, prototypes_per_class=10, augment=True, epoch_copies=30,
        epochs=30, warm_epochs=5, push_start=10, push_every=10, last_layer_iterations=20,
        batch_size=80, test_batch_size=100, push_batch_size=75, with_baseline=True,
    ),
    # The paper's recipe with the one ImageNet trunk available offline: ResNet-18 from the NuGet ONNX file.
    "cub200-resnet18": dict(
        dataset="cub200", image_size=224, crop_to_box=True, backbone="resnet18", trunk_weights="imagenet-onnx",
        add_on="regular", prototype_dim=128, prototypes_per_class=10, augment=True, epoch_copies=30,
        epochs=30, warm_epochs=5, push_start=10, push_every=10, last_layer_iterations=20,
        batch_size=80, test_batch_size=100, push_batch_size=75, with_baseline=True,
    ),
}


# What each preset is for, in a line a person choosing one reads (options --json; the web page's Training tab).
PRESET_SUMMARIES: Dict[str, str] = {
    "smoke": "A tiny colour model on synthetic shapes (32x32, a small CNN): well under a minute on 2 CPU cores, to try "
             "the pipeline.",
    "synthetic-parts": "Synthetic images whose classes are made of parts (64x64, a small CNN, one prototype per class): "
                       "the interpretability scorecard's data; about a minute.",
    "fashion-mnist": "The default model's recipe: grey 28x28 clothing (Fashion-MNIST), a small CNN trained from scratch; "
                     "about 1.5 hours on 2 CPU cores with its baseline.",
    "cub200-resnet18": "The paper's recipe for photos: ResNet-18 from ImageNet weights at 224x224, 10 prototypes per "
                       "class, 30 augmented passes over the training images per epoch; work for a GPU (hours on a CPU "
                       "even for a few hundred photos).",
    "cub200-resnet34": "The paper's recipe with ResNet-34 from torchvision's ImageNet weights, which must already be in "
                       "the trainer's torch cache (it never downloads); work for a GPU.",
}


def preset_config(name: Optional[str]) -> TrainConfig:
    if name is None:
        return TrainConfig()
    if name not in PRESETS:
        raise TrainerError(f"unknown preset '{name}' (choose from {', '.join(sorted(PRESETS))})")
    return TrainConfig(**PRESETS[name])
