"""The published bundle against MODEL_BUNDLE.md: ONNX graph, manifest, probe, pictures, atomic publish."""
import copy
import hashlib
import json
import os

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch
from PIL import Image

from protopnet_trainer import export as export_module
from protopnet_trainer.export import write_bundle
from protopnet_trainer.checkpoint import load_checkpoint, model_from_checkpoint
from protopnet_trainer.errors import TrainerError
from protopnet_trainer.manifest import manifest_text
from protopnet_trainer.onnx_graph import run_graph
from protopnet_trainer.interrupts import Terminated, disguised_interrupt

OUTPUTS = ["logits", "similarities", "similarity_maps", "min_distances"]


def _dims(value_info):
    return [d.dim_param if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _manifest(bundle):
    with open(os.path.join(bundle["path"], "model.json"), encoding="utf-8") as f:
        return json.load(f)


def _ramp(channels, height, width):
    """The contract's probe, computed here independently of the trainer."""
    i = np.arange(channels * height * width, dtype=np.int64)
    return (((i * 7919) % 1000) / 999.0).astype(np.float32).reshape(1, channels, height, width)


def test_onnx_names_shapes_opset_and_dynamic_batch(trained_bundle):
    model = onnx.load(os.path.join(trained_bundle["path"], "model.onnx"))
    onnx.checker.check_model(model)
    graph = onnx.shape_inference.infer_shapes(model).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == OUTPUTS
    assert _dims(graph.input[0]) == ["N", 3, 16, 16]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    shapes = {o.name: _dims(o) for o in graph.output}
    assert shapes == {"logits": ["N", 3], "similarities": ["N", 6], "similarity_maps": ["N", 6, 4, 4],
                      "min_distances": ["N", 6]}
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in graph.output)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17


def test_onnx_graph_computes_what_the_torch_model_computes_for_any_batch(trained_bundle):
    """Run the exported graph with an independent evaluator on a batch of 3 (dynamic N) and compare."""
    model = model_from_checkpoint(load_checkpoint(os.path.join(trained_bundle["root"], "run", "checkpoints",
                                                                    "final.pt"))).eval()
    images = np.concatenate([_ramp(3, 16, 16), np.random.RandomState(0).rand(2, 3, 16, 16).astype(np.float32)])
    values = run_graph(os.path.join(trained_bundle["path"], "model.onnx"), images)
    with torch.no_grad():
        expected = model(torch.from_numpy(images))
    for name in OUTPUTS:
        assert values[name].shape == tuple(getattr(expected, name).shape)
        np.testing.assert_allclose(values[name], getattr(expected, name).numpy(), rtol=1e-4, atol=1e-4)
    # Normalisation is inside the graph: (image - mean) / std are its first operations.
    graph = onnx.load(os.path.join(trained_bundle["path"], "model.onnx")).graph
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    first, second = graph.node[0], graph.node[1]
    assert first.op_type == "Sub" and first.input[0] == "image" and second.op_type == "Div"
    assert second.input[0] == first.output[0]
    np.testing.assert_allclose(constants[first.input[1]].ravel(), [0.2] * 3, rtol=1e-6)
    np.testing.assert_allclose(constants[second.input[1]].ravel(), [0.3] * 3, rtol=1e-6)


