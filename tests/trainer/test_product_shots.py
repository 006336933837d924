"""Product shots (issue 16): a data set image rendered as a shop photo, and the same rendering as a training
augmentation (--polarity-augment)."""
import io
import json
import os

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from protopnet_trainer.augmentation import make_augmentation
from protopnet_trainer.data import ImageSet, Split
from protopnet_trainer.product_shots import SHOT_SEED, PolarityAugment, ProductShotSet, render_product_shot


def garment() -> np.ndarray:
    """A light 'garment' on black, as Fashion-MNIST draws them: a bright rectangle in the middle of 28x28."""
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[6:22, 9:19] = 220
    return pixels


def test_a_product_shot_is_a_large_colour_jpeg_with_a_dark_garment_on_a_light_ground():
    shot = render_product_shot(garment(), seed=3)
    assert shot[:2] == b"\xff\xd8"                               # JPEG
    picture = Image.open(io.BytesIO(shot))
    assert picture.format == "JPEG" and picture.mode == "RGB" and picture.size == (280, 280)
    pixels = np.asarray(picture, dtype=np.float32)
    corners = np.concatenate([pixels[:20, :20], pixels[-20:, -20:]]).reshape(-1, 3)
    centre = pixels[120:160, 120:160].reshape(-1, 3)
    assert corners.mean() > 200 and centre.mean() < 140        # inverted: dark on light
    assert np.ptp(corners.mean(axis=0)) > 1 or np.ptp(centre.mean(axis=0)) > 1   # tinted, not grey


def test_the_same_seed_renders_the_same_bytes_and_another_seed_another_shot():
    assert render_product_shot(garment(), seed=5) == render_product_shot(garment(), seed=5)
    assert render_product_shot(garment(), seed=5) != render_product_shot(garment(), seed=6)


def test_the_augmentation_turns_a_grey_training_image_into_a_product_shot_at_its_size():
    torch.manual_seed(0)
    out = PolarityAugment(1.0)(Image.fromarray(garment()))
    assert out.mode == "L" and out.size == (28, 28)
    pixels = np.asarray(out, dtype=np.float32)
    assert pixels[:3].mean() > 190 and pixels[12:16, 12:16].mean() < 140


def test_the_augmentation_keeps_colour_images_in_colour_and_leaves_a_share_unchanged():
    colour = Image.fromarray(np.stack([garment()] * 3, axis=-1))
    torch.manual_seed(1)
    assert PolarityAugment(1.0)(colour).mode == "RGB"
    torch.manual_seed(1)
    augment = PolarityAugment(0.5)
    changed = sum(not np.array_equal(np.asarray(augment(colour)), np.asarray(colour)) for _ in range(200))
    assert 70 <= changed <= 130


def test_the_augmentation_is_off_by_default_and_follows_the_crop_when_on(tiny):
    crop_flip = dict(augment=True, augmentation="crop-flip", image_size=28)
    default = make_augmentation(tiny(**crop_flip))
    assert not any(isinstance(step, PolarityAugment) for step in default.transforms)
    steps = make_augmentation(tiny(**crop_flip, polarity_augment=0.5)).transforms
    assert isinstance(steps[0], transforms.RandomCrop) and isinstance(steps[-1], PolarityAugment)
    assert steps[-1].p == 0.5
    only = make_augmentation(tiny(augment=True, augmentation="none", polarity_augment=0.3))
    assert [type(step) for step in only.transforms] == [PolarityAugment]


def test_the_product_shot_set_is_the_rendered_jpeg_back_at_the_models_size():
    split = Split("test", ["a"], 1, ["0"], [0], lambda i: Image.fromarray(garment()))
    image, label, index = ProductShotSet(ImageSet(split, 28))[0]
    assert image.shape == (1, 28, 28) and (label, index) == (0, 0)
    expected = Image.open(io.BytesIO(render_product_shot(garment(), SHOT_SEED))).convert("L").resize((28, 28),
                                                                                                   Image.BILINEAR)
    assert torch.equal((image[0] * 255).round().to(torch.uint8), torch.from_numpy(np.asarray(expected).copy()))
    assert image[0, :2].mean() > 0.75 and image[0, 10:18, 11:17].mean() < 0.55   # dark on light
    # For a model that decodes JPEGs at the draft scale, the 280x280 shot decodes at 1/8 (35x35), as the service will.
    drafted, _, _ = ProductShotSet(ImageSet(split, 28), jpeg_draft=True)[0]
    shot = Image.open(io.BytesIO(render_product_shot(garment(), SHOT_SEED)))
    shot.draft("RGB", (35, 35))
    assert shot.size == (35, 35)
    expected = shot.convert("L").resize((28, 28), Image.BILINEAR)
    assert torch.equal((drafted[0] * 255).round().to(torch.uint8), torch.from_numpy(np.asarray(expected).copy()))
    assert not torch.equal(drafted, image)


def test_a_grey_model_is_published_with_its_product_shot_accuracy(tiny, tmp_path):
    from protopnet_trainer.pipeline import TrainJob, train_and_publish
    lines = []
    folder = train_and_publish(TrainJob(tiny(synthetic_channels=1), models=str(tmp_path / "models"), name="grey",
                                        run_dir=str(tmp_path / "run"), report=False, examples=0), log=lines.append)
    with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
        metrics = json.load(f)["training"]["metrics"]
    assert 0.0 <= metrics["productShotAccuracy"] <= 1.0
    assert any(line.startswith("product-shot accuracy ") for line in lines)


def _garment():
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[6:22, 9:19] = 220
    return pixels


def test_each_test_image_is_shot_in_its_own_style():
    from protopnet_trainer.data import ImageSet, Split
    from protopnet_trainer.product_shots import ProductShotSet
    split = Split("test", ["a"], 3, ["0", "1"], [0, 0], lambda i: Image.fromarray(np.stack([_garment()] * 3, -1)))
    shots = ProductShotSet(ImageSet(split, 28))
    assert not torch.equal(shots[0][0], shots[1][0])


def test_the_shift_moves_the_garment_along_its_own_axis():
    from protopnet_trainer.product_shots import ShotStyle, paint
    style = ShotStyle((250.0, 250.0, 250.0), (10.0, 10.0, 10.0), 0.5, (0.25, 0.0))
    picture = paint(np.ones((4, 4), np.float32), style, 20)
    assert picture[7, 15, 0] == 10 and picture[15, 7, 0] == 250     # moved right, not down
