"""Data sets: CUB-200-2011 folder format, Fashion-MNIST idx files, ImageFolder, synthetic, augmentation."""
import gzip
import os
import re
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from protopnet_trainer.config import TrainConfig
from protopnet_trainer.augmentation import make_augmentation
from protopnet_trainer.data import ImageSet, Split
from protopnet_trainer.datasets import (FASHION_MNIST_CLASSES, load_cub200, load_data_source, load_fashion_mnist,
                                        load_imagefolder)
from protopnet_trainer.synthetic import generate_synthetic
from protopnet_trainer.image_files import jpeg_draft_scale, open_image
from protopnet_trainer.errors import TrainerError

CUB_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


def make_mini_cub(root, images_per_class=2):
    """A CUB_200_2011-format folder: 3 classes, each image grey with a class-coloured rectangle (its box)."""
    os.makedirs(root / "images", exist_ok=True)
    classes = ["001.Red_bird", "002.Green_bird", "003.Blue_bird"]
    rows = {"images": [], "labels": [], "split": [], "boxes": []}
    image_id = 0
    for k, cls in enumerate(classes):
        os.makedirs(root / "images" / cls, exist_ok=True)
        for n in range(images_per_class):
            image_id += 1
            width, height = 60 + 4 * n, 40
            picture = np.full((height, width, 3), 128, np.uint8)
            x, y, w, h = 10 + n, 5, 20, 24
            picture[y:y + h, x:x + w] = CUB_COLOURS[k]
            relative = f"{cls}/bird_{n}.jpg" if n % 2 else f"{cls}/bird_{n}.png"
            Image.fromarray(picture).save(root / "images" / relative, quality=100, subsampling=0)
            rows["images"].append(f"{image_id} {relative}")
            rows["labels"].append(f"{image_id} {k + 1}")
            rows["split"].append(f"{image_id} {1 if n < images_per_class - 1 else 0}")
            rows["boxes"].append(f"{image_id} {x}.0 {y}.0 {w}.0 {h}.0")
    (root / "images.txt").write_text("\n".join(rows["images"]) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(rows["labels"]) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(rows["split"]) + "\n")
    (root / "bounding_boxes.txt").write_text("\n".join(rows["boxes"]) + "\n")
    (root / "classes.txt").write_text("\n".join(f"{k + 1} {c}" for k, c in enumerate(classes)) + "\n")
    return root


def test_cub_loader_splits_labels_and_full_images(tmp_path):
    source = load_cub200(str(make_mini_cub(tmp_path / "CUB", 3)), crop_to_box=False)
    assert source.classes == ["001.Red_bird", "002.Green_bird", "003.Blue_bird"]
    assert len(source.train) == 6 and len(source.test) == 3
    assert source.train.labels == [0, 0, 1, 1, 2, 2] and source.test.labels == [0, 1, 2]
    assert source.train.ids[0] == "001.Red_bird/bird_0.png"
    assert source.train.load(1).size == (64, 40)                 # full image
    tensor = ImageSet(source.train, 32).image(0)
    assert tensor.shape == (3, 32, 32)
    assert abs(float(tensor[:, 0, 0].mean()) - 128 / 255) < 0.02   # grey background visible


def test_cub_loader_crops_to_the_bounding_box(tmp_path):
    source = load_cub200(str(make_mini_cub(tmp_path / "CUB", 2)), crop_to_box=True)
    picture = source.train.load(0)
    assert picture.size == (20, 24)
    tensor = ImageSet(source.test, 16).image(1)                    # a green bird, jpeg
    expected = torch.tensor(CUB_COLOURS[1], dtype=torch.float32).view(3, 1, 1) / 255
    assert (tensor - expected).abs().max() < 0.08                  # only the bird is left


def test_cub_loader_reports_missing_and_malformed_files(tmp_path):
    root = make_mini_cub(tmp_path / "CUB")
    os.remove(root / "bounding_boxes.txt")
    with pytest.raises(TrainerError, match="bounding_boxes.txt"):
        load_cub200(str(root), crop_to_box=True)
    root = make_mini_cub(tmp_path / "CUB2")
    (root / "image_class_labels.txt").write_text("1 9\n2 1\n3 2\n4 2\n5 3\n6 3\n")
    with pytest.raises(TrainerError, match="image 1 has class 9"):
        load_cub200(str(root), crop_to_box=False)
    root = make_mini_cub(tmp_path / "CUB3")
    os.remove(root / "images" / "002.Green_bird" / "bird_0.png")
    with pytest.raises(TrainerError, match="missing image file"):
        load_cub200(str(root), crop_to_box=False)


