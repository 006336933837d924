"""The interpretability measures on cases whose answer is known: graphs whose boxes are forced onto the true parts
score 100 %, forced elsewhere 0 %; and the vectorised box equals the service's (boxes.high_activation_box)."""
import numpy as np
import pytest
import torch

from protopnet_trainer.data import PartAnnotations
from protopnet_trainer.interpretability import (NO_PART, PrototypeSource, border_background, collect, deletion_ratio,
                                                high_activation_boxes, lands_on, pointing_game,
                                                prototype_consistency, random_box_elsewhere, same_mapping, scorecard,
                                                stability, upsample_maps)
from protopnet_trainer.boxes import high_activation_box, upsample_activation

SIZE = 32


def test_vectorised_boxes_equal_the_single_map_box():
    generator = torch.Generator().manual_seed(4)
    maps = torch.rand(40, 4, 4, generator=generator)
    maps[3] = 1.0                                   # flat: the whole image
    maps[4] = 0.0
    maps[4, 0, 0] = maps[4, 3, 3] = 2.0             # two equal maxima: one box around both
    maps[5] = torch.arange(16.0).view(4, 4) * 1e-12  # nearly flat
    upsampled = upsample_maps(maps, 28, 28)
    boxes = high_activation_boxes(upsampled)
    for n in range(len(maps)):
        single = upsample_activation(maps[n], 28, 28)
        assert np.array_equal(single, upsampled[n])
        assert tuple(boxes[n]) == high_activation_box(single), n
    assert tuple(boxes[3]) == (0, 0, 28, 28)


def test_a_box_lands_on_the_part_whose_centre_it_holds():
    parts = [(0, (2, 2, 6, 6)), (1, (20, 20, 8, 8))]
    assert lands_on((0, 0, 10, 10), parts) == 0
    assert lands_on((18, 18, 12, 12), parts) == 1
    assert lands_on((10, 10, 6, 6), parts) == NO_PART
    assert lands_on((0, 0, 32, 32), parts) == 1          # both centres: the larger IoU wins


def test_measures_on_known_lists():
    image_parts = [[(0, (0, 0, 8, 8)), (1, (20, 20, 8, 8))], [(1, (10, 10, 8, 8)), (2, (0, 20, 8, 8))]]
    class_parts = [[0, 1], [1, 2]]
    on_parts = [(0, 0, 8, 8), (0, 20, 8, 8)]
    assert pointing_game(on_parts, [0, 1], image_parts, class_parts) == (1.0, 1.0)
    assert pointing_game([(24, 0, 8, 8), (24, 0, 8, 8)], [0, 1], image_parts, class_parts) == (0.0, 0.0)
    # Predicted class 1 on image 0: part 0 is not one of its parts, part 1 (20, 20) is.
    assert pointing_game([(0, 0, 8, 8)], [1], image_parts[:1], class_parts)[0] == 0.0
    assert prototype_consistency([2, 2, 2, 2, 1]) == (0.8, 2)
    assert prototype_consistency([NO_PART, NO_PART, 3]) == (pytest.approx(1 / 3), 3)
    assert prototype_consistency([NO_PART]) == (0.0, NO_PART)
    assert stability([0, 1], [0, 1], on_parts, on_parts, image_parts) == 1.0
    assert stability([0, 1], [1, 1], on_parts, [(0, 0, 8, 8), (24, 0, 8, 8)], image_parts) == 0.0
    assert same_mapping((0, 0, 10, 10), (1, 1, 10, 10), None) and not same_mapping((0, 0, 4, 4), (10, 10, 4, 4), None)
    assert deletion_ratio([0.5, 0.3], [0.1, 0.1]) == {"meanDropTopBox": 0.4, "meanDropRandomBox": 0.1, "ratio": 4.0}
    assert deletion_ratio([0.2], [0.0])["ratio"] == 20.0          # the random drop is floored at 0.01


def test_random_box_is_elsewhere():
    rng = np.random.RandomState(0)
    for _ in range(50):
        x, y, w, h = random_box_elsewhere((10, 12, 8, 6), 32, 32, rng)
        assert (w, h) == (8, 6) and 0 <= x <= 24 and 0 <= y <= 26
        assert x + w <= 10 or x >= 18 or y + h <= 12 or y >= 18
    # No free position: the least overlap.
    assert random_box_elsewhere((0, 0, 20, 32), 32, 32, rng)[0] == 12


def test_background_patches_of_a_uniform_border():
    image = np.zeros((28, 28, 1), dtype=np.float32)
    image[6:22, 8:20] = 0.8                                         # a garment on black
    assert border_background(image, (0, 0, 8, 8))                  # a black corner
    assert not border_background(image, (8, 6, 12, 16))             # the garment
    assert not border_background(image, (4, 4, 8, 8))               # half and half
    noisy = np.random.RandomState(1).uniform(0, 1, size=(28, 28, 1)).astype(np.float32)
    assert not border_background(noisy, (0, 0, 8, 8))               # no background colour on the border


# ---------------------------------------------------------------------------------------------- whole passes

def _data(count=12):
    """Black images with white squares at the parts of their class: class k has parts k and k + 1 (of 3)."""
    rng = np.random.RandomState(7)
    class_parts = [[0, 1], [1, 2], [2, 0]]
    images = torch.zeros(count, 3, SIZE, SIZE)
    labels, boxes = [], []
    for n in range(count):
        label = n % 3
        first = (int(rng.randint(0, 8)), int(rng.randint(0, 20)), 6, 6)
        second = (int(rng.randint(18, 26)), int(rng.randint(0, 20)), 6, 6)
        for x, y, w, h in (first, second):
            images[n, :, y:y + h, x:x + w] = 1.0
        labels.append(label)
        boxes.append([(class_parts[label][0], first), (class_parts[label][1], second)])
    return images, labels, PartAnnotations(["a", "b", "c"], class_parts, boxes)


