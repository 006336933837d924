"""A user's image folder as it comes: files that do not decode are found before training, all of them at once (or
left out with --skip-unreadable-images); what the reader passes over is said; two folders that are one class are
refused; TIFF orientation is applied once, as the service applies it."""
import os
import struct
import unicodedata

import numpy as np
import pytest
from PIL import Image

from protopnet_trainer.config import TrainConfig
from protopnet_trainer.data import ImageSet
from protopnet_trainer.datasets import load_data_source, load_imagefolder
from protopnet_trainer.errors import TrainerError
from protopnet_trainer.image_files import UnreadableImageError, open_image

COLOURS = {"cat": (220, 40, 40), "dog": (40, 40, 220)}


def image_folder(root, per_class=(4, 2)):
    """Each image its class's colour, its green channel 20 * its number: every file can be told from the others."""
    for split, count in zip(("train", "test"), per_class):
        for cls, (red, _, blue) in COLOURS.items():
            os.makedirs(root / split / cls, exist_ok=True)
            for n in range(count):
                Image.new("RGB", (24, 16), (red, 20 * n, blue)).save(root / split / cls / f"{n}.png")
    return root


def truncate(path, keep=60):
    data = path.read_bytes()
    path.write_bytes(data[:keep])



def config(root, **changes):
    return TrainConfig(dataset="imagefolder", data=str(root), image_size=16, **changes)


def test_every_unreadable_file_is_named_before_training(tmp_path):
    root = image_folder(tmp_path)
    truncate(root / "train" / "cat" / "1.png")
    (root / "test" / "dog" / "0.png").write_bytes(b"not an image at all")
    (root / "train" / "dog" / "3.png").write_bytes(b"")
    with pytest.raises(TrainerError) as refused:
        load_data_source(config(root))
    message = str(refused.value)
    # All three named at once, relative to the data folder, with what to do.
    assert message.startswith("3 of 12 image files cannot be read")
    for name in ("train/cat/1.png", "train/dog/3.png", "test/dog/0.png"):
        assert f"{name}: " in message
    assert "or pass --skip-unreadable-images to leave them out" in message
    assert str(tmp_path) not in message


def tiff_with_field_type(path, tag, field_type):
    """A sound RGB TIFF whose `tag` entry is then given another field type (its value bytes kept)."""
    Image.new("RGB", (24, 16), (200, 100, 50)).save(path)
    data = bytearray(path.read_bytes())
    directory = struct.unpack("<I", data[4:8])[0]
    for entry in range(directory + 2, directory + 2 + 12 * struct.unpack("<H", data[directory:directory + 2])[0], 12):
        if struct.unpack("<H", data[entry:entry + 2])[0] == tag:
            data[entry + 2:entry + 4] = struct.pack("<H", field_type)
    path.write_bytes(bytes(data))


def test_a_tiff_field_of_the_wrong_type_is_an_unreadable_file_not_a_crash(tmp_path):
    # Pillow raises TypeError for StripOffsets given as fractions (RATIONAL) or text (ASCII): a training run ended there.
    for field_type in (2, 5):
        tiff_with_field_type(tmp_path / "odd.tif", 273, field_type)
        with pytest.raises(UnreadableImageError, match="cannot be interpreted as an integer"):
            open_image(str(tmp_path / "odd.tif"))
    root = image_folder(tmp_path / "data")
    tiff_with_field_type(root / "train" / "cat" / "odd.tif", 273, 5)
    with pytest.raises(TrainerError, match=r"1 of 13 image files cannot be read \(train/cat/odd.tif: "):
        load_data_source(config(root))


def test_a_bad_file_among_the_calibration_holdout_is_found_before_training(tmp_path):
    root = image_folder(tmp_path)
    # The round-robin order puts dog/3.png last: the hold-out of 2 takes it, read only after the last epoch before.
    truncate(root / "train" / "dog" / "3.png")
    with pytest.raises(TrainerError, match=r"1 of 12 image files cannot be read \(train/dog/3.png: "):
        load_data_source(config(root, calibration_holdout=2))