def test_manifest_fields(trained_bundle):
    manifest = _manifest(trained_bundle)
    path = trained_bundle["path"]
    assert manifest["format"] == "protopnet-bundle" and manifest["formatVersion"] == 1
    assert manifest["name"] == "tiny" and manifest["version"] == os.path.basename(path)
    assert manifest["createdUtc"].endswith("Z")
    with open(os.path.join(path, "model.onnx"), "rb") as f:
        assert manifest["onnx"] == {"file": "model.onnx", "sha256": hashlib.sha256(f.read()).hexdigest(),
                                    "opset": 17}
    assert manifest["input"] == {"channels": 3, "height": 16, "width": 16, "colorSpace": "rgb",
                                 "resize": "stretch", "interpolation": "bilinear", "contrast": "none", "jpegDraft": True,
                                 "mean": pytest.approx([0.2] * 3), "std": pytest.approx([0.3] * 3)}
    assert manifest["classes"] == [{"index": k, "name": f"pattern-{k}"} for k in range(3)]
    assert manifest["featureMap"] == {"height": 4, "width": 4}
    assert manifest["similarity"] == {"function": "log", "epsilon": 0.0001}
    training = manifest["training"]
    assert training["dataset"] == "synthetic" and training["trainSize"] == 36 and training["testSize"] == 12
    assert training["backbone"] == "small-cnn" and training["epochs"] == 3 and training["seconds"] > 0
    assert 0 <= training["metrics"]["testAccuracy"] <= 1 and 0 <= training["metrics"]["trainAccuracy"] <= 1
    assert 0 <= training["baseline"]["testAccuracy"] <= 1
    assert training["baseline"]["testAccuracy"] == trained_bundle["result"].baseline.test_accuracy
    assert training["software"]["torch"] == torch.__version__ and training["software"]["trainer"]
    assert training["pushEpochs"] == [2, 3]


def test_manifest_prototypes_last_layer_and_pictures(trained_bundle):
    manifest = _manifest(trained_bundle)
    model = trained_bundle["result"].model
    weights = np.array(manifest["lastLayer"]["weights"])
    assert weights.shape == (3, 6)
    assert np.array_equal(weights.astype(np.float32), model.last_layer.weight.detach().numpy())
    split = trained_bundle["trainer"].source.train
    for j, prototype in enumerate(manifest["prototypes"]):
        assert prototype["index"] == j and prototype["classIndex"] == j // 2
        source = prototype["source"]
        assert source["split"] == "train"
        item = split.ids.index(source["item"])
        assert split.labels[item] == prototype["classIndex"]
        cell = source["featureCell"]
        assert cell == trained_bundle["result"].records[j]["featureCell"]
        with torch.no_grad():   # the prototype is the patch at that cell of that image: row and column not swapped
            image = trained_bundle["trainer"].loaders.push_set.image(item)[None]
            distance = model.distances(model.features(image))[0, j, cell["row"], cell["column"]]
        assert float(distance) <= 1e-5
        box = source["box"]
        assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 16 and box["y"] + box["height"] <= 16
        assert prototype["images"] == {k: f"prototypes/{j}/{k}.png" for k in ("patch", "source", "activation")}
        sizes = {k: Image.open(os.path.join(trained_bundle["path"], v)).size for k, v in prototype["images"].items()}
        assert sizes == {"patch": (box["width"], box["height"]), "source": (16, 16), "activation": (16, 16)}


def test_a_pruned_models_manifest_gives_each_prototype_its_own_class(trained_bundle, tmp_path):
    result = trained_bundle["result"]
    model = copy.deepcopy(result.model)
    keep = [0, 2, 3, 5]                                      # classes 0, 1, 1, 2: no longer index // 2
    model.keep_prototypes(torch.tensor(keep))
    version = write_bundle(str(tmp_path), "pruned", model, classes=["a", "b", "c"], channels=3, image_size=16,
                           interpolation="bilinear", records=[result.records[j] for j in keep], training={},
                           jpeg_draft=True)
    with open(os.path.join(version, "model.json"), encoding="utf-8") as f:
        prototypes = json.load(f)["prototypes"]
    assert [p["classIndex"] for p in prototypes] == [0, 1, 1, 2]
    assert [p["source"]["item"] for p in prototypes] == [str(result.records[j]["itemId"]) for j in keep]


def test_probe_matches_the_torch_model(trained_bundle):
    manifest = _manifest(trained_bundle)
    probe = manifest["probe"]
    assert probe["input"] == "ramp-7919"
    model = model_from_checkpoint(load_checkpoint(os.path.join(trained_bundle["root"], "run", "checkpoints",
                                                                    "final.pt"))).eval()
    with torch.no_grad():
        out = model(torch.from_numpy(_ramp(3, 16, 16)))
    np.testing.assert_allclose(probe["logits"], out.logits[0].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probe["similarities"], out.similarities[0].numpy(), rtol=1e-5, atol=1e-5)
    # The invariant the service checks: logits = W . similarities.
    weights = np.array(manifest["lastLayer"]["weights"])
    np.testing.assert_allclose(weights @ np.array(probe["similarities"]), probe["logits"], rtol=1e-4, atol=1e-5)