@pytest.mark.parametrize("outside", ["absolute", "../../../outside/secret.png", "001.Red_bird/../../../../outside/secret.png"])
def test_cub_loader_refuses_image_names_outside_the_images_folder(tmp_path, outside):
    # The file exists: an images.txt entry must not reach it, or a job would train on (and publish) any image.
    secret = tmp_path / "outside" / "secret.png"
    os.makedirs(secret.parent)
    Image.new("RGB", (40, 40), (255, 0, 0)).save(secret)
    root = make_mini_cub(tmp_path / "data" / "CUB")
    name = str(secret) if outside == "absolute" else outside
    rows = (root / "images.txt").read_text().splitlines()
    (root / "images.txt").write_text("\n".join([f"1 {name}"] + rows[1:]) + "\n")
    with pytest.raises(TrainerError, match=f"images.txt names '{re.escape(name)}' for image 1: a file outside images/"):
        load_cub200(str(root), crop_to_box=False)


def write_idx(folder, prefix, images, labels, magic=2051):
    os.makedirs(folder, exist_ok=True)
    with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", magic, len(images), 28, 28) + images.astype(np.uint8).tobytes())
    with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + np.array(labels, np.uint8).tobytes())


def test_fashion_mnist_idx_loader(tmp_path):
    images = np.arange(5 * 28 * 28).reshape(5, 28, 28) % 256
    write_idx(tmp_path, "train", images, [0, 1, 2, 9, 3])
    write_idx(tmp_path, "t10k", images[:2], [4, 5])
    source = load_fashion_mnist(str(tmp_path))
    assert source.classes == FASHION_MNIST_CLASSES and source.classes[0] == "T-shirt/top"
    assert source.channels == 1 and len(source.train) == 5 and source.test.labels == [4, 5]
    tensor = ImageSet(source.train, 28).image(3)
    assert torch.allclose(tensor[0], torch.from_numpy(images[3]).float() / 255)
    assert torch.allclose(ImageSet(source.train, 28, augmentation=lambda p: p).image(3), tensor)