def test_skip_unreadable_images_trains_without_them_and_says_which(tmp_path):
    root = image_folder(tmp_path)
    truncate(root / "train" / "cat" / "1.png")
    (root / "test" / "dog" / "0.png").write_bytes(b"not an image at all")
    truncate(root / "train" / "dog" / "3.png")
    said = []
    source = load_data_source(config(root, skip_unreadable_images=True, calibration_holdout=2), log=said.append)
    assert source.train.ids == ["cat/0.png", "dog/0.png", "dog/1.png", "cat/2.png", "dog/2.png"]
    assert source.train.labels == [0, 1, 1, 0, 1]
    assert source.holdout.ids == ["cat/3.png"]
    assert source.test.ids == ["cat/0.png", "cat/1.png", "dog/1.png"] and source.test.labels == [0, 0, 1]
    # The images left are the right ones: each loads as its own file (its class's colour, its number in green).
    for split in (source.train, source.holdout, source.test):
        images = ImageSet(split, 8)
        for index, (label, name) in enumerate(zip(split.labels, split.ids)):
            red, green = (float(images.image(index)[channel].mean()) for channel in (0, 1))
            assert (red > 0.5) == (label == 0), (split.name, name)
            assert round(green * 255 / 20) == int(name.split("/")[1].split(".")[0]), (split.name, name)
    warning = [line for line in said if line.startswith("warning: leaving out 3 of 12 image files")]
    assert len(warning) == 1 and "train/cat/1.png" in warning[0] and "test/dog/0.png" in warning[0]


def test_a_hold_out_left_without_images_is_refused_before_training(tmp_path):
    root = image_folder(tmp_path)
    truncate(root / "train" / "dog" / "3.png")   # the last in the round-robin order: the whole hold-out of 1
    with pytest.raises(TrainerError, match="--calibration-holdout 1: none of the held-out images can be read"):
        load_data_source(config(root, skip_unreadable_images=True, calibration_holdout=1), log=lambda line: None)


def test_a_class_left_without_training_images_by_skipping_says_why(tmp_path):
    root = image_folder(tmp_path)
    for n in range(4):
        (root / "train" / "dog" / f"{n}.png").write_bytes(b"not a png")
    with pytest.raises(TrainerError, match="1 of 2 classes have no training images left after leaving out the 4 image "
                                           r"files that cannot be read \(dog\)"):
        load_data_source(config(root, skip_unreadable_images=True), log=lambda line: None)


def test_a_command_checks_only_the_splits_it_reads(tmp_path):
    root = image_folder(tmp_path)
    truncate(root / "train" / "cat" / "2.png")
    # evaluate --split test and the scorecard read the test split: a bad training image does not stop them.
    source = load_data_source(config(root), read=("test",))
    assert len(source.train) == 8 and len(source.test) == 4
    with pytest.raises(TrainerError, match=r"1 of 8 image files cannot be read \(train/cat/2.png"):
        load_data_source(config(root), read=("train",))