def _visible_versions(family):
    if not os.path.isdir(family):
        return []
    return [d for d in os.listdir(family) if not d.startswith(".")]


@pytest.mark.parametrize("failing", ["file_sha256", "export_onnx"])
def test_interrupted_publish_leaves_no_version(trained_bundle, tmp_path, monkeypatch, failing):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt()

    monkeypatch.setattr(export_module, failing, interrupt)
    result = trained_bundle["result"]
    with pytest.raises(KeyboardInterrupt):
        write_bundle(str(tmp_path), "tiny", result.model, classes=["a", "b", "c"], channels=3, image_size=16,
                     interpolation="bilinear", records=result.records, training={}, jpeg_draft=True)
    assert _visible_versions(tmp_path / "tiny") == []
    assert os.listdir(tmp_path / "tiny") == []          # the staging folder is gone too


def test_publish_writes_the_manifest_last_and_renames_atomically(trained_bundle, tmp_path, monkeypatch):
    seen = {}
    real_rename = os.rename

    def watching_rename(src, dst):
        seen["staging"] = os.path.basename(src)
        seen["files"] = sorted(os.listdir(src))
        seen["visible_before"] = _visible_versions(tmp_path / "tiny")
        real_rename(src, dst)

    monkeypatch.setattr(export_module.os, "rename", watching_rename)
    result = trained_bundle["result"]
    first = write_bundle(str(tmp_path), "tiny", result.model, classes=["a", "b", "c"], channels=3, image_size=16,
                         interpolation="bilinear", records=result.records, training={}, jpeg_draft=True)
    assert seen["staging"] == ".staging-" + os.path.basename(first)
    assert seen["files"] == ["model.json", "model.onnx", "prototypes"] and seen["visible_before"] == []
    second = write_bundle(str(tmp_path), "tiny", result.model, classes=["a", "b", "c"], channels=3, image_size=16,
                          interpolation="bilinear", records=result.records, training={}, jpeg_draft=True)
    assert os.path.basename(second) > os.path.basename(first)    # sortable versions, never overwritten


def test_a_publish_removes_staging_folders_abandoned_a_day_ago_and_leaves_recent_ones(tmp_path):
    import datetime as dt
    from protopnet_trainer.publish import publish
    family = tmp_path / "tiny"
    recent = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    for entry in (".staging-20200101T000000Z", f".staging-{recent}", ".staging-not-a-version", ".hidden"):
        os.makedirs(family / entry)

    def fill(folder: str, version: str) -> dict:
        return {"name": "tiny", "version": version}

    published = publish(str(tmp_path), "tiny", fill)
    # Killed publishes leave staging folders (kill -9 runs no clean-up); another publish may still be writing a recent one.
    assert sorted(os.listdir(family)) == sorted([".hidden", f".staging-{recent}", ".staging-not-a-version",
                                                 os.path.basename(published)])


def test_manifest_text_is_the_same_json_with_number_rows_on_one_line():
    manifest = {"lastLayer": {"weights": [[1.0, -0.5], [0.25, 1e-9]]}, "probe": {"logits": [0.1, 2]},
                "flags": [True, False], "name": "row-x-0", "empty": []}
    text = manifest_text(manifest)
    assert json.loads(text) == manifest
    assert "[1.0, -0.5]" in text and "[0.1, 2]" in text
    # A NaN or infinity (a scorecard measure with nothing to measure, say) is null: Python would write NaN, which is not
    # JSON, and the service would refuse the whole bundle for it.
    odd = manifest_text({"interpretability": {"meanIou": float("nan")}, "probe": {"logits": [0.5, float("inf")]}})
    assert "NaN" not in odd and "Infinity" not in odd
    assert json.loads(odd) == {"interpretability": {"meanIou": None}, "probe": {"logits": [0.5, None]}}


