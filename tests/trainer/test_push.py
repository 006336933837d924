"""Push: class-specific projection onto real training patches; the 95th-percentile box; the pictures."""

import numpy as np
import pytest
import torch
from PIL import Image

from protopnet_trainer.data import ImageSet, PickedImages, Split
from protopnet_trainer.datasets import load_data_source
from protopnet_trainer.model import build_model
from protopnet_trainer.boxes import high_activation_box, upsample_activation
from protopnet_trainer.errors import TrainerError
from protopnet_trainer.push import push_prototypes


def _pushed_model(tiny, tmp_path):
    cfg = tiny()
    torch.manual_seed(0)
    source = load_data_source(cfg)
    model = build_model(cfg, 3, 3, source.mean, source.std).eval()
    push_set = ImageSet(source.train, cfg.image_size)
    before = model.prototypes.detach().clone()
    with torch.no_grad():   # brute force: every own-class patch distance to each prototype before push
        z = torch.stack([model.features(push_set.image(i)[None])[0] for i in range(len(push_set))])
    records = push_prototypes(model, push_set, 7, torch.device("cpu"), str(tmp_path / "pictures"), progress=False)
    return model, push_set, records, before, z


def test_every_prototype_is_a_patch_of_an_image_of_its_own_class(tiny, tmp_path):
    model, push_set, records, before, z = _pushed_model(tiny, tmp_path)
    labels = torch.tensor(push_set.split.labels)
    assert len(records) == model.num_prototypes == 6
    for j, record in enumerate(records):
        item, row, col = record["item"], record["featureCell"]["row"], record["featureCell"]["column"]
        assert record["classIndex"] == int(model.prototype_classes[j]) == push_set.split.labels[item]
        assert record["itemId"] == push_set.split.ids[item]
        with torch.no_grad():
            distances = model.distances(model.features(push_set.image(item)[None]))[0, j]
        assert float(distances[row, col]) <= 1e-5
        assert torch.allclose(model.prototypes[j, :, 0, 0], z[item, :, row, col], atol=1e-6)
        # It was the nearest own-class patch to the prototype before push.
        own = z[labels == record["classIndex"]]                             # [n, D, h, w]
        nearest = ((own - before[j].view(1, -1, 1, 1)) ** 2).sum(1).min()
        assert abs(float(nearest) - record["distanceBeforePush"]) <= 1e-4 * max(1.0, float(nearest))


def test_push_writes_the_three_pictures(tiny, tmp_path):
    model, push_set, records, _, _ = _pushed_model(tiny, tmp_path)
    for j, record in enumerate(records):
        folder = tmp_path / "pictures" / str(j)
        box = record["box"]
        assert 0 <= box["x"] and box["x"] + box["width"] <= 16 and 0 <= box["y"] and box["y"] + box["height"] <= 16
        # The box is where the prototype's own cell lies (a 4x4 map on 16 px: cell (r, c) is pixels 4r..4r+3).
        row, column = record["featureCell"]["row"], record["featureCell"]["column"]
        assert box["y"] < 4 * row + 4 and 4 * row < box["y"] + box["height"]
        assert box["x"] < 4 * column + 4 and 4 * column < box["x"] + box["width"]
        source = np.asarray(Image.open(folder / "source.png"))
        patch = np.asarray(Image.open(folder / "patch.png"))
        activation = np.asarray(Image.open(folder / "activation.png"))
        assert source.shape == (16, 16, 3) and activation.shape == (16, 16, 3)
        assert patch.shape == (box["height"], box["width"], 3)
        assert np.array_equal(patch, source[box["y"]:box["y"] + box["height"], box["x"]:box["x"] + box["width"]])
        expected_source = np.rint(push_set.image(record["item"]).permute(1, 2, 0).numpy() * 255)
        assert np.abs(source.astype(float) - expected_source).max() <= 1
        # overlay = 0.5 image + 0.3 jet: never brighter than 0.8 * 255 + rounding
        assert activation.max() <= 205 and not np.array_equal(activation, source)


def test_prototypes_of_a_class_the_push_set_lacks_stay_as_they_were_and_get_no_record(tiny):
    cfg = tiny()
    torch.manual_seed(0)
    source = load_data_source(cfg)
    model = build_model(cfg, 3, 3, source.mean, source.std).eval()
    train = source.train
    kept = [i for i, label in enumerate(train.labels) if label != 2]
    without_class_2 = Split(train.name, train.classes, train.channels, [train.ids[i] for i in kept],
                            [train.labels[i] for i in kept], PickedImages(train.load, kept))
    push_set = ImageSet(without_class_2, cfg.image_size)
    with pytest.raises(TrainerError, match="no image of class 2"):
        push_prototypes(model, push_set, 7, torch.device("cpu"), None, progress=False)
    before = model.prototypes.detach().clone()
    records = push_prototypes(model, push_set, 7, torch.device("cpu"), None, progress=False, require_every_class=False)
    absent = model.prototype_classes == 2
    assert [r["classIndex"] for r in records] == [0, 0, 1, 1]
    assert torch.equal(model.prototypes[absent], before[absent])
    assert not torch.equal(model.prototypes[~absent], before[~absent])