def test_files_in_forms_the_service_refuses_are_named_in_a_warning(tmp_path):
    root = image_folder(tmp_path)
    Image.new("CMYK", (24, 16), (0, 200, 200, 0)).save(root / "train" / "cat" / "4.tif")
    Image.new("1", (24, 16), 1).save(root / "train" / "dog" / "4.tif")   # no BitsPerSample: the service mends that
    frames = [Image.new("RGB", (24, 16), colour) for colour in ((40, 40, 220), (40, 40, 200))]
    frames[0].save(root / "test" / "dog" / "2.webp", save_all=True, append_images=frames[1:])
    Image.new("RGB", (24, 16), (220, 40, 40)).save(root / "train" / "cat" / "5.tif")   # an RGB TIFF: served
    Image.new("I;16", (24, 16), 3000).save(root / "train" / "dog" / "5.tif")
    twelve_bits = bytearray((root / "train" / "dog" / "5.tif").read_bytes())   # its BitsPerSample made 12
    directory = struct.unpack("<I", twelve_bits[4:8])[0]
    for entry in range(directory + 2, directory + 2 + 12 * struct.unpack("<H", twelve_bits[directory:directory + 2])[0], 12):
        if struct.unpack("<H", twelve_bits[entry:entry + 2])[0] == 258:
            twelve_bits[entry + 8:entry + 10] = struct.pack("<H", 12)
    (root / "train" / "dog" / "5.tif").write_bytes(bytes(twelve_bits))
    planes = b"".join(struct.pack("<H", (level * 997) % 65536) for level in range(3 * 24 * 16))   # 16-bit red, green, blue planes
    fields = [(256, 24), (257, 16), (258, 16), (259, 1), (262, 2), (273, 8), (277, 3), (278, 16), (279, len(planes)), (284, 2)]
    entries = b"".join(struct.pack("<HHIHH", tag, 3, 1, value, 0) if tag != 273 and tag != 279 else struct.pack("<HHII", tag, 4, 1, value)
                       for tag, value in fields)
    (root / "test" / "cat" / "5.tif").write_bytes(b"II*\0" + struct.pack("<I", 8 + len(planes)) + planes + struct.pack("<H", len(fields)) + entries + b"\0\0\0\0")
    said = []
    source = load_data_source(config(root), log=said.append)
    assert len(source.train) == 12 and len(source.test) == 6   # trained on, all of them
    warning = [line for line in said if "forms the service does not decode" in line]
    assert len(warning) == 1, said
    assert warning[0].startswith("warning: 3 of 18 image files")
    assert "train/cat/4.tif: CMYK TIFF" in warning[0] and "train/dog/5.tif: 12-bit greyscale TIFF" in warning[0]
    assert "test/cat/5.tif: uncompressed planar 16-bit TIFF" in warning[0]
    # An RGB TIFF, a TIFF without BitsPerSample and an animated WebP (its first frame) are served.
    assert "train/cat/5.tif" not in warning[0] and "dog/4.tif" not in warning[0] and "2.webp" not in warning[0]