def test_fashion_mnist_malformed_files(tmp_path):
    images = np.zeros((2, 28, 28))
    write_idx(tmp_path / "magic", "train", images, [0, 1], magic=1234)
    write_idx(tmp_path / "magic", "t10k", images, [0, 1])
    with pytest.raises(TrainerError, match="magic number 1234"):
        load_fashion_mnist(str(tmp_path / "magic"))
    write_idx(tmp_path / "count", "train", images, [0, 1, 2])
    write_idx(tmp_path / "count", "t10k", images, [0, 1])
    with pytest.raises(TrainerError, match="2 images but 3 labels"):
        load_fashion_mnist(str(tmp_path / "count"))
    os.makedirs(tmp_path / "garbage")
    (tmp_path / "garbage" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(TrainerError, match="not a readable gzip"):
        load_fashion_mnist(str(tmp_path / "garbage"))
    with pytest.raises(TrainerError, match="does not exist"):
        load_fashion_mnist(str(tmp_path / "nowhere"))


def test_the_installed_fashion_mnist():
    source = load_fashion_mnist(None)
    assert len(source.train) == 60000 and len(source.test) == 10000
    assert sorted(set(source.test.labels)) == list(range(10))
    # The normalisation is the training images' own mean and standard deviation, to three decimals.
    pixels = source.train.cached.float() / 255
    assert (source.mean, source.std) == ([0.286], [0.353])
    assert round(float(pixels.mean()), 3) == 0.286 and round(float(pixels.std()), 3) == 0.353


def test_imagefolder(tmp_path):
    for split, count in (("train", 2), ("test", 1)):
        for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            os.makedirs(tmp_path / split / cls)
            for n in range(count):
                Image.new("RGB", (20, 10), colour).save(tmp_path / split / cls / f"{n}.png")
    source = load_imagefolder(str(tmp_path))
    # The classes in turn, so that the first or last N images (limits, the calibration hold-out) span every class.
    assert source.classes == ["cat", "dog"] and source.train.labels == [0, 1, 0, 1]
    assert source.train.ids == ["cat/0.png", "dog/0.png", "cat/1.png", "dog/1.png"]
    assert source.test.ids == ["cat/0.png", "dog/0.png"]
    assert float(ImageSet(source.test, 8).image(1)[2].mean()) == pytest.approx(1.0)
    os.makedirs(tmp_path / "test" / "bird")
    Image.new("RGB", (4, 4)).save(tmp_path / "test" / "bird" / "0.png")
    with pytest.raises(TrainerError, match="the class folders of train/ and test/ differ .train has 2, test has 3; "
                                           ".*only in train: none; only in test: bird"):
        load_imagefolder(str(tmp_path))
    # As many classes on each side, but not the same ones: the counts alone said nothing was wrong.
    os.rename(tmp_path / "test" / "dog", tmp_path / "test" / "dogs")
    os.rename(tmp_path / "test" / "bird", tmp_path / "bird-aside")
    with pytest.raises(TrainerError, match="the class folders of train/ and test/ differ .train has 2, test has 2; "
                                           ".*only in train: dog; only in test: dogs"):
        load_imagefolder(str(tmp_path))
    os.rename(tmp_path / "test" / "dogs", tmp_path / "test" / "dog")
    os.rename(tmp_path / "bird-aside", tmp_path / "test" / "bird")
    # A zip made on a Mac carries __MACOSX folders: not a class.
    for split in ("train", "test"):
        os.makedirs(tmp_path / split / "__MACOSX" / "cat")
    os.makedirs(tmp_path / "train" / "bird")
    Image.new("RGB", (4, 4)).save(tmp_path / "train" / "bird" / "0.png")
    assert load_imagefolder(str(tmp_path)).classes == ["bird", "cat", "dog"]


def test_imagefolder_that_names_its_train_folder_says_to_pass_the_folder_holding_it(tmp_path):
    for split in ("train", "test"):
        os.makedirs(tmp_path / split / "cat")
        Image.new("RGB", (4, 4)).save(tmp_path / split / "cat" / "0.png")
    for leaf in ("train", "test"):
        with pytest.raises(TrainerError, match=f"imagefolder: .*{leaf} has no train/ folder .it is a {leaf}/ folder: "
                                               f"pass {tmp_path}, the folder holding it.; --data names"):
            load_imagefolder(str(tmp_path / leaf))
    with pytest.raises(TrainerError, match="cat has no train/ folder; --data names the folder holding train/ and test/$"):
        load_imagefolder(str(tmp_path / "train" / "cat"))   # not every folder is one, nor one that moved: it is there
    with pytest.raises(TrainerError, match="gone does not exist; .*one that moved since its run: pass --data"):
        load_imagefolder(str(tmp_path / "gone"))


def test_imagefolder_needs_two_classes(tmp_path):
    for split in ("train", "test"):
        os.makedirs(tmp_path / split / "only")
        Image.new("RGB", (8, 8)).save(tmp_path / split / "only" / "0.png")
    with pytest.raises(TrainerError, match="one class folder; a classifier needs two or more"):
        load_imagefolder(str(tmp_path))


def test_imagefolder_refuses_a_class_without_training_images_before_training(tmp_path):
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            os.makedirs(tmp_path / split / cls)
            Image.new("RGB", (8, 8)).save(tmp_path / split / cls / "0.png")
    # Images in a subfolder of the class folder are not read: the class is empty.
    os.remove(tmp_path / "train" / "dog" / "0.png")
    os.makedirs(tmp_path / "train" / "dog" / "2019")
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "dog" / "2019" / "0.png")
    with pytest.raises(TrainerError, match=r"train/dog holds no images \(images in subfolders"):
        load_imagefolder(str(tmp_path))


def test_a_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 20817, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values, "I;16").save(tmp_path / "g16.png")
    # The service's rounding, (v * 255 + 32895) >> 16 (ImageSharp's); PIL's convert("L") gave 0, 255, 255, 255.
    assert np.asarray(open_image(str(tmp_path / "g16.png")))[0, :, 0].tolist() == [0, 81, 128, 255]


