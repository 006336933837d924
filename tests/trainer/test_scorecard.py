"""The scorecard of a real trained synthetic-parts bundle: in model.json and report/, equal to an independent
recomputation on the ONNX outputs (one image at a time through onnx_graph.run_graph, which test_export checks against
the torch model, and the single-map box), and measured again by
evaluate-interpretability without touching the bundle."""
import hashlib
import io
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from protopnet_trainer.cli import main
from protopnet_trainer.data import ImageSet
from protopnet_trainer.datasets import load_data_source
from protopnet_trainer.boxes import box_iou, high_activation_box, upsample_activation
from protopnet_trainer.onnx_graph import run_graph
from protopnet_trainer.pipeline import TrainJob, train_and_publish
from protopnet_trainer.scorecard import measure

from conftest import tiny_config


def tiny_parts_config(**changes):
    """synthetic-parts at its smallest: 3 classes of 32 px, a 4x4 feature map, two epochs."""
    values = dict(dataset="synthetic-parts", image_size=32, synthetic_classes=3, synthetic_train_per_class=10,
                  synthetic_test_per_class=4, small_cnn_widths=[8, 16, 16], small_cnn_pools=3, epochs=2,
                  warm_epochs=1, push_start=1, push_every=1)
    values.update(changes)
    return tiny_config(**values)


@pytest.fixture(scope="module")
def parts_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    cfg = tiny_parts_config()
    job = TrainJob(cfg, models=str(root / "models"), name="parts", run_dir=str(root / "run"), examples=2)
    path = train_and_publish(job, log=lambda line: None)
    with open(os.path.join(path, "model.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    return {"path": path, "manifest": manifest, "cfg": cfg, "root": root}


def test_train_publishes_the_scorecard_in_model_json_and_report(parts_bundle):
    block = parts_bundle["manifest"]["interpretability"]
    assert block["images"] == 12 and block["parts"] is True and block["split"] == "test"
    for key in ("pointingGame", "meanIou", "consistency", "noiseStability", "jpegStability", "backgroundShare",
                "accuracy"):
        assert 0.0 <= block[key] <= 1.0, key
    assert block["noiseSigma"] == 0.2 and block["jpegQuality"] == 75 and block["consistencyThreshold"] == 0.8
    assert block["deletion"]["ratio"] >= 0 and -1 <= block["deletion"]["meanDropTopBox"] <= 1
    assert len(block["prototypes"]) == 6 and [p["index"] for p in block["prototypes"]] == list(range(6))
    assert block["backgroundPrototypes"] == sum(p["background"] for p in block["prototypes"])
    assert block["accuracy"] == pytest.approx(parts_bundle["manifest"]["training"]["metrics"]["testAccuracy"], abs=1e-4)
    assert "report/interpretability.png" in parts_bundle["manifest"]["report"]
    with Image.open(os.path.join(parts_bundle["path"], "report", "interpretability.png")) as picture:
        assert picture.width > 300


def test_the_scorecard_picture_keeps_its_legend_off_the_prototypes_markers():
    """Points in every corner of the per-prototype axis: the legend stands beside the axis, never over a marker."""
    from protopnet_trainer.report import _pyplot, interpretability_figure
    corners = [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)] * 5
    block = {"images": 10, "deletion": {}, "pointingGame": 0.5, "consistency": 0.5, "noiseStability": 0.5,
             "jpegStability": 0.5, "backgroundShare": 0.1,
             "prototypes": [{"index": i, "consistency": c, "noiseStability": n, "jpegStability": c,
                             "background": i == 19} for i, (c, n) in enumerate(corners)]}
    figure = interpretability_figure(block)
    try:
        figure.canvas.draw()
        prototype_axis = figure.axes[1]
        legend = prototype_axis.get_legend().get_window_extent()
        assert not legend.overlaps(prototype_axis.get_window_extent())
        # The three measures of a prototype side by side around its index (they hid each other), each its own marker;
        # a background patch marked below 0.
        collections = prototype_axis.collections
        assert [c.get_label() for c in collections] == ["consistency", "noise stability", "JPEG stability",
                                                         "background patch (marked below 0)"]
        for collection, shift in zip(collections[:3], (-0.25, 0.0, 0.25)):
            assert np.allclose(collection.get_offsets()[:, 0], np.arange(20) + shift)
        assert len({tuple(map(tuple, c.get_paths()[0].vertices.round(3))) for c in collections[:3]}) == 3
        assert collections[3].get_offsets().tolist() == [[19.0, -0.05]]
    finally:
        _pyplot().close(figure)


def _independent(bundle, manifest, test_set, count):
    """Pointing game, mean IoU, JPEG stability and the top box's deletion drop of the first `count` test images,
    computed one image at a time from the graph's outputs (onnx_graph.run_graph), not through the scorecard's batches."""
    onnx_path = os.path.join(bundle, "model.onnx")
    weights = np.array(manifest["lastLayer"]["weights"])
    parts = test_set.split.parts
    images = torch.stack([test_set.image(n) for n in range(count)])

    def explain(batch):
        out = run_graph(onnx_path, batch.numpy())
        result = []
        for n in range(len(batch)):
            k = int(out["logits"][n].argmax())
            top = int((out["similarities"][n] * weights[k]).argmax())
            box = high_activation_box(upsample_activation(torch.from_numpy(out["similarity_maps"][n, top]), 32, 32))
            probability = np.exp(out["logits"][n] - out["logits"][n].max())
            result.append((k, top, box, float(probability[k] / probability.sum()), out["logits"][n]))
        return result

    def landed(box, n, allowed=None):
        hits = [(box_iou(box, b), p) for p, b in parts.boxes[n]
                if (allowed is None or p in allowed)
                and box[0] <= b[0] + b[2] / 2 <= box[0] + box[2] and box[1] <= b[1] + b[3] / 2 <= box[1] + box[3]]
        return max(hits)[1] if hits else None

    clean = explain(images)
    reencoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(np.clip(np.rint(image.permute(1, 2, 0).numpy() * 255), 0, 255).astype(np.uint8)).save(
            buffer, format="JPEG", quality=75)
        reencoded.append(torch.from_numpy(np.asarray(Image.open(io.BytesIO(buffer.getvalue())), np.float32) / 255)
                         .permute(2, 0, 1))
    jpeg = explain(torch.stack(reencoded))
    mean_colour = images.mean(dim=(0, 2, 3))
    filled = images.clone()
    for n, (_, _, (x, y, w, h), _, _) in enumerate(clean):
        filled[n, :, y:y + h, x:x + w] = mean_colour.view(-1, 1, 1)
    after = run_graph(onnx_path, filled.numpy())["logits"]
    pointing = iou = drop = jpeg_stable = 0.0
    for n, (k, top, box, probability, _) in enumerate(clean):
        defining = parts.class_parts[k]
        pointing += landed(box, n, defining) is not None
        iou += max((box_iou(box, b) for p, b in parts.boxes[n] if p in defining), default=0.0)
        shifted = np.exp(after[n] - after[n].max())
        drop += probability - shifted[k] / shifted.sum()
        jpeg_stable += jpeg[n][1] == top and landed(jpeg[n][2], n) == landed(box, n)
    return {"pointingGame": pointing / count, "meanIou": iou / count, "jpegStability": jpeg_stable / count,
            "meanDropTopBox": drop / count}


def test_scorecard_equals_an_independent_recomputation_on_the_onnx_outputs(parts_bundle):
    cfg = parts_bundle["cfg"]
    source = load_data_source(cfg.replace(augment=False))
    count = 6
    test_set = ImageSet(source.test.subset(count), cfg.image_size)
    manifest = parts_bundle["manifest"]
    block = measure(parts_bundle["path"], "model.onnx", manifest["prototypes"], manifest["lastLayer"]["weights"],
                    test_set, source.train)
    expected = _independent(parts_bundle["path"], manifest, test_set, count)
    assert block["images"] == count
    for key in ("pointingGame", "meanIou", "jpegStability"):
        assert block[key] == pytest.approx(expected[key], abs=1e-4), key
    assert block["deletion"]["meanDropTopBox"] == pytest.approx(expected["meanDropTopBox"], abs=1e-4)


def _digest(folder):
    digests = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, folder)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime)
    return digests


