"""background.py and the background-aware push: cells of the border's colour are never a prototype's patch."""
import torch

from protopnet_trainer.background import (background_cells, background_pixels, background_to_leave_out,
                                          foreground_min_distances)


def square_on_black(size: int = 28, top: int = 10, left: int = 10, side: int = 8) -> torch.Tensor:
    image = torch.zeros(1, 1, size, size)
    image[..., top:top + side, left:left + side] = 0.8
    return image


def test_the_border_colour_is_background_and_the_object_is_not():
    pixels = background_pixels(square_on_black())[0]
    assert bool(pixels[0, 0]) and bool(pixels[27, 27])
    assert not bool(pixels[12, 12])


def test_cells_over_the_object_are_foreground():
    cells = background_cells(square_on_black(), 7, 7)[0]      # cells of 4 px; the square covers px 10-17
    assert bool(cells[0, 0]) and bool(cells[6, 6]) and bool(cells[0, 6])
    assert not bool(cells[3, 3])                             # px 12-15, inside the square
    assert cells.sum() >= 40                                  # most of the 49 cells are empty ground


def test_a_picture_without_a_uniform_border_has_no_background():
    noise = torch.rand(1, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    assert not background_cells(noise, 7, 7).any()


def test_foreground_minimum_skips_the_cells_left_out():
    distances = torch.arange(2 * 1 * 2 * 2, dtype=torch.float32).view(2, 1, 2, 2)   # [N=2, M=1, 2, 2]
    leave_out = torch.tensor([[[True, False], [True, True]], [[False, False], [False, False]]])
    result = foreground_min_distances(distances, leave_out)
    assert result[0, 0] == 1.0            # the only cell of image 0 not left out
    assert result[1, 0] == 4.0            # nothing left out of image 1: its plain minimum


def test_a_picture_that_is_background_everywhere_keeps_all_its_cells():
    pictures = torch.cat([square_on_black(), torch.zeros(1, 1, 28, 28)])
    leave_out = background_to_leave_out(pictures, 7, 7)
    assert torch.equal(leave_out[0], background_cells(square_on_black(), 7, 7)[0])
    assert bool(background_cells(pictures, 7, 7)[1].all()) and not leave_out[1].any()


def test_the_background_aware_push_never_lands_on_background(tmp_path):
    from PIL import Image

    from protopnet_trainer.config import TrainConfig
    from protopnet_trainer.data import ImageSet, Split
    from protopnet_trainer.background import border_background
    from protopnet_trainer.model import build_model
    from protopnet_trainer.push import push_prototypes

    generator = torch.Generator().manual_seed(3)
    pictures = []
    for n in range(12):   # a small bright square somewhere on black: most cells of every picture are ground
        top, left = (int(v) for v in torch.randint(0, 20, (2,), generator=generator))
        pictures.append((square_on_black(28, top, left, 8)[0, 0] * 255).to(torch.uint8).numpy())
    split = Split("train", ["a", "b"], 1, [str(n) for n in range(12)], [n % 2 for n in range(12)],
                  lambda index: Image.fromarray(pictures[index]))
    push_set = ImageSet(split, 28)
    cfg = TrainConfig(image_size=28, small_cnn_widths=[8, 8, 8], small_cnn_convs_per_stage=1, small_cnn_pools=2,
                      prototype_dim=8, prototypes_per_class=4)
    landed = {}
    for aware in (False, True):
        torch.manual_seed(0)
        model = build_model(cfg, 1, 2, [0.1], [0.3]).eval()
        records = push_prototypes(model, push_set, 6, torch.device("cpu"), None, progress=False,
                                  background_aware=aware)
        landed[aware] = [bool(background_cells(push_set.image(r["item"])[None], 7, 7)
                              [0, r["featureCell"]["row"], r["featureCell"]["column"]]) for r in records]
        if aware:   # and no prototype's box is mostly border colour, by the scorecard's own rule
            boxes = [(r["box"]["x"], r["box"]["y"], r["box"]["width"], r["box"]["height"]) for r in records]
            assert not any(border_background(push_set.image(r["item"]).permute(1, 2, 0).numpy(), box)
                           for r, box in zip(records, boxes))
    assert not any(landed[True])
    assert any(landed[False])     # without it, an untrained model's prototypes do land on empty ground


def test_a_pixel_off_the_border_colour_in_one_channel_is_not_background():
    from protopnet_trainer.background import background_pixels
    image = torch.full((1, 3, 8, 8), 0.5)
    image[0, 2, 4, 4] = 0.8        # blue channel 0.3 away; mean over channels only 0.1
    assert not bool(background_pixels(image)[0, 4, 4])