def test_report_files(trained_bundle):
    manifest = _manifest(trained_bundle)
    assert manifest["report"] == ["report/curves.png", "report/confusion.png", "report/gallery.png"]
    for name in manifest["report"]:
        with Image.open(os.path.join(trained_bundle["path"], name)) as picture:
            assert picture.format == "PNG" and picture.width > 100
    confusion = trained_bundle["result"].confusion
    assert confusion.shape == (3, 3) and confusion.sum() == 12
    assert np.trace(confusion) / 12 == pytest.approx(manifest["training"]["metrics"]["testAccuracy"])


def test_the_gallery_draws_class_names_in_any_script(trained_bundle, tmp_path):
    # PIL's built-in font raised UnicodeEncodeError on a class folder named in Chinese, after the whole training.
    from protopnet_trainer.report import prototype_gallery
    manifest = _manifest(trained_bundle)
    names = ["猫", "犬 🐱", "Ünïcode"]
    path = str(tmp_path / "gallery.png")
    prototype_gallery(manifest["prototypes"], names, trained_bundle["path"], path)
    latin = str(tmp_path / "latin.png")
    prototype_gallery(manifest["prototypes"], ["a", "b", "c"], trained_bundle["path"], latin)
    with Image.open(path) as picture, Image.open(latin) as other:
        assert picture.size == other.size
        # The labels were drawn: the label column differs where the names differ.
        assert np.asarray(picture)[:, :140].tobytes() != np.asarray(other)[:, :140].tobytes()


def test_the_gallery_keeps_a_patch_its_shape_and_names_each_prototype(tmp_path):
    # A 4x20 patch was stretched to a square (drawn as bars); the tiles had no index to find them in model.json by.
    from protopnet_trainer.report import prototype_gallery
    os.makedirs(tmp_path / "prototypes" / "7")
    Image.new("RGB", (4, 20), (255, 0, 0)).save(tmp_path / "prototypes" / "7" / "patch.png")
    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "prototypes" / "7" / "source.png")
    prototype = {"index": 7, "classIndex": 0, "images": {"patch": "prototypes/7/patch.png", "source": "prototypes/7/source.png"},
                 "source": {"box": {"x": 8, "y": 0, "width": 4, "height": 20}}}
    path = str(tmp_path / "gallery.png")
    prototype_gallery([prototype], ["only"], str(tmp_path), path)
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    header, label_width, tile = 24, 140, 64
    patch_tile = pixels[header + 4:header + 4 + tile, label_width + 4:label_width + 4 + tile]
    red = (patch_tile[:, :, 0] > 200) & (patch_tile[:, :, 1] < 60) & (patch_tile[:, :, 2] < 60)
    columns = np.flatnonzero(red.any(axis=0))
    assert 12 <= len(columns) <= 13 and red.any(axis=1).sum() >= 60   # 4x20 scaled to 13x64, not 64x64
    assert abs((columns[0] + columns[-1]) / 2 - tile / 2) <= 1.5       # centred
    # The index is written on the tile: dark pixels at its top-left corner, where the patch alone has none.
    assert (patch_tile[:12, :20].sum(axis=2) < 200).any()
    # The header line says what the tiles are: dark pixels in the first rows.
    assert (pixels[:header, :].sum(axis=2) < 200).any()
    # The source tile (32x32 scaled by 2) boxes the patch where it is: x 8-11 and y 0-19 become columns 16-23, rows 0-39.
    source_tile = pixels[header + 4:header + 4 + tile, label_width + 4 + tile + 2:label_width + 4 + 2 * tile + 2]
    yellow = (source_tile[:, :, 0] > 200) & (source_tile[:, :, 1] > 200) & (source_tile[:, :, 2] < 60)
    rows, columns = np.flatnonzero(yellow.any(axis=1)), np.flatnonzero(yellow.any(axis=0))
    assert (columns.min(), columns.max()) == (16, 23) and (rows.min(), rows.max()) == (0, 39)