def _map(cells):
    activation = torch.zeros(7, 7)
    for row, col in cells:
        activation[row, col] = 1.0
    return activation


def test_box_of_a_single_hot_cell_surrounds_that_cell():
    x, y, w, h = high_activation_box(upsample_activation(_map([(3, 4)]), 28, 28))
    # the cell covers pixels rows 12..15, columns 16..19 at 4x upsampling
    assert x <= 16 and x + w - 1 >= 19 and y <= 12 and y + h - 1 >= 15
    assert w <= 8 and h <= 8
    assert abs((x + (w - 1) / 2) - 17.5) <= 0.5 and abs((y + (h - 1) / 2) - 13.5) <= 0.5


def test_box_of_several_equal_maxima_covers_all_of_them():
    x, y, w, h = high_activation_box(upsample_activation(_map([(1, 1), (5, 5)]), 28, 28))
    assert x <= 4 and y <= 4 and x + w - 1 >= 23 and y + h - 1 >= 23
    x, y, w, h = high_activation_box(upsample_activation(_map([(0, 0), (0, 6)]), 28, 28))
    assert x == 0 and x + w == 28 and y == 0 and h <= 6


def test_box_of_a_flat_map_is_the_whole_image():
    assert high_activation_box(upsample_activation(torch.full((7, 7), 0.3), 28, 28)) == (0, 0, 28, 28)
    assert high_activation_box(np.zeros((10, 12))) == (0, 0, 12, 10)


def test_box_threshold_is_the_95th_percentile():
    values = np.arange(100, dtype=float).reshape(10, 10)   # pixels >= 94.05 are 95..99: last row, columns 5..9
    assert high_activation_box(values) == (5, 9, 5, 1)


def test_upsampling_is_bicubic():
    small = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    big = upsample_activation(small, 4, 4)
    expected = torch.nn.functional.interpolate(small.double()[None, None], size=(4, 4), mode="bicubic",
                                               align_corners=False)[0, 0].numpy()
    assert np.allclose(big, expected)
    bilinear = torch.nn.functional.interpolate(small.double()[None, None], size=(4, 4), mode="bilinear",
                                               align_corners=False)[0, 0].numpy()
    assert not np.allclose(big, bilinear)


def test_candidates_are_the_nearest_in_scan_order_on_ties():
    """The scan's per-batch choice and the merge keep what a one-process scan meets first: by distance, then image,
    then cell; inf (another class) never counts. Small integers make ties common."""
    from protopnet_trainer.push import Candidates, _first_in_scan_order, _smallest_in_scan_order

    generator = torch.Generator().manual_seed(4)
    for count in (1, 3, 16):
        flat = torch.randint(0, 4, (50, 40), generator=generator).float()
        flat[flat == 3] = float("inf")
        values, positions = _smallest_in_scan_order(flat, count)
        for row in range(flat.shape[0]):
            expected = sorted(range(flat.shape[1]), key=lambda p: (float(flat[row, p]), p))[:count]
            finite = [p for p in expected if flat[row, p] < float("inf")]
            assert positions[row, :len(finite)].sort().values.tolist() == sorted(finite)
            assert values[row].tolist() == [float(flat[row, p]) for p in expected]
        # Merging two rank's lists: (distance, image, cell) order, whatever order they come in.
        items = torch.randint(0, 5, flat.shape, generator=generator)
        cells = torch.randint(0, 3, flat.shape, generator=generator)
        merged = _first_in_scan_order(Candidates(flat, items, cells), count)
        for row in range(flat.shape[0]):
            keys = sorted(zip(flat[row].tolist(), items[row].tolist(), cells[row].tolist()))[:count]
            assert list(zip(merged.values[row].tolist(), merged.items[row].tolist(),
                            merged.cells[row].tolist())) == keys


def test_a_tie_between_images_goes_to_the_lower_image_whatever_its_cell():
    from protopnet_trainer.push import Candidates, _first_in_scan_order
    merged = Candidates(torch.tensor([[1.0, 1.0]]), torch.tensor([[7, 3]]), torch.tensor([[2, 9]]))
    first = _first_in_scan_order(merged, 1)
    assert int(first.items[0, 0]) == 3 and int(first.cells[0, 0]) == 9


