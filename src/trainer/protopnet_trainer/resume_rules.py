"""What a resumed run must share with the checkpoint it resumes: every setting that shapes the network or what its
weights compute (MODEL_SETTINGS); a difference is refused in one line that names the options to pass."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from .config import GENERATED_DATASETS, TrainConfig
from .errors import TrainerError


def _small_cnn(cfg: TrainConfig) -> bool:
    return cfg.backbone == "small-cnn"


def _synthetic(cfg: TrainConfig) -> bool:
    return cfg.dataset == "synthetic"


def _generated(cfg: TrainConfig) -> bool:
    """A data set the trainer draws from its seed: another seed is another data set."""
    return cfg.dataset in GENERATED_DATASETS


# (a config field, the train option that sets it or None, and when it applies: judged on the checkpoint's config)
Settings = Tuple[Tuple[str, Optional[str], Optional[Callable[[TrainConfig], bool]]], ...]

# Every setting that shapes the network or what its weights compute, with the train option that sets it (None: it
# has none, the field is named) and, where it matters only for some checkpoints, when (judged on the checkpoint's
# config). A resume must match them all: some only surface as a raw load_state_dict error (prototype_dim, widths,
# channels), others load silently into a model that computes something else (add-on, pools, similarity, epsilon,
# image size, the input's contrast and interpolation, which the bundle declares for the whole run). The trunk's
# weights file is not compared: the checkpoint replaces its weights, and the same file may have moved.
MODEL_SETTINGS: Settings = (
    ("backbone", "--backbone", None),
    ("small_cnn_widths", "--small-cnn-widths", _small_cnn),
    ("small_cnn_convs_per_stage", "--small-cnn-convs", _small_cnn),
    ("small_cnn_pools", "--small-cnn-pools", _small_cnn),
    ("add_on", "--add-on", None),
    ("prototype_dim", "--prototype-dim", None),
    ("prototypes_per_class", "--prototypes-per-class", None),
    ("similarity", "--similarity", None),
    ("epsilon", None, None),
    ("image_size", "--image-size", None),             # a convolutional trunk loads at any size
    ("synthetic_channels", "--synthetic-channels", _synthetic),   # other data sets' channels go with their classes
    ("contrast", "--contrast", None),
    ("interpolation", "--interpolation", None),
    ("seed", "--seed", _generated),   # the images themselves come from it
)


def _shown(value: Any) -> str:
    """A value as the command line takes it: `8,16` for widths, `none` for an unset option."""
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _differing(settings: Settings, saved: TrainConfig, new: TrainConfig) -> List[Tuple[str, Any, Any]]:
    """(option, the checkpoint's value, the new value) of each setting that applies to `saved` and differs."""
    # Compared as shown, so widths stored as a tuple equal the same list.
    return [(flag or name, getattr(saved, name), getattr(new, name)) for name, flag, applies in settings
            if (applies is None or applies(saved)) and _shown(getattr(saved, name)) != _shown(getattr(new, name))]


def refuse_other_model_settings(checkpoint: str, saved: TrainConfig, new: TrainConfig) -> None:
    """Raise, naming every differing MODEL_SETTINGS entry with the checkpoint's value, the new one and the option
    to pass, when `new` would build or feed another model than the one `saved` trained."""
    differing = _differing(MODEL_SETTINGS, saved, new)
    if not differing:
        return
    trained = "; ".join(f"{option} {_shown(old)}, not {_shown(value)}" for option, old, value in differing)
    # An option the checkpoint ran without is left out, not passed as "none".
    settings = " ".join(f"without {option}" if old is None else f"{option} {_shown(old)}"
                        for option, old, _ in differing)
    raise TrainerError(f"checkpoint {checkpoint} was trained with {trained}: start a new run (with --fresh, which clears this run's checkpoints, or in another --run-dir) or "
                       f"resume with the checkpoint's settings ({settings})")


# What the images are, which a resume may change (a limit lifted) but should not without a word: the epochs before it
# trained on the checkpoint's data, and the bundle records the resumed run's. The data folder's path is not compared:
# the same folder moves, and the workers of a job may mount the data root at different paths.
DATA_SETTINGS: Settings = (
    ("dataset", "--dataset", None),
    ("crop_to_box", "--crop-to-box", None),
    ("synthetic_classes", "--synthetic-classes", _synthetic),
    ("synthetic_train_per_class", "--synthetic-train-per-class", _generated),
    ("synthetic_test_per_class", "--synthetic-test-per-class", _generated),
    ("train_limit", "--train-limit", None),
    ("test_limit", "--test-limit", None),
    ("calibration_holdout", "--calibration-holdout", None),
)


def other_data_warning(checkpoint: str, saved: TrainConfig, new: TrainConfig) -> Optional[str]:
    """A warning naming every DATA_SETTINGS entry that differs from the checkpoint's; None when they are the same."""
    differing = _differing(DATA_SETTINGS, saved, new)
    if not differing:
        return None
    changes = "; ".join(f"{option} {_shown(old)}, now {_shown(value)}" for option, old, value in differing)
    return (f"resuming {checkpoint} with other data than it trained on ({changes}): its epochs trained on the "
            f"checkpoint's data, the rest train on this run's, and the bundle records this run's (trainSize, config)")
