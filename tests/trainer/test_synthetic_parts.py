"""The synthetic-parts data set: deterministic, and every recorded part box matches what was drawn."""
import numpy as np
import pytest

from protopnet_trainer.config import preset_config
from protopnet_trainer.datasets import load_data_source
from protopnet_trainer.errors import TrainerError
from protopnet_trainer.synthetic_parts import (PART_COLOURS, SHAPES, class_parts, generate_parts, part_colour_mask,
                                               shape_mask)


def test_same_seed_same_images_other_seed_other_images():
    first, again = generate_parts(4, 3, 48, 5, "train"), generate_parts(4, 3, 48, 5, "train")
    assert np.array_equal(first.images, again.images) and first.parts == again.parts
    assert not np.array_equal(first.images, generate_parts(4, 3, 48, 6, "train").images)
    assert not np.array_equal(first.images, generate_parts(4, 3, 48, 5, "test").images)


def test_every_shape_fills_its_square_to_the_edges():
    for shape in SHAPES:
        for size in (6, 11, 18):
            mask = shape_mask(shape, size)
            assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any(), (shape, size)
            assert 0.25 <= mask.mean() <= 1.0, (shape, size)


@pytest.mark.parametrize("size", [64, 40])
def test_part_boxes_hold_exactly_the_pixels_drawn_in_part_colours(size):
    split = generate_parts(6, 8, size, 2, "test")
    definitions = class_parts(6)
    for image, label, parts, distractors in zip(split.images, split.labels, split.parts, split.distractors):
        assert sorted(p for p, _ in parts) == sorted(definitions[label])   # the class's parts, nothing else
        inside_any_part = np.zeros(image.shape[:2], dtype=bool)
        for part, (x, y, w, h) in parts:
            inside = np.zeros(image.shape[:2], dtype=bool)
            inside[y:y + h, x:x + w] = True
            inside_any_part |= inside
            coloured = part_colour_mask(image, part)
            # The part's colour is inside its box only; the drawn pixels touch all four sides of the box.
            assert not (coloured & ~inside).any()
            rows, cols = np.flatnonzero(coloured.any(axis=1)), np.flatnonzero(coloured.any(axis=0))
            assert (cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1) == (x, y, w, h)
            assert coloured[inside].mean() >= 0.25
        # No pixel outside the part boxes has any part colour: background and distractors use other colours.
        for part in range(len(PART_COLOURS)):
            assert not (part_colour_mask(image, part) & ~inside_any_part).any()
        # Distractors are drawn (not empty) and never overlap a part.
        for x, y, w, h in distractors:
            assert not inside_any_part[y:y + h, x:x + w].any()
            assert np.abs(image[y:y + h, x:x + w].astype(int) - np.median(image, axis=(0, 1))).max() > 30


def test_the_preset_loads_annotated_splits_quickly():
    import time
    started = time.time()
    cfg = preset_config("synthetic-parts")
    source = load_data_source(cfg)
    assert time.time() - started < 30
    assert source.name == "synthetic-parts" and source.channels == 3 and len(source.classes) == 6
    assert len(source.train) == 900 and len(source.test) == 300
    assert source.test.cached.shape == (300, 3, 64, 64)
    assert source.classes[0] == "red-disc+green-square"
    assert len(source.test.parts.boxes) == 300 and source.test.parts.class_parts[5] == [5, 0]
    limited = source.test.subset(7)
    assert len(limited.parts.boxes) == 7 and limited.parts.boxes == source.test.parts.boxes[:7]
    # A calibration hold-out keeps each image's parts with it (the scorecard's background rule reads them).
    kept, held = source.train.hold_out(50)
    assert kept.parts.boxes == source.train.parts.boxes[:850] and held.parts.boxes == source.train.parts.boxes[850:]
    assert kept.parts.class_parts == source.train.parts.class_parts


def test_bad_sizes_are_refused():
    with pytest.raises(TrainerError, match="between 2"):
        generate_parts(9, 1, 64, 1, "train")
    with pytest.raises(TrainerError, match="at least 32"):
        generate_parts(3, 1, 16, 1, "train")


def test_the_preset_is_the_recipe_measured_against_the_scorecard_targets():
    """README's scorecard table: pointing game 100 %, consistency 100 %, noise 95.7 %, JPEG 96.7 %, deletion 77.0."""
    cfg = preset_config("synthetic-parts")
    assert (cfg.small_cnn_widths, cfg.small_cnn_convs_per_stage, cfg.small_cnn_pools) == ([16, 32, 32], 1, 2)
    assert (cfg.prototypes_per_class, cfg.prototype_dim, cfg.coef_sep, cfg.noise_augment) == (1, 32, 0.0, 0.25)
    assert (cfg.epochs, cfg.warm_epochs, cfg.push_start, cfg.push_every, cfg.batch_size) == (20, 0, 4, 15, 16)
    assert (cfg.joint_optimizer, cfg.joint_lr_trunk, cfg.last_layer_clamp, cfg.threads) == (
        "adamw-onecycle", 5e-3, True, 1)