def test_evaluate_interpretability_measures_a_bundle_without_changing_it(parts_bundle, capsys):
    bundle = parts_bundle["path"]
    before = _digest(bundle)
    output = parts_bundle["root"] / "scorecard"
    assert main(["evaluate-interpretability", "--bundle", bundle, "--output", str(output)]) == 0
    assert _digest(bundle) == before
    with open(output / "interpretability.json", encoding="utf-8") as f:
        measured = json.load(f)
    published = parts_bundle["manifest"]["interpretability"]
    for key in ("images", "pointingGame", "meanIou", "consistency", "noiseStability", "jpegStability", "deletion",
                "backgroundShare", "prototypes", "accuracy"):
        assert measured[key] == published[key], key
    assert measured["dataset"] == "synthetic-parts"
    assert (output / "interpretability.png").is_file()
    assert "pointing game" in capsys.readouterr().out
    # The progress options every command takes: a bar of the graph's batches with --progress, none with --no-progress.
    assert main(["evaluate-interpretability", "--bundle", bundle, "--output", str(output), "--progress",
                 "--batch-size", "10"]) == 0
    assert "interpretability:" in capsys.readouterr().err
    assert main(["evaluate-interpretability", "--bundle", bundle, "--output", str(output), "--no-progress"]) == 0
    assert "interpretability:" not in capsys.readouterr().err
    # Refused: writing into the bundle, a data set with another number of classes, a bundle that is not one.
    assert main(["evaluate-interpretability", "--bundle", bundle, "--output", bundle]) == 2
    assert "immutable" in capsys.readouterr().err
    # A folder inside the bundle, and the bundle reached through a link, are the bundle too.
    link = parts_bundle["root"] / "link-to-bundle"
    link.symlink_to(bundle, target_is_directory=True)
    for inside in (os.path.join(bundle, "report"), str(link)):
        assert main(["evaluate-interpretability", "--bundle", bundle, "--output", inside]) == 2
        assert "immutable" in capsys.readouterr().err
    assert main(["evaluate-interpretability", "--bundle", str(link), "--output", bundle]) == 2
    assert "immutable" in capsys.readouterr().err
    assert _digest(bundle) == before
    assert main(["evaluate-interpretability", "--bundle", bundle, "--dataset", "synthetic-parts",
                 "--output", str(output), "--limit", "2"]) == 0
    assert main(["evaluate-interpretability", "--bundle", bundle, "--dataset", "synthetic", "--output", str(output)]) == 0
    assert main(["evaluate-interpretability", "--bundle", str(output), "--output", str(output / "x")]) == 2
    assert "cannot read" in capsys.readouterr().err
    # Refused before measuring: an output that is a file, a limit below one.
    assert main(["evaluate-interpretability", "--bundle", bundle, "--output", str(output / "interpretability.json")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["evaluate-interpretability", "--bundle", bundle, "--output", str(output), "--limit", "-3"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
    for size in ("0", "-2"):
        assert main(["evaluate-interpretability", "--bundle", bundle, "--output", str(output), "--batch-size", size]) == 2
        assert f"--batch-size must be at least 1 (got {size})" in capsys.readouterr().err
    # A copy of the bundle whose model.json has a part of the wrong type: one line, not a traceback.
    edited = parts_bundle["root"] / "edited-bundle"
    shutil.copytree(bundle, edited)
    for change, fragment in (({"classes": 5}, "its classes is 5, not a JSON array"),
                             ({"input": {**parts_bundle["manifest"]["input"], "width": "64"}}, 'its input.width is "64"')):
        (edited / "model.json").write_text(json.dumps({**parts_bundle["manifest"], **change}))
        assert main(["evaluate-interpretability", "--bundle", str(edited), "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert _digest(bundle) == before


def test_a_prototype_at_exactly_the_threshold_is_consistent():
    from protopnet_trainer.data import PartAnnotations
    from protopnet_trainer.interpretability import ImageRecords, PrototypeSource, scorecard
    part, elsewhere = (0, 0, 8, 8), (20, 20, 4, 4)
    records = ImageRecords()
    records.labels = records.predicted = [0] * 5
    for name in ("clean", "noise", "jpeg"):
        records.top[name] = [0] * 5
        records.top_box[name] = [part] * 5
        records.pair_box[name] = [part] * 4 + [elsewhere]
    records.pair_image, records.pair_prototype = list(range(5)), [0] * 5
    records.drop_top, records.drop_random = [0.1] * 5, [0.1] * 5
    image_parts = [[(0, part)]] * 5
    block = scorecard(records, [0], [PrototypeSource(np.zeros((32, 32, 1), np.float32), part, [(0, part)])],
                      PartAnnotations(["a"], [[0]], image_parts), image_parts)
    assert block["prototypes"][0]["consistency"] == 0.8 and block["consistency"] == 1.0


def test_a_prototype_source_gets_its_training_images_parts(tmp_path):
    from protopnet_trainer.data import PartAnnotations, Split
    from protopnet_trainer.scorecard import prototype_sources
    os.makedirs(tmp_path / "prototypes" / "0")
    Image.new("L", (16, 16)).save(tmp_path / "prototypes" / "0" / "source.png")
    parts = PartAnnotations(["a"], [[0]], [[(0, (1, 1, 4, 4))], [(0, (8, 8, 4, 4))]])
    train = Split("train", ["k"], 1, ["x0", "x1"], [0, 0], lambda i: None, parts=parts)
    entry = {"index": 0, "source": {"item": "x1", "box": {"x": 8, "y": 8, "width": 4, "height": 4}}}
    [source] = prototype_sources(str(tmp_path), [entry], train)
    assert source.parts == [(0, (8, 8, 4, 4))]


def test_half_the_prototypes_on_background_is_no_warning():
    from protopnet_trainer.scorecard import scorecard_warnings
    assert scorecard_warnings({"deletion": {"ratio": 2.0}, "prototypes": [{}] * 4, "backgroundPrototypes": 2}) == []
    assert len(scorecard_warnings({"deletion": {"ratio": 2.0}, "prototypes": [{}] * 4, "backgroundPrototypes": 3})) == 1


def test_evaluate_interpretability_limit_caps_the_images(parts_bundle, tmp_path):
    from protopnet_trainer.cli import main
    assert main(["evaluate-interpretability", "--bundle", parts_bundle["path"], "--output", str(tmp_path / "o"),
                 "--limit", "2"]) == 0
    assert json.loads((tmp_path / "o" / "interpretability.json").read_text())["images"] == 2