def test_a_non_square_image_set_gives_every_picture_its_height_and_width():
    # (height, width) = (24, 40): a picture of that size is taken as it is, one of the sides turned (24 wide, 40 high)
    # is resized like any other, and so is a cached tensor of another size.
    sizes = [(40, 24), (24, 40), (97, 61)]   # PIL's (width, height)
    pictures = [Image.fromarray(np.random.RandomState(i).randint(0, 256, (h, w, 3), dtype=np.uint8)) for i, (w, h) in
                enumerate(sizes)]
    split = Split("test", ["a"], 3, [str(i) for i in range(3)], [0, 0, 0], lambda i: pictures[i])
    images = ImageSet(split, (24, 40))
    assert (images.height, images.width) == (24, 40)
    assert [tuple(images.image(i).shape) for i in range(3)] == [(3, 24, 40)] * 3
    assert torch.equal(images.image(0), torch.from_numpy(np.array(pictures[0])).permute(2, 0, 1).float() / 255)
    cached = torch.from_numpy(np.stack([np.asarray(p.resize((32, 32))) for p in pictures])).permute(0, 3, 1, 2)
    cached_split = Split("test", ["a"], 3, split.ids, split.labels, lambda i: pictures[i].resize((32, 32)), cached=cached)
    assert tuple(ImageSet(cached_split, (24, 40)).image(0).shape) == (3, 24, 40)


def test_an_image_too_large_to_decode_is_one_line(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)   # 4096 pixels is then over twice the limit: an error
    with pytest.raises(TrainerError, match="too large to decode"):
        open_image(str(tmp_path / "big.png"))


def test_jpeg_draft_scale_is_the_smallest_that_keeps_the_input_size():
    assert jpeg_draft_scale((640, 480), (224, 224), None) == 2        # 320x240 still covers 224x224
    assert jpeg_draft_scale((4000, 3000), (224, 224), 1) == 8         # a phone photo: 500x375
    assert jpeg_draft_scale((1000, 900), (224, 224), None) == 4
    assert jpeg_draft_scale((447, 1000), (224, 224), None) == 1       # 447 // 224 = 1: the narrow side decides
    assert jpeg_draft_scale((100, 80), (224, 224), None) == 1         # smaller than the input: in full
    # A non-square input: EXIF orientations 5-8 swap the sides, so the stored width meets the input's height.
    assert jpeg_draft_scale((1000, 300), (100, 40), None) == 4        # min(10, 7)
    assert jpeg_draft_scale((1000, 300), (100, 40), 6) == 2           # upright 300x1000 for 100x40: min(25, 3)
    assert jpeg_draft_scale((1000, 300), (100, 40), 3) == 4           # a half turn swaps nothing


def test_open_image_decodes_a_large_jpeg_at_the_draft_scale_only(tmp_path):
    rng = np.random.default_rng(3)
    photo = Image.fromarray((rng.random((480, 641, 3)) * 255).astype(np.uint8))
    photo.save(tmp_path / "photo.jpg", quality=90)
    photo.save(tmp_path / "photo.png")
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6                                                  # stored 641x480, upright 480x641
    photo.save(tmp_path / "turned.jpg", quality=90, exif=exif.tobytes())

    assert open_image(str(tmp_path / "photo.jpg")).size == (641, 480)                  # no draft: in full
    drafted = open_image(str(tmp_path / "photo.jpg"), (224, 224))
    assert drafted.size == (321, 240) and drafted.mode == "RGB"                        # 1/2, rounded up
    assert open_image(str(tmp_path / "photo.jpg"), (32, 32)).size == (81, 60)          # 1/8
    assert open_image(str(tmp_path / "turned.jpg"), (224, 224)).size == (240, 321)     # scaled, then turned upright
    assert open_image(str(tmp_path / "photo.png"), (224, 224)).size == (641, 480)      # not a JPEG
    assert open_image(str(tmp_path / "cmyk.jpg"), (224, 224)).size == (641, 480)       # CMYK: in full, as the service
    # A camera's MPO (a JPEG with more frames after the first): a JPEG to the service, which decodes its first frame.
    photo.save(tmp_path / "camera.mpo", "MPO", save_all=True, append_images=[photo.rotate(90)], quality=90)
    assert open_image(str(tmp_path / "camera.mpo"), (224, 224)).size == (321, 240)
    # Scaled decoding is libjpeg's own reduced IDCT, not a resize of the full decode: close, but not the same pixels.
    full = np.asarray(open_image(str(tmp_path / "photo.jpg")).resize((321, 240), Image.BILINEAR), dtype=np.int16)
    assert 0 < np.abs(full - np.asarray(drafted, dtype=np.int16)).mean() < 40