def test_the_heatmap_spans_the_maps_own_range(tmp_path):
    from protopnet_trainer.pictures import write_prototype_pictures
    upsampled = np.full((8, 8), 3.0); upsampled[0, 0] = 2.0
    write_prototype_pictures(torch.zeros(3, 8, 8), upsampled, (0, 0, 4, 4), str(tmp_path))
    activation = np.asarray(Image.open(tmp_path / "activation.png"))
    assert activation[0, 0].tolist() == [0, 0, 38]             # 0.3 * jet(0) = 0.3 * (0, 0, 0.5)



@pytest.mark.parametrize("height, width", [(16, 16), (24, 40)])
def test_the_recorded_box_is_the_box_the_network_draws_on_the_source_image(height, width):
    """A prototype's recorded box (the gallery's, the manifest's) is the box of the network's own similarity map over
    its source image run alone, as a one-image request runs it. An untrained model is the hard case: its latent
    vectors are all nearly equal and distances tiny, where the network's ||z||^2 - 2 z.p + ||p||^2 and the exact
    sum((z - p)^2), or a batch's sums and a lone image's, round apart in float32 by enough to move a 95th percentile
    by a pixel (116 of 288 boxes over 12 seeds before, for the first difference alone)."""
    from protopnet_trainer.config import TrainConfig
    from protopnet_trainer.synthetic import generate_synthetic

    torch.manual_seed(0)
    cfg = TrainConfig(dataset="synthetic", backbone="small-cnn", prototypes_per_class=2, synthetic_classes=4,
                      prototype_dim=128)
    model = build_model(cfg, 3, 4, [0.5] * 3, [0.25] * 3).eval()
    push_set = ImageSet(generate_synthetic(4, 2, max(height, width), 3, 0, "train", noise=0.0), (height, width))
    for background_aware in (False, True):
        records = push_prototypes(model, push_set, 16, torch.device("cpu"), None, progress=False,
                                  background_aware=background_aware)
        for j, record in enumerate(records):
            with torch.no_grad():
                similarity = model(push_set.image(record["item"])[None]).similarity_maps[0, j]
            box = high_activation_box(upsample_activation(similarity, height, width))
            assert (record["box"]["x"], record["box"]["y"], record["box"]["width"], record["box"]["height"]) == box, j


def test_box_of_a_plateau_wider_than_the_top_five_percent_covers_the_plateau():
    """When more than 5 % of the pixels share the maximum, the 95th percentile is that maximum: the box holds every
    pixel at it (>=), not none of them."""
    values = np.zeros((10, 10))
    values[2:4, 3:7] = 1.0          # 8 % of the pixels at the maximum
    assert high_activation_box(values) == (3, 2, 4, 2)


def test_the_background_aware_push_passes_over_a_candidate_whose_box_is_background(tiny, monkeypatch):
    """A foreground cell's box can still be mostly the border's colour: the background-aware push then takes the
    prototype's next nearest foreground cell, not the nearest one. Here every box checked in the first round is
    called background, so each prototype must land on its second nearest candidate."""
    import copy
    import protopnet_trainer.push as push_module
    from torch.utils.data import DataLoader
    cfg = tiny()
    torch.manual_seed(0)
    source = load_data_source(cfg)
    model = build_model(cfg, 3, 3, source.mean, source.std).eval()
    push_set = ImageSet(source.train, cfg.image_size)
    with torch.no_grad():
        candidates = push_module._nearest_candidates(copy.deepcopy(model), DataLoader(push_set, batch_size=7),
                                                     torch.device("cpu"), False, push_module.FOREGROUND_CANDIDATES, True)
    checked = []

    def first_round_is_background(background, box):
        checked.append(box)
        return len(checked) <= model.num_prototypes

    monkeypatch.setattr(push_module, "box_is_background", first_round_is_background)
    records = push_prototypes(model, push_set, 7, torch.device("cpu"), None, progress=False, background_aware=True)
    assert len(checked) == 2 * model.num_prototypes
    for j, record in enumerate(records):
        assert float(candidates.values[j, 1]) > float(candidates.values[j, 0])
        assert (record["item"], 4 * record["featureCell"]["row"] + record["featureCell"]["column"]) == (
            int(candidates.items[j, 1]), int(candidates.cells[j, 1]))
        assert record["distanceBeforePush"] == pytest.approx(float(candidates.values[j, 1]), rel=1e-5)


def test_a_wide_image_s_map_is_upsampled_to_its_rows_and_columns():
    """A wide input (24 x 40 px, a 3 x 5 map) is upsampled to 24 rows of 40 pixels, so that the box of the map's
    top-right cell lies over the image's top right (that cell covers rows 0..7, columns 32..39)."""
    activation = torch.zeros(3, 5)
    activation[0, 4] = 1.0
    upsampled = upsample_activation(activation, 24, 40)
    assert upsampled.shape == (24, 40)
    x, y, w, h = high_activation_box(upsampled)
    assert 30 <= x and x + w == 40 and y == 0 and h <= 8