def test_the_curves_name_what_each_line_is():
    # The separation term was labelled a loss, which rising is good; the push epochs are marked before and after.
    from protopnet_trainer.report import _pyplot, curves_figure
    terms = {"loss_total": 1.0, "loss_cross_entropy": 0.5, "loss_cluster": 0.4, "loss_separation": 2.0}
    history = [{"epoch": 1, "train_accuracy": 0.5, "test_accuracy": 0.5, **terms},
               {"epoch": 2, "train_accuracy": 0.6, "test_accuracy": 0.7, "pushed": True, "test_accuracy_before_push": 0.65, **terms}]
    figure = curves_figure(history, baseline_history=[0.4, 0.6])
    try:
        accuracy_axis, loss_axis = figure.axes
        accuracy_labels = [t.get_text() for t in accuracy_axis.get_legend().get_texts()]
        loss_labels = [t.get_text() for t in loss_axis.get_legend().get_texts()]
        assert {"test before push", "test after push + last layer", "black-box baseline (test)"} <= set(accuracy_labels)
        assert "separation: distance to the nearest other-class prototype (higher is better)" in loss_labels
        assert not any("loss" in label for label in loss_labels)
        assert all(tick == int(tick) for tick in accuracy_axis.get_xticks())   # whole epochs
        # The legends stand below their charts and within the picture: the loss terms' long names made a box wider
        # than its chart, over the curves.
        figure.canvas.draw()
        picture = figure.get_window_extent()
        for axis in (accuracy_axis, loss_axis):
            legend = axis.get_legend().get_window_extent()
            assert not legend.overlaps(axis.get_window_extent())
            assert picture.x0 <= legend.x0 and legend.x1 <= picture.x1 and picture.y0 <= legend.y0
    finally:
        _pyplot().close(figure)


def test_confusion_matrix_counts():
    from protopnet_trainer.evaluate import confusion_matrix
    matrix = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_example_images(trained_bundle):
    manifest = _manifest(trained_bundle)
    test_set = trained_bundle["trainer"].loaders.test_set
    assert manifest["examples"] == [{"file": "examples/0.png", "classIndex": 0},
                                    {"file": "examples/1.png", "classIndex": 1}]
    for n, example in enumerate(manifest["examples"]):
        pixels = np.asarray(Image.open(os.path.join(trained_bundle["path"], example["file"])), dtype=np.float64)
        index = test_set.split.labels.index(example["classIndex"])          # the first test image of that class
        expected = test_set.image(index).permute(1, 2, 0).numpy() * 255
        assert pixels.shape == (16, 16, 3) and np.abs(pixels - expected).max() <= 0.5 + 1e-6


def test_an_export_that_needs_a_lower_opset_says_why_and_one_that_fails_names_the_preferred_opsets_error(
        trained_bundle, tmp_path, monkeypatch, capsys):
    model = model_from_checkpoint(load_checkpoint(os.path.join(trained_bundle["root"], "run", "checkpoints", "final.pt")))
    real_export = torch.onnx.export

    def export_below(limit):
        def export(*args, opset_version, **kwargs):
            if opset_version > limit:
                raise RuntimeError(f"Exporting the operator 'aten::fancy' to ONNX opset version {opset_version} is not supported.\nmore")
            return real_export(*args, opset_version=opset_version, **kwargs)
        return export

    monkeypatch.setattr(torch.onnx, "export", export_below(15))
    assert export_module.export_onnx(model, 3, 16, 16, str(tmp_path / "lower.onnx")) == 15
    assert "opset 17 failed (Exporting the operator 'aten::fancy' to ONNX opset version 17 is not supported.); " \
           "exported with opset 15" in capsys.readouterr().out

    monkeypatch.setattr(torch.onnx, "export", export_below(0))
    with pytest.raises(export_module.TrainerError) as failure:
        export_module.export_onnx(model, 3, 16, 16, str(tmp_path / "none.onnx"))
    assert "at 17: Exporting the operator 'aten::fancy' to ONNX opset version 17 is not supported." in str(failure.value)
    assert "\n" not in str(failure.value)


@pytest.mark.parametrize("message, stop", [("KeyboardInterrupt: <EMPTY MESSAGE>", KeyboardInterrupt),
                                           ("Terminated: <EMPTY MESSAGE>", Terminated)])