# Each class's first prototype weighs more than its second: the top prototype is never a tie.
WEIGHTS = torch.tensor([[(1.0 if j % 2 == 0 else 0.6) if j // 2 == k else -0.5 for j in range(6)] for k in range(3)])


class ForcedGraph:
    """A graph whose prototype j (class j // 2, the class's part j % 2) peaks on that part's true box, or on a
    corner holding no part (`onto_parts=False`). Its similarity is the brightness of the peak's box in the image, so
    filling that box with the mean colour lowers the class's probability; its maps do not depend on noise."""

    def __init__(self, annotations, onto_parts=True):
        self.annotations, self.onto_parts = annotations, onto_parts
        self.current = None          # the true boxes of the batch being run

    def __call__(self, images):
        count = len(images)
        maps = torch.zeros(count, 6, 8, 8)
        similarities = torch.zeros(count, 6)
        for n in range(count):
            for j in range(6):
                parts = dict(self.current[n])
                part = self.annotations.class_parts[j // 2][j % 2]
                if part in parts and self.onto_parts:
                    x, y, w, h = parts[part]
                else:
                    x, y, w, h = 13, 26, 6, 6          # bottom middle: no part there
                brightness = float(images[n, :, y:y + h, x:x + w].mean())
                maps[n, j, (y + h // 2) // 4, (x + w // 2) // 4] = 5.0 * brightness + 1.0   # a peak, never flat
                similarities[n, j] = 5.0 * brightness
        return {"logits": similarities @ WEIGHTS.t(), "similarities": similarities, "similarity_maps": maps}


def _run(graph, images, labels, annotations):
    def batches():
        for start in range(0, len(labels), 5):
            graph.current = annotations.boxes[start:start + 5]
            yield images[start:start + 5], labels[start:start + 5]
    weights = WEIGHTS
    classes = [j // 2 for j in range(6)]
    records = collect(graph, batches(), weights, torch.tensor(classes), images.mean(dim=(0, 2, 3)))
    sources = [PrototypeSource(images[0].permute(1, 2, 0).numpy(), annotations.boxes[0][0][1],
                               annotations.boxes[0]) for _ in range(6)]
    return records, scorecard(records, classes, sources, annotations, annotations.boxes)


def test_boxes_forced_onto_the_true_parts_score_100_percent():
    images, labels, annotations = _data()
    records, block = _run(ForcedGraph(annotations), images, labels, annotations)
    assert block["accuracy"] == 1.0
    assert block["pointingGame"] == 1.0 and block["consistency"] == 1.0
    assert block["noiseStability"] == 1.0 and block["jpegStability"] == 1.0
    assert block["meanIou"] > 0.3
    assert all(p["consistency"] == 1.0 and p["noiseStability"] == 1.0 for p in block["prototypes"])
    assert [p["part"] for p in block["prototypes"]] == ["a", "b", "b", "c", "c", "a"]
    # Filling the top box removes the part; a random box elsewhere never touches it in these images... but may touch
    # the class's other part, so it drops less.
    assert block["deletion"]["meanDropTopBox"] > 0.2
    assert block["deletion"]["ratio"] > 1.5
    assert block["backgroundPrototypes"] == 0


def test_a_class_without_test_images_leaves_its_prototypes_unmeasured():
    images, labels, annotations = _data()
    kept = [n for n, label in enumerate(labels) if label != 2]
    annotations = PartAnnotations(annotations.names, annotations.class_parts, [annotations.boxes[n] for n in kept])
    records, block = _run(ForcedGraph(annotations), images[kept], [labels[n] for n in kept], annotations)
    # Class 2's prototypes (4, 5) were never seen: not measured, rather than "inconsistent" pulling the share down.
    assert [p["consistency"] for p in block["prototypes"]] == [1.0, 1.0, 1.0, 1.0, None, None]
    assert [p["noiseStability"] for p in block["prototypes"]][4:] == [None, None]
    assert block["consistency"] == 1.0


def test_boxes_forced_elsewhere_score_0_percent():
    images, labels, annotations = _data()
    records, block = _run(ForcedGraph(annotations, onto_parts=False), images, labels, annotations)
    assert block["pointingGame"] == 0.0 and block["meanIou"] == 0.0 and block["consistency"] == 0.0
    assert all(p["part"] is None for p in block["prototypes"])
    # Nothing is there: filling the box changes nothing.
    assert block["deletion"]["meanDropTopBox"] == pytest.approx(0.0, abs=1e-6)


def test_maps_that_move_under_perturbation_are_unstable():
    images, labels, annotations = _data()
    clean = images.clone()
    forced = ForcedGraph(annotations)

    class Moving:
        current = None

        def __call__(self, batch):
            forced.current = self.current
            out = forced(batch)
            if not any(torch.equal(batch[n], c) for n in range(len(batch)) for c in clean):
                # A perturbed image: every prototype now peaks at the opposite corner.
                out["similarity_maps"] = out["similarity_maps"].flip(-1).flip(-2)
            return out

    records, block = _run(Moving(), images, labels, annotations)
    assert block["pointingGame"] == 1.0
    assert block["noiseStability"] == 0.0 and block["jpegStability"] == 0.0