def test_the_recipe_drafts_jpegs_unless_told_or_cropping(tmp_path):
    assert TrainConfig(image_size=224).jpeg_draft_size == (224, 224)
    assert TrainConfig(image_size=224, jpeg_draft=False).jpeg_draft_size is None
    assert TrainConfig(dataset="cub200", image_size=224, crop_to_box=True).jpeg_draft_size is None   # the crop is what gets resized
    assert TrainConfig.from_dict({"image_size": 224}).jpeg_draft_size is None          # a run from before the option
    for split in ("train", "test"):
        for cls in ("one", "two"):
            os.makedirs(tmp_path / split / cls)
            Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(tmp_path / split / cls / "0.jpg")
    drafted = load_data_source(TrainConfig(dataset="imagefolder", data=str(tmp_path), image_size=32))
    full = load_data_source(TrainConfig(dataset="imagefolder", data=str(tmp_path), image_size=32, jpeg_draft=False))
    assert drafted.train.load(0).size == (75, 50) and full.train.load(0).size == (300, 200)   # 1/4: min(9, 6) fits


def test_synthetic_is_deterministic_and_records_the_pattern_box():
    a = generate_synthetic(4, 5, 32, 3, seed=7, split_name="train")
    b = generate_synthetic(4, 5, 32, 3, seed=7, split_name="train")
    c = generate_synthetic(4, 5, 32, 3, seed=8, split_name="train")
    assert torch.equal(a.cached, b.cached) and not torch.equal(a.cached, c.cached)
    assert a.labels == [0, 1, 2, 3] * 5
    for n, (x, y, w, h) in enumerate(a.true_boxes):
        patch = a.cached[n, :, y:y + h, x:x + w].float()
        colour = {0: (230, 40, 40), 1: (40, 200, 60), 2: (50, 80, 240), 3: (240, 200, 30)}[a.labels[n]]
        matches = (patch == torch.tensor(colour).view(3, 1, 1)).all(0)
        assert matches.sum() >= 5 * (w // 3) ** 2                   # the class shape is inside the box
        assert (patch.sum(0)[~matches] == 0).all()                    # the rest of the box is black
    grey = generate_synthetic(3, 2, 16, 1, seed=1, split_name="test")
    assert grey.cached.shape == (6, 1, 16, 16)


def test_augmentation_is_switchable_and_the_push_set_is_not_augmented():
    cfg = TrainConfig(dataset="synthetic", image_size=32, synthetic_classes=3, synthetic_train_per_class=2,
                      synthetic_test_per_class=1, augment=True)
    source = load_data_source(cfg)
    augmented = ImageSet(source.train, 32, augmentation=make_augmentation(cfg))
    plain = ImageSet(source.train, 32)
    torch.manual_seed(0)
    views = [augmented.image(0) for _ in range(4)]
    assert any(not torch.allclose(v, plain.image(0), atol=1e-3) for v in views)
    assert torch.equal(plain.image(0), plain.image(0))
    assert torch.equal(plain.image(0), source.train.cached[0].float() / 255)
    assert make_augmentation(cfg.replace(augment=False)) is None
    # As the reference's copies: each draw one of rotation, skew or shear, then a flip half the time.
    choice, flip = make_augmentation(cfg).transforms
    assert type(flip).__name__ == "RandomHorizontalFlip"
    assert [type(t).__name__ for t in choice.transforms] == ["RandomRotation", "RandomPerspective", "RandomAffine"]
    assert choice.transforms[1].p == 1.0 and choice.transforms[2].degrees == [0.0, 0.0]
    assert choice.transforms[2].shear == [-10.0, 10.0]


def test_a_limit_that_leaves_a_class_without_training_images_is_refused_before_training():
    # The images are listed with the classes in turn: the first 2 of 3 classes' images hold no image of the third.
    cfg = TrainConfig(dataset="synthetic", synthetic_classes=3, synthetic_train_per_class=4,
                      synthetic_test_per_class=2, image_size=16, train_limit=2)
    with pytest.raises(TrainerError, match=r"1 of 3 classes have no training images left after --train-limit 2 \("):
        load_data_source(cfg)
    assert len(load_data_source(cfg.replace(train_limit=3)).train) == 3


def test_test_classes_without_images_are_named_in_a_warning(tiny, tmp_path):
    from protopnet_trainer.train import Trainer
    lines = []
    Trainer(tiny(test_limit=2), str(tmp_path / "run"), progress=False, log=lines.append)
    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: 1 of 3 classes have no test images (pattern-2): the test accuracy and the confusion matrix say nothing about them"]
    lines.clear()
    Trainer(tiny(), str(tmp_path / "run2"), progress=False, log=lines.append)
    assert not [line for line in lines if line.startswith("warning:")]


def test_a_synthetic_set_too_large_to_hold_is_refused_before_it_is_drawn():
    cfg = TrainConfig(dataset="synthetic", synthetic_classes=4, synthetic_train_per_class=1000,
                      synthetic_test_per_class=10, image_size=1024)
    with pytest.raises(TrainerError, match=r"the train split's 4000 images of 1024x1024 would take 11\.7 GiB"):
        load_data_source(cfg)
    with pytest.raises(TrainerError, match="would take"):
        load_data_source(cfg.replace(dataset="synthetic-parts"))


def test_the_job_options_range_of_synthetic_classes_is_what_the_synthetic_set_can_draw():
    # The service refuses a job beyond it at once, where the worker used to fail it later.
    from protopnet_trainer.synthetic import MAX_SYNTHETIC_CLASSES
    from protopnet_trainer.job_options import RANGES
    assert RANGES["--synthetic-classes"] == (2, MAX_SYNTHETIC_CLASSES)


@pytest.mark.parametrize("dataset", ["fashion-mnist", "synthetic", "synthetic-parts", "imagefolder"])
def test_every_data_set_reaches_dataloader_workers_started_with_spawn(dataset, tmp_path):
    """Workers started with spawn or forkserver (macOS, Windows, Linux from Python 3.14) receive the data set
    pickled: every split, its held-out tail included, must pickle and load the same images there."""
    import pickle
    from torch.utils.data import DataLoader
    data = None
    if dataset == "imagefolder":
        for split in ("train", "test"):
            for cls in ("one", "two"):
                os.makedirs(tmp_path / split / cls)
                for n in range(3):
                    Image.fromarray(np.full((20, 30, 3), 40 * n, np.uint8)).save(tmp_path / split / cls / f"{n}.png")
        data = str(tmp_path)
    cfg = TrainConfig(dataset=dataset, data=data, image_size=32, train_limit=60, test_limit=20,
                      calibration_holdout=2, synthetic_train_per_class=10, synthetic_test_per_class=5)
    source = load_data_source(cfg)
    for split in (source.train, source.test, source.holdout):
        images = ImageSet(split, cfg.image_size)
        copy = pickle.loads(pickle.dumps(images))
        assert all(torch.equal(copy[i][0], images[i][0]) for i in (0, len(split) - 1))
    if dataset == "imagefolder":   # one real worker process, started the way those platforms start them
        loader = DataLoader(ImageSet(source.holdout, cfg.image_size), batch_size=2, num_workers=1,
                            multiprocessing_context="spawn")
        (batch, labels, indices), = list(loader)
        assert torch.equal(batch[1], ImageSet(source.holdout, cfg.image_size)[1][0])


class _InterruptHandling(torch.utils.data.Dataset):
    """Each item: whether the process that loads it ignores SIGINT."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        import signal
        return torch.tensor(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


def test_loader_processes_leave_ctrl_c_to_the_main_process():
    # A terminal's Ctrl-C reaches every process of the group; loaders interrupted mid-batch printed tracebacks.
    from protopnet_trainer.data import make_loaders
    from protopnet_trainer.datasets import load_data_source
    cfg = TrainConfig(dataset="synthetic", image_size=16, synthetic_classes=2, synthetic_train_per_class=2,
                      synthetic_test_per_class=1, num_workers=1)
    loaders = make_loaders(cfg, load_data_source(cfg))
    for loader in (loaders.train, loaders.push, loaders.test):
        assert loader.worker_init_fn is not None and loader.num_workers == 1
        ignored = torch.utils.data.DataLoader(_InterruptHandling(), num_workers=1, worker_init_fn=loader.worker_init_fn)
        assert all(bool(batch) for batch in ignored)
    assert not all(bool(batch) for batch in torch.utils.data.DataLoader(_InterruptHandling(), num_workers=1))


def test_a_file_that_cannot_be_opened_is_told_by_the_systems_words(tmp_path):
    # The reason was cut after the path was taken out: "[Errno 2] No such file or directory:".
    os.symlink(tmp_path / "gone.png", tmp_path / "broken.png")
    with pytest.raises(TrainerError) as refused:
        open_image(str(tmp_path / "broken.png"))
    assert refused.value.reason == "No such file or directory"
    assert str(refused.value) == f"cannot decode image {tmp_path / 'broken.png'}: No such file or directory"


def test_cub_crop_is_clipped_to_the_image_on_each_axis(tmp_path):
    from protopnet_trainer.data import FileImages
    Image.new("RGB", (60, 40), (9, 9, 9)).save(tmp_path / "a.png")
    crop = FileImages([str(tmp_path / "a.png")], None, [(10.0, 5.0, 20.0, 50.0)])(0)   # box runs past the bottom
    assert crop.size == (20, 35)


def test_classes_txt_must_number_classes_1_to_k(tmp_path):
    from protopnet_trainer.datasets import load_cub200
    root = make_mini_cub(tmp_path / "CUB", 2)
    (root / "classes.txt").write_text("1 001.Red_bird\n2 002.Green_bird\n4 003.Blue_bird\n")
    with pytest.raises(TrainerError, match=r"number classes 1..K"):
        load_cub200(str(root), crop_to_box=False)


def test_cub_image_names_may_hold_spaces(tmp_path):
    from protopnet_trainer.datasets import load_cub200
    root = make_mini_cub(tmp_path / "CUB", 2)
    os.rename(root / "images/001.Red_bird/bird_0.png", root / "images/001.Red_bird/bird 0.png")
    rows = (root / "images.txt").read_text().splitlines()
    rows[0] = "1 001.Red_bird/bird 0.png"
    (root / "images.txt").write_text("\n".join(rows) + "\n")
    assert load_cub200(str(root), crop_to_box=False).train.ids[0] == "001.Red_bird/bird 0.png"


def test_an_empty_test_class_folder_is_allowed(tmp_path):
    from protopnet_trainer.datasets import load_imagefolder
    for split, classes in (("train", ("cat", "dog")), ("test", ("cat",))):
        for cls in classes:
            os.makedirs(tmp_path / split / cls)
            Image.new("RGB", (8, 8)).save(tmp_path / split / cls / "0.png")
    os.makedirs(tmp_path / "test" / "dog")
    source = load_imagefolder(str(tmp_path))
    assert source.test.labels == [0] and source.test.classes == ["cat", "dog"]


def test_transparency_is_composited_over_white_as_the_service_rounds(tmp_path):
    from protopnet_trainer.image_files import open_image
    c, a = np.meshgrid(np.arange(256), np.arange(256))
    rgba = np.stack([c, c, c, a], axis=-1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = np.asarray(open_image(str(tmp_path / "a.png")))[..., 0].astype(np.int64)
    assert np.array_equal(got, (c * a + 255 * (255 - a) + 127) // 255)


def test_every_transposing_orientation_swaps_the_sides():
    from protopnet_trainer.image_files import jpeg_draft_scale
    for orientation in (5, 6, 7, 8):
        assert jpeg_draft_scale((1000, 300), (100, 40), orientation) == 2, orientation


def test_float_grey_is_rounded_as_the_service_rounds(tmp_path):
    from protopnet_trainer.image_files import open_image
    Image.fromarray(np.array([[0.5, 0.1]], np.float32), "F").save(tmp_path / "f.tif")
    assert np.asarray(open_image(str(tmp_path / "f.tif")))[0, :, 0].tolist() == [128, 26]