def test_what_the_reader_passes_over_is_said_and_mac_sidecar_files_do_not_stop_it(tmp_path):
    root = image_folder(tmp_path)
    # ._0.png: the AppleDouble file a Mac writes beside each image on an exFAT or network drive; not an image.
    (root / "train" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    (root / "train" / "cat" / "notes.txt").write_text("shot in May")
    os.makedirs(root / "train" / "dog" / "more")
    Image.new("RGB", (8, 8)).save(root / "train" / "dog" / "more" / "9.png")
    Image.new("RGB", (8, 8)).save(root / "train" / "loose.png")
    said = []
    source = load_data_source(config(root), log=said.append)
    assert len(source.train) == 8
    text = "\n".join(said)
    assert "1 hidden files: cat/._0.png" in text
    assert "1 subfolders (their images are not read): dog/more" in text
    assert "cat/notes.txt" in text and "1 files beside the class folders: loose.png" in text


def test_two_folders_that_are_one_class_are_refused(tmp_path):
    root = image_folder(tmp_path)
    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    for split in ("train", "test"):
        for name in (composed, decomposed):
            os.makedirs(root / split / name)
            Image.new("RGB", (8, 8)).save(root / split / name / "0.png")
    with pytest.raises(TrainerError, match="same name written in two Unicode forms"):
        load_imagefolder(str(root))
    for split in ("train", "test"):
        for name in (composed, decomposed):
            for file in os.listdir(root / split / name):
                os.remove(root / split / name / file)
            os.rmdir(root / split / name)
        os.symlink(root / split / "dog", root / split / "hound")
    with pytest.raises(TrainerError, match="'dog' and 'hound' .* are the same folder"):
        load_imagefolder(str(root))


@pytest.mark.parametrize("compression", [None, "tiff_deflate"])
def test_tiff_orientation_is_applied_once(tmp_path, compression):
    # A 30x20 picture, its top-left corner marked, stored with orientation 6 ("rotate 90 clockwise to view").
    stored = np.zeros((20, 30, 3), dtype=np.uint8)
    stored[:4, :4] = 255
    path = tmp_path / "rotated.tif"
    Image.fromarray(stored).save(path, tiffinfo={0x0112: 6}, **({"compression": compression} if compression else {}))
    upright = np.asarray(open_image(str(path)))
    # Viewed upright it is 20 wide and 30 high, the marked corner at the top right (Pillow applies a TIFF's
    # orientation as it loads; applying it again turned the picture upside down).
    assert upright.shape == (30, 20, 3)
    assert upright[:4, -4:].min() == 255 and upright[-4:, :4].max() == 0


class ThreadRanks:
    """Two ranks of a distributed run as two threads of this process: gather_objects meets the other rank's call."""

    def __init__(self, world_size):
        import threading
        self.barrier = threading.Barrier(world_size, timeout=60)   # a rank that failed breaks it rather than hang the run
        self.shared = [None] * world_size

    def rank(self, rank):
        ranks = self

        class Rank:
            world_size = len(ranks.shared)

            def __init__(self):
                self.rank = rank

            def gather_objects(self, value):
                ranks.shared[rank] = value
                ranks.barrier.wait()
                gathered = list(ranks.shared)
                ranks.barrier.wait()   # every rank has read before the next gather writes
                return gathered

        return Rank()


def test_a_distributed_run_checks_each_file_on_one_rank_and_every_rank_learns_all_that_was_found(tmp_path):
    import threading
    root = image_folder(tmp_path, per_class=(5, 3))
    truncate(root / "train" / "cat" / "1.png")
    truncate(root / "train" / "dog" / "4.png")
    (root / "test" / "cat" / "2.png").write_bytes(b"")
    # Forms the service refuses, one falling to each rank (images 2 and 3 of train, in the classes' round robin).
    Image.new("CMYK", (24, 16)).save(root / "train" / "cat" / "0.tif")
    Image.new("CMYK", (24, 16)).save(root / "train" / "dog" / "0.tif")
    ranks = ThreadRanks(2)
    results, checked, failures = [None, None], [[], []], []

    def run(rank):
        said = []
        try:
            source = load_data_source(config(root, skip_unreadable_images=True), log=said.append, group=ranks.rank(rank),
                                      on_checked=lambda done, total: checked[rank].append((done, total)))
        except BaseException as error:   # told below, rather than lost in the thread
            failures.append(error)
            ranks.barrier.abort()
            raise
        results[rank] = (source.train.ids, source.test.ids, source.left_out,
                         [line for line in said if "leaving out" in line or "forms the service" in line])

    threads = [threading.Thread(target=run, args=(rank,), daemon=True) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures and not any(thread.is_alive() for thread in threads), failures
    # Both ranks train on the same images, without the three bad ones, and say so alike.
    assert results[0] == results[1]
    train_ids, test_ids, left_out, (refused, warning) = results[0]
    assert refused.startswith("warning: 2 of 18 image files are in forms the service does not decode (train/cat/0.tif: CMYK "
                              "TIFF; train/dog/0.tif: CMYK TIFF)")
    assert left_out == 3 and len(train_ids) == 10 and len(test_ids) == 5
    assert "cat/1.png" not in train_ids and "dog/4.png" not in train_ids and "cat/2.png" not in test_ids
    assert warning.startswith("warning: leaving out 3 of 18 image files that cannot be read (train/cat/1.png: ")
    assert warning.index("train/cat/1.png") < warning.index("train/dog/4.png") < warning.index("test/cat/2.png")
    # Each rank decoded its half of the 18 files (9 each), its progress counted as the whole, up to all 18.
    assert [len(calls) for calls in checked] == [9, 9]
    assert all(calls[-1] == (18, 18) for calls in checked)


def test_ranks_findings_are_merged_in_split_order(tmp_path):
    from protopnet_trainer.image_check import found_by_every_rank
    from protopnet_trainer.image_files import UnreadableImageError

    class Ranks:
        def gather_objects(self, value):
            return [value, {"train": ([(1, "m1", "p1", "r1")], [])}]
    mine = {"train": ([(4, UnreadableImageError("m4", "p4", "r4"))], [])}
    merged = found_by_every_rank(mine, Ranks())
    assert [index for index, _ in merged["train"][0]] == [1, 4]