def test_a_ctrl_c_or_sigterm_during_the_export_stops_it_rather_than_trying_a_lower_opset(
        trained_bundle, tmp_path, monkeypatch, message, stop):
    # torch's C++ exporter turns the signal handler's exception into a RuntimeError naming it: the run went on with
    # opset 16, published, and exited 0.
    model = model_from_checkpoint(load_checkpoint(os.path.join(trained_bundle["root"], "run", "checkpoints", "final.pt")))
    tried = []

    def interrupted(*args, opset_version, **kwargs):
        tried.append(opset_version)
        raise RuntimeError(message)

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    with pytest.raises(stop):
        export_module.export_onnx(model, 3, 16, 16, str(tmp_path / "stopped.onnx"))
    assert tried == [17]


def test_a_disguised_interrupt_is_told_from_other_runtime_errors():
    assert isinstance(disguised_interrupt(RuntimeError("Terminated: <EMPTY MESSAGE>")), Terminated)
    assert type(disguised_interrupt(RuntimeError("KeyboardInterrupt: <EMPTY MESSAGE>"))) is KeyboardInterrupt
    assert disguised_interrupt(RuntimeError("Exporting the operator 'aten::fancy' is not supported")) is None
    assert disguised_interrupt(ValueError("KeyboardInterrupt: no")) is None
    # torch adds its C++ context on the lines below the first.
    assert type(disguised_interrupt(RuntimeError("KeyboardInterrupt\nAt: torch/csrc/onnx/init.cpp:12"))) is KeyboardInterrupt
    assert isinstance(disguised_interrupt(RuntimeError("Terminated\nException raised from ...")), Terminated)


def test_two_publishers_of_one_model_in_the_same_second_each_publish_their_own(tmp_path, monkeypatch):
    """Another publisher takes the version this one picked between its check and its create: this one takes the next
    second's, and leaves the other's staging folder alone (it deleted it, and both failed)."""
    from protopnet_trainer import publish as publish_module
    real_new_version = publish_module.new_version
    taken = []

    def raced_new_version(family_dir):
        version = real_new_version(family_dir)
        if not taken:   # the other publisher creates its staging folder first
            os.makedirs(os.path.join(family_dir, f".staging-{version}"))
            taken.append(version)
        return version

    monkeypatch.setattr(publish_module, "new_version", raced_new_version)
    published = publish_module.publish(str(tmp_path), "tiny", lambda folder, version: {"name": "tiny", "version": version})
    assert os.path.basename(published) > taken[0]
    assert os.path.isdir(tmp_path / "tiny" / f".staging-{taken[0]}")


def test_the_before_push_marks_are_the_before_push_accuracies():
    from protopnet_trainer.report import _pyplot, curves_figure
    history = [{"epoch": 1, "train_accuracy": 0.5, "test_accuracy": 0.5},
               {"epoch": 2, "train_accuracy": 0.6, "test_accuracy": 0.7, "pushed": True, "test_accuracy_before_push": 0.65}]
    figure = curves_figure(history)
    try:
        [before] = [c for c in figure.axes[0].collections if c.get_label() == "test before push"]
        assert before.get_offsets().tolist() == [[2.0, 0.65]]
    finally:
        _pyplot().close(figure)


def test_a_bundle_of_other_classes_than_its_model_is_refused(trained_bundle, tmp_path):
    from protopnet_trainer.export import write_bundle
    result = trained_bundle["result"]
    with pytest.raises(TrainerError, match="model has 3 classes, data set has 2"):
        write_bundle(str(tmp_path), "x", result.model, classes=["a", "b"], channels=3, image_size=16,
                     interpolation="bilinear", records=result.records, training={}, jpeg_draft=True)
    assert not (tmp_path / "x").exists() or os.listdir(tmp_path / "x") == []


def test_examples_are_the_first_test_image_of_each_class():
    from protopnet_trainer.data import ImageSet, Split
    from protopnet_trainer.export import example_images
    pictures = [np.full((4, 4, 3), 40 * n, np.uint8) for n in range(4)]
    split = Split("test", ["a", "b"], 3, ["0", "1", "2", "3"], [0, 1, 0, 1], lambda i: Image.fromarray(pictures[i]))
    test_set = ImageSet(split, 4)
    examples = example_images(test_set, 5)               # more than the classes: every image is looked at
    assert [label for _, label in examples] == [0, 1]
    assert all(torch.equal(image, test_set.image(n)) for n, (image, _) in enumerate(examples))
