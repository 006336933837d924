"""contrast.py: the bundle's contrast step, on pictures whose answer is known."""
import torch

from protopnet_trainer.contrast import apply_contrast, normalize_contrast


def garment_on(ground: float, garment: float) -> torch.Tensor:
    image = torch.full((1, 28, 28), ground)
    image[:, 6:22, 8:20] = garment
    image[:, 10, 10] = (garment + ground) / 2   # one mid-tone pixel
    return image


def test_a_data_set_image_passes_unchanged():
    image = garment_on(0.0, 1.0)
    normalised, inverted = normalize_contrast(image.clone())
    assert not inverted
    assert torch.equal(normalised, image)


def test_a_product_shot_becomes_a_light_garment_on_black():
    shot = garment_on(0.9, 0.2)    # dark garment on a light ground
    normalised, inverted = normalize_contrast(shot)
    assert inverted
    assert float(normalised[0, 0, 0]) == 0.0                  # the ground is black
    assert float(normalised[0, 12, 12]) == 1.0                # the garment is white
    assert abs(float(normalised[0, 10, 10]) - 0.5) < 1e-6    # and tones in between keep their order
    # as if it had been light on dark (1 - 0.9 is not 0.1 in float32: equal to rounding)
    assert torch.allclose(normalised, normalize_contrast(garment_on(0.1, 0.8))[0], atol=1e-6)


def test_a_dim_dark_picture_is_stretched_not_inverted():
    normalised, inverted = normalize_contrast(garment_on(0.1, 0.6))
    assert not inverted
    assert float(normalised.min()) == 0.0 and float(normalised.max()) == 1.0


def levels(values) -> torch.Tensor:
    """8-bit levels as the decoder gives them, in [0, 1] float32."""
    return torch.tensor(values, dtype=torch.float32) / 255.0


def test_a_blank_picture_becomes_all_ground():
    # Uniform at any level, and faint noise on a wall (15 levels at most above the ground): nothing to stretch.
    for level in (0, 1, 30, 100, 127, 128, 200, 254, 255):
        blank = levels([[[level] * 8] * 8] * 3)
        assert torch.equal(normalize_contrast(blank)[0], torch.zeros(3, 8, 8)), level
    generator = torch.Generator().manual_seed(1)
    wall = levels((200 + torch.randint(-2, 3, (3, 16, 16), generator=generator)).tolist())
    normalised, inverted = normalize_contrast(wall)
    assert inverted and torch.equal(normalised, torch.zeros(3, 16, 16))
    faint = garment_on(0.0, 0.0)
    faint[:, 6:22, 8:20] = 15 / 255
    assert torch.equal(normalize_contrast(faint)[0], torch.zeros(1, 28, 28))


def test_sixteen_levels_above_the_ground_are_stretched_at_every_ground():
    # An object 16 levels from its ground: lighter on a dark ground, darker on a light one (which is inverted).
    for ground in range(0, 256, 3):
        image = torch.full((1, 8, 8), ground, dtype=torch.float32)
        image[:, 2:6, 2:6] = ground + 16 if ground <= 127 else ground - 16
        normalised, inverted = normalize_contrast(image / 255.0)
        assert inverted == (ground > 127)
        assert float(normalised.max()) == 1.0 and float(normalised.min()) == 0.0, ground


def test_mode_none_does_nothing():
    shot = garment_on(0.9, 0.2)
    assert torch.equal(apply_contrast(shot.clone(), "none"), shot)
    assert not torch.equal(apply_contrast(shot.clone(), "auto"), shot)


def test_the_border_ring_holds_each_border_pixel_once():
    from protopnet_trainer.contrast import border_ring, normalize_contrast
    image = torch.arange(20.0).view(1, 4, 5)
    ring = sorted(border_ring(image).tolist())
    expected = sorted(v for v in range(20) if v // 5 in (0, 3) or v % 5 in (0, 4))
    assert ring == expected
    # corners light, the rest of the ring dark: the lower median is dark, so no inversion
    picture = torch.full((1, 3, 3), 0.1); picture[0, 1, 1] = 0.5
    for r, c in ((0, 0), (0, 2), (2, 0), (2, 2)):
        picture[0, r, c] = 0.9
    assert normalize_contrast(picture)[1] is False
