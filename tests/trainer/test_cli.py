"""The command line: a real run end to end, the other commands, and bad input (one line, non-zero exit)."""
import dataclasses
import json
import os
import shutil

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from protopnet_trainer.cli import main

TINY_ARGS = ["--dataset", "synthetic", "--image-size", "16", "--synthetic-classes", "3",
             "--synthetic-train-per-class", "8", "--synthetic-test-per-class", "3", "--backbone", "small-cnn",
             "--small-cnn-widths", "8,16", "--small-cnn-convs", "1", "--prototype-dim", "8",
             "--prototypes-per-class", "2", "--epochs", "2", "--warm-epochs", "1", "--push-start", "1",
             "--last-layer-iterations", "2", "--batch-size", "8", "--no-augment", "--device", "cpu",
             "--no-progress"]


def _versions(models, name):
    family = os.path.join(models, name)
    return sorted(d for d in os.listdir(family) if not d.startswith(".")) if os.path.isdir(family) else []


def _one_line_error(capsys, code, *fragments):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_train_evaluate_prune_and_export_commands(tmp_path, capsys):
    models, run_dir = str(tmp_path / "models"), str(tmp_path / "run")
    # The smoke preset cut to the tiny recipe: its name is kept in the manifest and in the checkpoints for exports.
    assert main(["train", "--preset", "smoke", *TINY_ARGS, "--calibration-holdout", "0", "--models", models, "--name", "cli", "--run-dir", run_dir,
                 "--with-baseline"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/2 warm" in out and "epoch 2/2 joint" in out and "published" in out
    # Without a hold-out the bundle has no unfamiliarity threshold: said before training, not found out from its answers.
    assert "warning: no training images are held out to calibrate the unfamiliarity threshold" in out.split("epoch 1/2")[0]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    [version] = _versions(models, "cli")
    manifest = json.loads((tmp_path / "models" / "cli" / version / "model.json").read_text())
    assert len(manifest["prototypes"]) == 6 and manifest["training"]["epochs"] == 2
    assert manifest["training"]["preset"] == "smoke"
    assert [e["classIndex"] for e in manifest["examples"]] == [0, 1, 2]
    assert all((tmp_path / "models" / "cli" / version / e["file"]).is_file() for e in manifest["examples"])

    final = os.path.join(run_dir, "checkpoints", "final.pt")
    assert main(["evaluate", "--checkpoint", final, "--no-progress"]) == 0
    evaluated = capsys.readouterr().out
    accuracy = float(evaluated.split()[2])
    assert "localisation: the top prototype's box holds the pattern centre in" in evaluated
    assert accuracy == pytest.approx(manifest["training"]["metrics"]["testAccuracy"], abs=5e-5)   # printed to 4 decimals

    assert main(["prune", "--checkpoint", final, "--k", "3", "--threshold", "3", "--no-progress"]) == 0
    pruned_line = capsys.readouterr().out
    assert "removed" in pruned_line
    pruned_accuracy = float(pruned_line.split("test accuracy ")[1].split(";")[0])
    pruned = os.path.join(run_dir, "checkpoints", "pruned.pt")
    assert main(["export", "--checkpoint", pruned, "--models", models, "--name", "cli-pruned"]) == 0
    [pruned_version] = _versions(models, "cli-pruned")
    pruned_manifest = json.loads((tmp_path / "models" / "cli-pruned" / pruned_version / "model.json").read_text())
    assert pruned_manifest["training"]["metrics"]["testAccuracy"] == pytest.approx(pruned_accuracy, abs=1e-4)
    remaining = len(pruned_manifest["prototypes"])
    assert 1 <= remaining <= 6
    assert np.array(pruned_manifest["lastLayer"]["weights"]).shape == (3, remaining)
    baseline = manifest["training"]["baseline"]["testAccuracy"]
    assert 0 <= baseline <= 1 and pruned_manifest["training"]["baseline"]["testAccuracy"] == baseline
    assert pruned_manifest["training"]["pruned"] is True
    assert pruned_manifest["training"]["preset"] == "smoke"
    for j, prototype in enumerate(pruned_manifest["prototypes"]):
        assert os.path.isfile(tmp_path / "models" / "cli-pruned" / pruned_version / prototype["images"]["patch"])
    # Its trainAccuracy is the pruned model's on the training images, as evaluate measures it.
    assert main(["evaluate", "--checkpoint", pruned, "--split", "train", "--no-progress"]) == 0
    train_accuracy = float(capsys.readouterr().out.split("train accuracy ")[1].split()[0])
    assert pruned_manifest["training"]["metrics"]["trainAccuracy"] == pytest.approx(train_accuracy, abs=1e-4)
    # A prune only adds a checkpoint: the run's final.pt can still be exported with its pictures.
    assert main(["export", "--checkpoint", final, "--models", models, "--name", "cli-again"]) == 0
    capsys.readouterr()
    [again_version] = _versions(models, "cli-again")
    again = json.loads((tmp_path / "models" / "cli-again" / again_version / "model.json").read_text())
    assert again["training"]["preset"] == "smoke"


def test_resume_flag_continues_from_the_last_checkpoint(tmp_path, capsys):
    models, run_dir = str(tmp_path / "models"), str(tmp_path / "run")
    assert main(["train", *TINY_ARGS, "--models", models, "--name", "r", "--run-dir", run_dir]) == 0
    capsys.readouterr()
    assert main(["train", *TINY_ARGS, "--epochs", "3", "--models", models, "--name", "r", "--run-dir", run_dir,
                 "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "epoch 3/3" in out and "epoch 1/3" not in out
    assert len(_versions(models, "r")) == 2
    # The finished run resumed again (a job re-created as it was): nothing to do, nothing published twice.
    assert main(["train", *TINY_ARGS, "--epochs", "3", "--models", models, "--name", "r", "--run-dir", run_dir,
                 "--resume"]) == 0
    out = capsys.readouterr().out
    [last] = [v for v in _versions(models, "r") if v in out]
    assert f"finished and published {os.path.join(os.path.abspath(models), 'r', last)}: nothing to resume" in out
    assert "resuming from" not in out and "epoch 3/3" not in out
    assert len(_versions(models, "r")) == 2
    # Into another model folder it trains the last steps again and publishes there; without --resume it trains afresh.
    assert main(["train", *TINY_ARGS, "--epochs", "3", "--models", models, "--name", "r2", "--run-dir", run_dir,
                 "--resume"]) == 0
    assert len(_versions(models, "r2")) == 1
    capsys.readouterr()
    assert main(["train", *TINY_ARGS, "--models", models, "--name", "r2", "--run-dir", run_dir]) == 0
    assert len(_versions(models, "r2")) == 2
    # ... saying so, since the finished run's checkpoints go (its bundle stays).
    first_r2 = _versions(models, "r2")[0]
    assert (f"starting over in {run_dir}: the run that finished there keeps its bundle "
            f"{os.path.join(os.path.abspath(models), 'r2', first_r2)}, its checkpoints and pictures are removed"
            in capsys.readouterr().out)


def test_a_run_that_did_not_finish_is_not_deleted_by_a_command_without_resume(tmp_path, capsys):
    # The same command line without --resume after an interrupted run: its checkpoints went without a word.
    models, run_dir = str(tmp_path / "models"), str(tmp_path / "run")
    assert main(["train", *TINY_ARGS, "--models", models, "--name", "u", "--run-dir", run_dir]) == 0
    os.remove(os.path.join(run_dir, "published.json"))   # as a run stopped after its epoch 2 checkpoint leaves it
    capsys.readouterr()
    code = main(["train", *TINY_ARGS, "--models", models, "--name", "u", "--run-dir", run_dir])
    _one_line_error(capsys, code, f"the run folder {run_dir} holds a run that did not finish (checkpointed up to epoch 2): "
                                  "add --resume to go on from it, or --fresh to start over and delete it")
    assert os.path.exists(os.path.join(run_dir, "checkpoints", "epoch-002.pt"))
    assert len(_versions(models, "u")) == 1
    # --fresh starts over; --resume and --fresh together are refused by the parser.
    with pytest.raises(SystemExit):
        main(["train", *TINY_ARGS, "--models", models, "--name", "u", "--run-dir", run_dir, "--resume", "--fresh"])
    capsys.readouterr()
    assert main(["train", *TINY_ARGS, "--models", models, "--name", "u", "--run-dir", run_dir, "--fresh"]) == 0
    assert "epoch 1/2" in capsys.readouterr().out
    assert len(_versions(models, "u")) == 2


def test_a_run_in_a_relative_folder_can_be_pruned_and_exported(tmp_path, monkeypatch, capsys):
    # Pruning saves pruned.pt through the run folder found from the checkpoint's (absolute) path; the current
    # prototypes' pictures must survive it even though the run was trained in a relative folder (runs/<name>).
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY_ARGS, "--models", "models", "--name", "rel"]) == 0
    final = os.path.join("runs", "rel", "checkpoints", "final.pt")
    assert main(["prune", "--checkpoint", final, "--k", "1", "--threshold", "1", "--no-progress"]) == 0
    pruned = os.path.join("runs", "rel", "checkpoints", "pruned.pt")
    assert main(["export", "--checkpoint", pruned, "--models", "models", "--name", "rel-pruned",
                 "--no-progress"]) == 0
    [version] = _versions("models", "rel-pruned")
    manifest = json.loads((tmp_path / "models" / "rel-pruned" / version / "model.json").read_text())
    assert manifest["prototypes"] and all(os.path.isfile(tmp_path / "models" / "rel-pruned" / version / path)
                                          for p in manifest["prototypes"] for path in p["images"].values())


def test_untrained_export(tmp_path, capsys):
    models = str(tmp_path / "models")
    assert main(["export", "--untrained", "--backbone", "resnet18", "--num-classes", "3",
                 "--prototypes-per-class", "2", "--image-size", "32", "--models", models, "--name", "bench",
                 "--no-progress"]) == 0
    [version] = _versions(models, "bench")
    folder = tmp_path / "models" / "bench" / version
    manifest = json.loads((folder / "model.json").read_text())
    assert len(manifest["prototypes"]) == 6 and manifest["featureMap"] == {"height": 1, "width": 1}
    assert manifest["training"]["backbone"] == "resnet18" and manifest["training"]["epochs"] == 0
    graph = onnx.load(str(folder / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["logits", "similarities", "similarity_maps", "min_distances"]
    assert all(os.path.isfile(folder / p["images"]["activation"]) for p in manifest["prototypes"])


def test_untrained_export_of_a_non_square_input(tmp_path):
    # WIDTHxHEIGHT, as image sizes are written elsewhere: the bundle's input is 24 high and 40 wide, and everything
    # drawn from it (graph, feature map, pictures, boxes) keeps each side its own.
    models = str(tmp_path / "models")
    assert main(["export", "--untrained", "--backbone", "small-cnn", "--num-classes", "2", "--prototypes-per-class", "2",
                 "--image-size", "40x24", "--models", models, "--name", "wide", "--no-progress"]) == 0
    [version] = _versions(models, "wide")
    folder = tmp_path / "models" / "wide" / version
    manifest = json.loads((folder / "model.json").read_text())
    assert (manifest["input"]["height"], manifest["input"]["width"]) == (24, 40)
    assert manifest["featureMap"] == {"height": 24 // 4, "width": 40 // 4}   # the small CNN pools twice
    [image] = onnx.load(str(folder / "model.onnx")).graph.input
    assert [d.dim_value for d in image.type.tensor_type.shape.dim][1:] == [3, 24, 40]
    for prototype in manifest["prototypes"]:
        for kind in ("source", "activation"):
            with Image.open(folder / prototype["images"][kind]) as picture:
                assert picture.size == (40, 24)
        box, cell = prototype["source"]["box"], prototype["source"]["featureCell"]
        assert box["x"] + box["width"] <= 40 and box["y"] + box["height"] <= 24
        assert cell["row"] < 24 // 4 and cell["column"] < 40 // 4
        with Image.open(folder / prototype["images"]["patch"]) as patch:
            assert patch.size == (box["width"], box["height"])


@pytest.mark.parametrize("size, message", [("40x", "'40x' is not a size"), ("40x24x3", "'40x24x3' is not a size"),
                                           ("-40", "'-40' is not a size")])
def test_an_untrained_image_size_that_is_not_one_is_refused(tmp_path, capsys, size, message):
    with pytest.raises(SystemExit) as exited:
        main(["export", "--untrained", "--image-size", size, "--models", str(tmp_path / "m")])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("size", ["40x12", "12x40"])
def test_an_untrained_input_side_below_16_pixels_is_refused(tmp_path, capsys, size):
    _one_line_error(capsys, main(["export", "--untrained", "--num-classes", "2", "--image-size", size,
                                  "--models", str(tmp_path / "m"), "--no-progress"]), f"16 px images (got --image-size {size})")


def test_untrained_shaping_options_out_of_range_are_named(tmp_path, capsys):
    _one_line_error(capsys, main(["export", "--untrained", "--num-classes", "1", "--prototypes-per-class", "0",
                                  "--models", str(tmp_path / "m"), "--no-progress"]),
                    "(got --num-classes 1, --prototypes-per-class 0)")
    assert not (tmp_path / "m").exists()   # refused before the model repository was made


@pytest.mark.parametrize("source", [["--checkpoint", "no-such.pt"], ["--untrained", "--backbone", "alexnet"]])
def test_an_export_refused_for_its_source_makes_no_model_repository(tmp_path, capsys, source):
    _one_line_error(capsys, main(["export", *source, "--models", str(tmp_path / "m"), "--no-progress"]))
    assert not (tmp_path / "m").exists()


def test_benchmark_prints_each_stage(capsys):
    assert main(["benchmark", *TINY_ARGS, "--batches", "2"]) == 0
    out = capsys.readouterr().out
    for stage in ("warm-up", "joint", "push", "last-layer"):
        line = next(line for line in out.splitlines() if line.startswith(stage))
        assert float(line.split()[-2]) > 0
    threads = torch.get_num_threads()
    assert f", {threads} thread{'s' if threads != 1 else ''}, device cpu" in out.splitlines()[0]


def test_missing_dataset_folder(tmp_path, capsys):
    code = main(["train", "--preset", "fashion-mnist", "--data", str(tmp_path / "absent"),
                 "--models", str(tmp_path / "m"), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    _one_line_error(capsys, code, str(tmp_path / "absent"), "does not exist")
    assert _versions(str(tmp_path / "m"), "fashion-mnist") == []


def test_malformed_dataset(tmp_path, capsys):
    os.makedirs(tmp_path / "fm")
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "fm" / name).write_bytes(b"\x00" * 10)
    code = main(["train", "--preset", "fashion-mnist", "--data", str(tmp_path / "fm"), "--models",
                 str(tmp_path / "m"), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    _one_line_error(capsys, code, "train-images-idx3-ubyte.gz")
    cub = tmp_path / "cub"
    os.makedirs(cub / "images")
    (cub / "images.txt").write_text("1 a/b.jpg\n")
    code = main(["train", "--dataset", "cub200", "--data", str(cub), "--models", str(tmp_path / "m"),
                 "--run-dir", str(tmp_path / "run"), "--no-progress"])
    _one_line_error(capsys, code, "image_class_labels.txt")
    assert not os.path.exists(tmp_path / "m" / "fashion-mnist") or _versions(str(tmp_path / "m"), "fashion-mnist") == []


def test_class_count_mismatch(tmp_path, capsys):
    from PIL import Image
    run_dir = str(tmp_path / "run")
    assert main(["train", *TINY_ARGS, "--epochs", "1", "--models", str(tmp_path / "m"), "--run-dir", run_dir]) == 0
    capsys.readouterr()
    for split in ("train", "test"):
        for cls in ("a", "b"):
            os.makedirs(tmp_path / "folder" / split / cls)
            Image.new("RGB", (8, 8)).save(tmp_path / "folder" / split / cls / "0.png")
    code = main(["evaluate", "--checkpoint", os.path.join(run_dir, "checkpoints", "final.pt"),
                 "--dataset", "imagefolder", "--data", str(tmp_path / "folder"), "--no-progress"])
    _one_line_error(capsys, code, "class-count mismatch", "3 classes", "2")


def test_evaluate_refuses_a_data_set_of_other_classes(tmp_path, capsys):
    from PIL import Image
    run_dir = str(tmp_path / "run")
    # A hold-out larger than the folder's training split: the test split is read without one, so the classes are judged.
    assert main(["train", *TINY_ARGS, "--epochs", "1", "--calibration-holdout", "6", "--models", str(tmp_path / "m"),
                 "--run-dir", run_dir]) == 0
    capsys.readouterr()
    _one_line_error(capsys, main(["export", "--checkpoint", run_dir, "--models", str(tmp_path / "m")]),
                    f"is a folder: pass a checkpoint file, e.g. {os.path.join(run_dir, 'checkpoints', 'final.pt')}")
    # prune's check names train's options, which prune takes too
    _one_line_error(capsys, main(["prune", "--checkpoint", os.path.join(run_dir, "checkpoints", "final.pt"), "--prune-k", "0"]),
                    "pruning needs --prune-k at least 1")
    for split in ("train", "test"):
        for cls in ("cat", "dog", "fox"):   # as many classes as the checkpoint's, named otherwise
            os.makedirs(tmp_path / "folder" / split / cls)
            Image.new("RGB", (8, 8)).save(tmp_path / "folder" / split / cls / "0.png")
    code = main(["evaluate", "--checkpoint", os.path.join(run_dir, "checkpoints", "final.pt"),
                 "--dataset", "imagefolder", "--data", str(tmp_path / "folder"), "--no-progress"])
    _one_line_error(capsys, code, "class mismatch", "pattern-0", "cat")

    # The checkpoint's own classes with a file that cannot be read: refused, or left out when asked.
    for split in ("train", "test"):
        for cls in ("pattern-0", "pattern-1", "pattern-2"):
            os.makedirs(tmp_path / "own" / split / cls)
            Image.new("RGB", (8, 8)).save(tmp_path / "own" / split / cls / "0.png")
    (tmp_path / "own" / "test" / "pattern-0" / "1.png").write_bytes(b"not a png")
    evaluate = ["evaluate", "--checkpoint", os.path.join(run_dir, "checkpoints", "final.pt"), "--dataset", "imagefolder",
                "--data", str(tmp_path / "own"), "--no-progress"]
    _one_line_error(capsys, main(evaluate), "cannot be read", "or pass --skip-unreadable-images to leave them out")
    assert main([*evaluate, "--skip-unreadable-images"]) == 0
    assert "leaving out 1 of" in capsys.readouterr().out


def test_unknown_trunk(tmp_path, capsys):
    code = main(["train", *TINY_ARGS, "--backbone", "alexnet", "--models", str(tmp_path / "m"),
                 "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, "unknown trunk 'alexnet'")
    assert _versions(str(tmp_path / "m"), "synthetic") == []


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["train", *TINY_ARGS, "--models", str(blocker / "models"), "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, str(blocker / "models"))
    assert not (tmp_path / "run").exists()          # refused before any training


def test_cuda_asked_for_but_absent(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["train", *TINY_ARGS, "--device", "cuda", "--models", str(tmp_path / "m"),
                 "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, "CUDA")
    assert _versions(str(tmp_path / "m"), "synthetic") == []


def test_missing_checkpoint(tmp_path, capsys):
    code = main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--models", str(tmp_path / "m")])
    _one_line_error(capsys, code, "none.pt", "does not exist")


def test_a_checkpoint_that_is_not_one_says_so(tmp_path, capsys):
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    code = main(["export", "--checkpoint", str(tmp_path / "notes.pt"), "--models", str(tmp_path / "m")])
    _one_line_error(capsys, code, "notes.pt", "is not a checkpoint file the trainer wrote, or it is cut short")
    code = main(["export", "--checkpoint", str(tmp_path), "--models", str(tmp_path / "m")])
    _one_line_error(capsys, code, "is a folder", "final.pt")


class _WritesOnLoad:
    """Pickled as a call to open(path, "w"): a loader that runs what a file holds creates that file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, capsys):
    import torch
    ran = tmp_path / "ran"
    torch.save({"format": "protopnet-trainer-checkpoint", "payload": _WritesOnLoad(str(ran))}, str(tmp_path / "foreign.pt"))
    code = main(["export", "--checkpoint", str(tmp_path / "foreign.pt"), "--models", str(tmp_path / "m")])
    line = _one_line_error(capsys, code, "foreign.pt", "torch's safe loader, which reads tensors only, refused it")
    assert not ran.exists()
    # Not torch's advice to load it unsafely.
    assert "weights_only" not in line and "arbitrary code" not in line


def test_a_signal_while_a_checkpoint_loads_is_a_stop(tmp_path, capsys, monkeypatch):
    import torch
    (tmp_path / "c.pt").write_bytes(b"x")

    def terminated_in_cpp(*args, **kwargs):
        raise RuntimeError("Terminated: <EMPTY MESSAGE>")

    monkeypatch.setattr(torch, "load", terminated_in_cpp)
    code = main(["export", "--checkpoint", str(tmp_path / "c.pt"), "--models", str(tmp_path / "m")])
    assert code == 143
    assert "cannot read checkpoint" not in capsys.readouterr().err


def test_an_empty_or_damaged_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "empty.pt").write_bytes(b"")
    for command in (["evaluate"], ["export", "--models", str(tmp_path / "m")], ["prune"]):
        code = main([*command, "--checkpoint", str(tmp_path / "empty.pt")])
        _one_line_error(capsys, code, "empty.pt", "it is empty (0 bytes)")
    # A checkpoint in the trainer's format whose parts are missing or do not fit together.
    models, run_dir = str(tmp_path / "models"), str(tmp_path / "run")
    assert main(["train", *TINY_ARGS, "--epochs", "1", "--models", models, "--name", "d", "--run-dir", run_dir]) == 0
    capsys.readouterr()
    from protopnet_trainer.checkpoint import load_checkpoint, save_checkpoint
    good = load_checkpoint(os.path.join(run_dir, "checkpoints", "final.pt"))
    for damage, fragment in ((lambda c: c.pop("model"), "has no model dict"),
                             (lambda c: c.__setitem__("config", "x"), "has no config dict"),
                             (lambda c: c["config"].__setitem__("prototype_dim", 7), "cannot be rebuilt")):
        damaged = {**good, "config": dict(good["config"])}
        damage(damaged)
        save_checkpoint(damaged, str(tmp_path / "damaged.pt"))
        code = main(["evaluate", "--checkpoint", str(tmp_path / "damaged.pt")])
        _one_line_error(capsys, code, "damaged", fragment)


def test_a_file_that_cannot_be_written_during_the_run_is_one_line(tmp_path, capsys):
    models, run_dir = str(tmp_path / "models"), tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--models", models, "--name", "w", "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    # Resumed from epoch 1, the run pushes again at epoch 2 and writes its pictures under push/: a file is in the way.
    os.remove(run_dir / "checkpoints" / "epoch-002.pt")
    os.remove(run_dir / "published.json")   # as a run stopped before it published leaves it
    shutil.rmtree(run_dir / "push")
    (run_dir / "push").write_text("a file where the push pictures go")
    code = main(["train", *TINY_ARGS, "--models", models, "--name", "w", "--run-dir", str(run_dir), "--resume"])
    _one_line_error(capsys, code, "push")


def test_a_model_folder_in_the_way_is_refused_before_training(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    (models / "blocked").write_text("a file where the model's folder goes")
    code = main(["train", *TINY_ARGS, "--models", str(models), "--name", "blocked", "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, "blocked", "a file of that name is in the way")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_resume_keeps_the_metrics_of_the_checkpoints_epochs_only(tmp_path, capsys):
    models, run_dir = str(tmp_path / "models"), str(tmp_path / "run")
    assert main(["train", *TINY_ARGS, "--epochs", "3", "--models", models, "--name", "k", "--run-dir", run_dir]) == 0
    # As a run stopped after writing epoch 3's metrics line but before its checkpoint leaves it (and a cut line).
    os.remove(os.path.join(run_dir, "checkpoints", "epoch-003.pt"))
    os.remove(os.path.join(run_dir, "published.json"))
    with open(os.path.join(run_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write('{"epoch": 4, "pha')
    assert main(["train", *TINY_ARGS, "--epochs", "3", "--models", models, "--name", "k", "--run-dir", run_dir,
                 "--resume"]) == 0
    epochs = [json.loads(line)["epoch"] for line in open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8")]
    assert epochs == [1, 2, 3]
    capsys.readouterr()
    # Fewer epochs than the checkpoint has trained: refused, not published with a history that contradicts it.
    code = main(["train", *TINY_ARGS, "--epochs", "1", "--models", models, "--name", "k", "--run-dir", run_dir, "--resume"])
    _one_line_error(capsys, code, "has trained 3 epochs already", "--epochs 3 or more")


def test_a_checkpoint_kept_outside_its_run_folder_is_pruned_beside_it(tmp_path, capsys):
    models, run_dir = str(tmp_path / "models"), str(tmp_path / "run")
    assert main(["train", *TINY_ARGS, "--models", models, "--name", "p", "--run-dir", run_dir]) == 0
    kept = tmp_path / "kept" / "deep"
    kept.mkdir(parents=True)
    shutil.copy(os.path.join(run_dir, "checkpoints", "final.pt"), kept / "final.pt")
    capsys.readouterr()
    assert main(["prune", "--checkpoint", str(kept / "final.pt"), "--k", "3", "--threshold", "3", "--no-progress"]) == 0
    assert str(kept / "checkpoints" / "pruned.pt") in capsys.readouterr().out
    assert (kept / "checkpoints" / "pruned.pt").is_file()
    assert not (tmp_path / "kept" / "checkpoints").exists()   # not two folders up, as before


def test_a_negative_example_count_is_one_line(tmp_path, capsys):
    code = main(["train", *TINY_ARGS, "--examples", "-1", "--models", str(tmp_path / "m"), "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, "--examples must be 0")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_the_module_runs_as_a_program(tmp_path):
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "src", "trainer"))
    done = subprocess.run([sys.executable, "-m", "protopnet_trainer", "train", "--preset", "no-such-preset"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and "no-such-preset" in done.stderr
    done = subprocess.run([sys.executable, "-m", "protopnet_trainer", "train", *TINY_ARGS, "--backbone", "nope",
                           "--models", str(tmp_path / "m"), "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "error: unknown trunk 'nope' (choose from " \
        "small-cnn, resnet18, resnet34, resnet50, vgg16, vgg19, densenet121)"


def test_train_on_a_miniature_cub_folder_cropped_to_boxes(tmp_path, capsys):
    from test_data import make_mini_cub
    cub = make_mini_cub(tmp_path / "CUB_200_2011", 3)
    args = [a for a in TINY_ARGS]
    args[args.index("--dataset") + 1] = "cub200"
    models = str(tmp_path / "models")
    assert main(["train", *args, "--data", str(cub), "--crop-to-box", "--epochs", "1", "--models", models,
                 "--name", "cub", "--run-dir", str(tmp_path / "run")]) == 0
    [version] = _versions(models, "cub")
    manifest = json.loads((tmp_path / "models" / "cub" / version / "model.json").read_text())
    assert [c["name"] for c in manifest["classes"]] == ["001.Red_bird", "002.Green_bird", "003.Blue_bird"]
    assert manifest["training"]["cropToBox"] is True and manifest["training"]["trainSize"] == 6
    assert manifest["input"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert {p["source"]["item"].split("/")[0] for p in manifest["prototypes"]} == {c["name"] for c in
                                                                                    manifest["classes"]}


def test_progress_bars_per_stage(tmp_path, capsys):
    args = [a for a in TINY_ARGS if a != "--no-progress"]
    assert main(["train", *args, "--progress", "--models", str(tmp_path / "m"), "--run-dir", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    for stage in ("epoch 1/2 warm", "epoch 2/2 joint", "push", "last layer", "test"):
        assert stage in err
    assert main(["train", *args, "--models", str(tmp_path / "m"), "--run-dir", str(tmp_path / "r")]) == 0
    assert "epoch 1/2 warm:" not in capsys.readouterr().err      # not a terminal: metrics lines only


def test_only_train_runs_under_torchrun(tmp_path, monkeypatch, capsys):
    # torchrun's environment for rank 0 of 2: export would otherwise publish once per process.
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(["export", "--untrained", "--num-classes", "2", "--models", str(tmp_path / "models"), "--name", "x"])
    assert code == 2 and "only `train` runs under torchrun" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_a_one_process_torchrun_runs_any_command(monkeypatch, capsys):
    # torchrun --nproc_per_node 1 (a one-GPU job of a cluster's template): nothing runs twice, so nothing is refused.
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["options", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["options"], captured.err


def test_train_refuses_what_would_run_once_per_process(tmp_path, monkeypatch, capsys):
    from protopnet_trainer import distributed
    from protopnet_trainer.cli import TORCHRUN_ENVIRONMENT
    assert TORCHRUN_ENVIRONMENT == distributed.ENVIRONMENT
    run = ["train", *TINY_ARGS, "--models", str(tmp_path / "models"), "--run-dir", str(tmp_path / "run")]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    # The baseline is one process's work: under torchrun each rank trained it whole and wrote the file.
    assert main(["train", *TINY_ARGS, "--baseline-only", str(tmp_path / "baseline.json")]) == 2
    assert "`train --baseline-only` runs as one process" in capsys.readouterr().err
    assert not (tmp_path / "baseline.json").exists()
    # A launcher that sets WORLD_SIZE and RANK but not LOCAL_RANK: each process would have trained alone.
    monkeypatch.delenv("LOCAL_RANK")
    assert main(run) == 2
    assert "WORLD_SIZE is 2 but LOCAL_RANK is not set: start a distributed run with torchrun" in capsys.readouterr().err
    monkeypatch.delenv("RANK")
    assert main(run) == 2
    assert "WORLD_SIZE is 2 but RANK and LOCAL_RANK are not set" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert main(run) == 2
    assert "WORLD_SIZE is 'two', not a number of processes" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("name", ["a/b", "..", "my model", ".hidden", "abc\n", ""])
def test_a_model_name_the_service_cannot_address_is_refused_before_training(tmp_path, capsys, name):
    code = main(["train", *TINY_ARGS, "--models", str(tmp_path / "models"), "--name", name, "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, "--name", "not a valid model name")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()   # refused before the first epoch


@pytest.mark.parametrize("option, value", [("--workers", "-1"), ("--lr-step", "0"), ("--image-size", "3"),
                                           ("--epoch-copies", "100000000"), ("--train-limit", "-5"),
                                           ("--test-limit", "-1"), ("--lr-trunk", "-1"), ("--lr-add-on", "inf"),
                                           ("--lr-last-layer", "nan"), ("--weight-decay", "-1"), ("--threads", "-1")])
def test_a_value_outside_the_range_a_job_is_held_to_is_one_line(tmp_path, capsys, option, value):
    # Each of these was a traceback, an allocation failure, or a run that went on (a bundle of NaN, a data set cut short).
    code = main(["train", *TINY_ARGS, option, value, "--models", str(tmp_path / "models"), "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, option, "must be")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("option, least", [("--image-size", 8), ("--batch-size", 1)])
def test_a_size_below_one_is_one_line_naming_the_least_allowed(tmp_path, capsys, option, least):
    # --image-size 0 said "at least 1", and 1 then said "from 8 to 1024".
    code = main(["train", *TINY_ARGS, option, "0", "--models", str(tmp_path / "models"), "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, f"{option} must be at least {least} (got 0)")


def test_sigterm_while_publishing_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    # A stopped container or `kill` sends SIGTERM: handled as Ctrl-C, so the staging folder is removed too.
    import signal
    from protopnet_trainer import export as export_module
    real = export_module.file_sha256

    def terminated_midway(path):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(path)

    monkeypatch.setattr(export_module, "file_sha256", terminated_midway)
    models = tmp_path / "models"
    before = signal.getsignal(signal.SIGTERM)
    code = main(["train", *TINY_ARGS, "--models", str(models), "--name", "t", "--run-dir", str(tmp_path / "run")])
    assert code == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: terminated; nothing was published (the same command with --resume goes on from the last checkpoint, " \
        "if an epoch was saved)"
    assert os.listdir(models / "t") == []          # no version, and no .staging- folder either
    assert signal.getsignal(signal.SIGTERM) is before   # put back as it was


def test_a_signal_that_torch_turned_into_a_runtime_error_is_still_a_stop(tmp_path, capsys, monkeypatch):
    # A SIGTERM while torch is being imported (the first half second) ended in a traceback and exit status 1.
    from protopnet_trainer import pipeline

    def terminated_in_cpp(*args, **kwargs):
        raise RuntimeError("Terminated: <EMPTY MESSAGE>")

    monkeypatch.setattr(pipeline, "train_and_publish", terminated_in_cpp)
    code = main(["train", *TINY_ARGS, "--models", str(tmp_path / "models"), "--run-dir", str(tmp_path / "run")])
    assert code == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: terminated; nothing was published (the same command with --resume goes on from the last checkpoint, " \
        "if an epoch was saved)"


def test_an_option_the_parser_refuses_is_one_line(capsys):
    # A mistyped preset printed the whole usage of train (48 lines) with the reason last.
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--preset", "smok"])
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: protopnet_trainer train: argument --preset: invalid choice: 'smok'")


def test_options_read_by_head_ends_quietly():
    # `options | head -2`: it said "error: [Errno 32] Broken pipe" and exited 2.
    import subprocess
    import sys
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, "-m", "protopnet_trainer", "options"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=environment)
    assert process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=60) == 0
    assert process.stderr.read() == b""


def test_a_run_whose_output_and_error_go_to_a_broken_pipe_fails_with_its_own_status(tmp_path):
    # `train ... 2>&1 | head -5`: the error line itself met the broken pipe, and Python's own traceback made it exit 1.
    import subprocess
    import sys
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    command = [sys.executable, "-m", "protopnet_trainer", "train", *TINY_ARGS, "--epochs", "6",
               "--models", str(tmp_path / "models"), "--run-dir", str(tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment)
    assert process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=300) == 2
    assert not list((tmp_path / "models").rglob("model.json"))   # nothing published


def test_a_broken_pipe_stops_a_run_as_a_failure_and_an_interrupted_baseline_says_what_is_lost(tmp_path, capsys, monkeypatch):
    # Only `options | head` ends quietly: a train whose output pipe broke had exited 0, unfinished.
    from protopnet_trainer import baseline, pipeline

    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(pipeline, "train_and_publish", broken)
    assert main(["train", *TINY_ARGS, "--models", str(tmp_path / "models"), "--run-dir", str(tmp_path / "run")]) == 2
    assert "Broken pipe" in capsys.readouterr().err

    # --baseline-only keeps no checkpoint: its interrupt does not point at --resume.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt()

    monkeypatch.setattr(baseline, "train_to_file", interrupted)
    assert main(["train", *TINY_ARGS, "--baseline-only", str(tmp_path / "baseline.json")]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: interrupted; no baseline result was written"


def test_a_bad_image_is_one_line_before_training_and_from_a_dataloader_worker_process(tmp_path, capsys):
    from PIL import Image
    from torch.utils.data import DataLoader
    from protopnet_trainer.data import ImageSet
    from protopnet_trainer.datasets import load_imagefolder
    from protopnet_trainer.errors import TrainerError, one_line
    for split in ("train", "test"):
        for cls in ("a", "b"):
            os.makedirs(tmp_path / "folder" / split / cls)
            for n in range(4):
                Image.new("RGB", (16, 16), (40 * n, 0, 0)).save(tmp_path / "folder" / split / cls / f"{n}.png")
    bad = tmp_path / "folder" / "train" / "b" / "3.png"
    bad.write_bytes(b"not a png at all")
    code = main(["train", *TINY_ARGS, "--dataset", "imagefolder", "--data", str(tmp_path / "folder"), "--workers", "1",
                 "--models", str(tmp_path / "models"), "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, "1 of 16 image files cannot be read (train/b/3.png: cannot identify image file)")
    assert not (tmp_path / "run" / "checkpoints").exists()   # found before the first epoch
    # A file that goes bad after that check is decoded in a DataLoader worker process, whose error comes back in the
    # parent wrapped in the worker's traceback: the message is still the one line.
    loader = DataLoader(ImageSet(load_imagefolder(str(tmp_path / "folder")).train, 8), batch_size=16, num_workers=1)
    with pytest.raises(Exception) as raised:
        next(iter(loader))
    assert "Original Traceback" in str(raised.value) and isinstance(raised.value, TrainerError)   # the CLI's error line
    assert one_line(raised.value) == f"cannot decode image {bad}: cannot identify image file"


def test_a_checkpoint_saved_after_its_prototypes_moved_is_not_exported_or_pruned_without_a_push(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    args = list(TINY_ARGS)
    args[args.index("--epochs") + 1] = "4"
    assert main(["train", *args, "--push-every", "3", "--models", str(tmp_path / "models"), "--name", "cli",
                 "--run-dir", run_dir]) == 0
    capsys.readouterr()
    # An epoch checkpoint saved after joint epochs that followed its last push: its prototypes have moved since.
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    pushes = [entry["epoch"] for entry in history if entry.get("pushed")]
    moved_epoch = next(e["epoch"] for e in history if not e.get("pushed") and pushes[0] < e["epoch"] and
                       os.path.isfile(os.path.join(run_dir, "checkpoints", f"epoch-{e['epoch']:03d}.pt")))
    moved = os.path.join(run_dir, "checkpoints", f"epoch-{moved_epoch:03d}.pt")
    code = main(["export", "--checkpoint", moved, "--models", str(tmp_path / "models"), "--name", "moved"])
    _one_line_error(capsys, code, f"was saved after epoch {moved_epoch}, but its last push was after epoch", "--push")
    code = main(["prune", "--checkpoint", moved, "--no-progress"])
    _one_line_error(capsys, code, f"was saved after epoch {moved_epoch}")
    assert _versions(str(tmp_path / "models"), "moved") == []
    # With --push it is pushed first, and published.
    assert main(["export", "--checkpoint", moved, "--push", "--models", str(tmp_path / "models"), "--name", "moved",
                 "--no-progress"]) == 0
    assert len(_versions(str(tmp_path / "models"), "moved")) == 1


@pytest.mark.parametrize("k, threshold", [("-3", "3"), ("0", "1"), ("6", "10")])
def test_pruning_parameters_out_of_range_are_one_line(tmp_path, capsys, k, threshold):
    code = main(["train", *TINY_ARGS, "--prune", "--prune-k", k, "--prune-threshold", threshold,
                 "--models", str(tmp_path / "models"), "--name", "p", "--run-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, "pruning needs --prune-k at least 1")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()   # refused before the first epoch


@pytest.mark.parametrize("untrained", [False, True])
def test_export_refuses_a_model_name_the_service_cannot_address_before_its_work(tmp_path, capsys, untrained):
    source = ["--untrained", "--num-classes", "2"] if untrained else ["--checkpoint", str(tmp_path / "no-such.pt")]
    code = main(["export", *source, "--models", str(tmp_path / "models"), "--name", "bad name"])
    _one_line_error(capsys, code, "--name", "not a valid model name")
    assert not (tmp_path / "models").exists() or os.listdir(tmp_path / "models") == []


@pytest.mark.parametrize("extra, message", [(["--poll", "-1"], "--poll must be a positive number"),
                                            (["--heartbeat", "0"], "--heartbeat must be a positive number"),
                                            # a live worker's job would be taken over between two of its beats
                                            (["--heartbeat", "60", "--stale-after", "30"],
                                             "--heartbeat must be shorter than --stale-after"),
                                            (["--max-takeovers", "-1"], "--max-takeovers must be 0 or more (got -1)"),
                                            (["--jobs", "/proc/nope"], "/proc/nope cannot be created"),
                                            # not "cannot be created: File exists"
                                            (["--jobs", "/proc/version"], "--jobs /proc/version is a file, not a folder"),
                                            # a volume not mounted or read-only: every queued job would fail in turn
                                            (["--models", "/proc/version"], "--models: output folder /proc/version is a file, not a folder"),
                                            (["--runs", "/proc/nope"], "--runs: output folder /proc/nope cannot be created"),
                                            (["--data-root", "/proc/nope"], "--data-root /proc/nope is not a folder")])
def test_worker_options_that_cannot_work_are_one_line(tmp_path, capsys, extra, message):
    args = ["worker", "--jobs", str(tmp_path / "jobs"), "--models", str(tmp_path / "models"), "--once", *extra]
    _one_line_error(capsys, main(args), message)


@pytest.mark.parametrize("extra, message", [
    # each was ignored: the user meant the checkpoint, and got a random-weight model after a minute
    (["--untrained", "--checkpoint", "final.pt"], "export --untrained builds a network of random weights and reads no --checkpoint"),
    (["--checkpoint", "final.pt", "--num-classes", "7", "--backbone", "resnet18"],
     "--backbone, --num-classes shape an --untrained export only"),
])
def test_export_options_that_contradict_each_other_are_one_line(tmp_path, capsys, extra, message):
    _one_line_error(capsys, main(["export", "--models", str(tmp_path / "models"), *extra]), message)
    assert not (tmp_path / "models").exists()


def test_an_option_a_command_does_not_take_names_the_commands_help(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["prune", "--checkpoint", "final.pt", "--push"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("error: protopnet_trainer prune: unrecognized arguments: --push "
                                       "(see protopnet_trainer prune --help)\n")


def test_data_for_a_data_set_that_reads_no_folder_is_one_line(tmp_path, capsys):
    # It was ignored: forgetting --dataset imagefolder trained and published a model of synthetic images.
    _one_line_error(capsys, main(["train", "--preset", "smoke", "--data", str(tmp_path), "--models", str(tmp_path / "models")]),
                    "the data set 'synthetic' is drawn by the trainer and reads no folder (add --dataset imagefolder")
    assert not (tmp_path / "models").exists()


def test_a_checkpoint_whose_image_folder_moved_is_exported_and_pruned_with_data(tmp_path, capsys):
    from PIL import Image
    for split, count in (("train", 6), ("test", 2)):
        for shade, cls in enumerate(("dark", "light", "mid")):
            os.makedirs(tmp_path / "photos" / split / cls)
            for i in range(count):
                Image.new("RGB", (16, 16), (30 + 90 * shade + i, 60, 80)).save(tmp_path / "photos" / split / cls / f"{i}.png")
    run = str(tmp_path / "run")
    assert main(["train", *TINY_ARGS, "--dataset", "imagefolder", "--data", str(tmp_path / "photos"),
                 "--models", str(tmp_path / "models"), "--name", "photos", "--run-dir", run]) == 0
    shutil.move(str(tmp_path / "photos"), str(tmp_path / "moved"))
    capsys.readouterr()
    final = os.path.join(run, "checkpoints", "final.pt")
    export = ["export", "--checkpoint", final, "--models", str(tmp_path / "models"), "--name", "photos", "--no-progress"]
    _one_line_error(capsys, main(export), f"imagefolder: {tmp_path / 'photos'} does not exist",
                    "pass --data with its new place")
    assert main([*export, "--data", str(tmp_path / "moved")]) == 0
    assert len(_versions(str(tmp_path / "models"), "photos")) == 2
    assert main(["prune", "--checkpoint", final, "--data", str(tmp_path / "moved"), "--no-progress"]) == 0


def test_a_run_folder_moved_elsewhere_still_exports(tmp_path, capsys):
    assert main(["train", *TINY_ARGS, "--models", str(tmp_path / "models"), "--name", "cli",
                 "--run-dir", str(tmp_path / "run")]) == 0
    shutil.move(str(tmp_path / "run"), str(tmp_path / "moved"))   # the push records hold the old absolute paths
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(tmp_path / "moved" / "checkpoints" / "final.pt"),
                 "--models", str(tmp_path / "models"), "--name", "moved", "--no-progress"]) == 0
    assert len(_versions(str(tmp_path / "models"), "moved")) == 1


def test_running_out_of_memory_is_one_line_naming_the_options_that_size_it(tmp_path):
    """A real run whose batches do not fit: the process's address space is capped at 4 GiB, and a batch of 256 images
    of 512x512 needs more. The allocation fails where torch makes it; the run says so in one line."""
    import resource
    import subprocess
    import sys

    def four_gib_of_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2 ** 30, 4 * 2 ** 30))

    # One OpenMP thread and two malloc arenas: on a machine of many cores, their address space would take much of the 4 GiB.
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "src", "trainer"),
               OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    models = tmp_path / "models"
    done = subprocess.run([sys.executable, "-m", "protopnet_trainer", "train", "--preset", "smoke", "--device", "cpu",
                           "--threads", "1", "--image-size", "512", "--batch-size", "256",
                           "--synthetic-train-per-class", "64", "--synthetic-test-per-class", "8",
                           "--calibration-holdout", "0", "--epochs", "1", "--warm-epochs", "1", "--no-progress",
                           "--models", str(models), "--name", "big", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300, preexec_fn=four_gib_of_address_space)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2, done.stderr
    assert last.startswith("error: ran out of memory on the CPU (it asked for "), done.stderr
    assert "--batch-size (now 256)" in last and "--image-size (now 512)" in last
    assert "Traceback" not in done.stderr
    assert not (models / "big").exists()


def test_allocation_failures_are_told_as_running_out_of_memory():
    from protopnet_trainer.cli import build_parser
    from protopnet_trainer.errors import is_out_of_memory, out_of_memory_advice
    from protopnet_trainer.job_options import JobOptions
    options = JobOptions.from_parser(build_parser())
    with pytest.raises(RuntimeError) as torch_failure:
        torch.empty(2 ** 46)   # 256 TiB, beyond any address space: refused however the machine overcommits
    with pytest.raises(MemoryError) as numpy_failure:
        np.empty(2 ** 45)   # 256 TiB too
    assert is_out_of_memory(torch_failure.value) and is_out_of_memory(numpy_failure.value)
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"))
    assert not is_out_of_memory(ValueError("out of memory"))   # only the allocators' own errors

    told = out_of_memory_advice(torch_failure.value, 224, {"--batch-size": 80, "--push-batch-size": 75})
    assert told == ("ran out of memory on the CPU (it asked for 256.00 TiB more): lower a batch size, "
                    "--batch-size (now 80), --push-batch-size (now 75), or the input size, --image-size (now 224)")
    assert "(it asked for 256. TiB more)" in out_of_memory_advice(numpy_failure.value, 224, {"--batch-size": 80})
    assert "(it asked for 3.0 MiB more)" in out_of_memory_advice(
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 3145728 bytes."), 224, {})
    # A job's error names its options as the job does.
    assert "options.batchSize (now 80), options.pushBatchSize (now 75)" in options.in_job_words(told)
    assert "options.imageSize (now 224)" in options.in_job_words(told)


def test_every_option_a_job_can_set_says_what_it_does():
    # GET /training/options shows each option's help to people choosing a job's options: 19 had none.
    from protopnet_trainer.cli import build_parser
    from protopnet_trainer.job_options import JobOptions
    helpless = [name for name, option in JobOptions.from_parser(build_parser()).by_name.items()
                if not option.to_json()["help"].strip()]
    assert helpless == []


def test_evaluate_reads_only_the_split_it_evaluates(monkeypatch):
    import protopnet_trainer.evaluate as evaluate
    from conftest import tiny_config
    seen = {}

    class Stop(Exception):
        pass

    def fake_load(cfg, progress=False, log=None, read=("train", "holdout", "test"), **kw):
        seen["read"] = tuple(read)
        raise Stop()
    monkeypatch.setattr(evaluate, "load_checkpoint", lambda path: {"config": dataclasses.asdict(tiny_config())})
    monkeypatch.setattr(evaluate, "load_data_source", fake_load)
    for split in ("test", "train"):
        with pytest.raises(Stop):
            evaluate.evaluate_checkpoint("x.pt", None, None, split, "cpu", False, lambda line: None)
        assert seen["read"] == (split,)


def test_options_json_prints_the_whole_document(capsys):
    from protopnet_trainer.cli import build_parser, main
    from protopnet_trainer.job_options import JobOptions
    assert main(["options", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == JobOptions.from_parser(build_parser()).document()


def test_untrained_export_refuses_data(tmp_path, capsys):
    from protopnet_trainer.cli import main
    assert main(["export", "--untrained", "--num-classes", "2", "--image-size", "32", "--data", str(tmp_path),
                 "--models", str(tmp_path / "m")]) == 2
    assert "reads no --data" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_every_option_of_every_command_says_what_it_does():
    # `<command> --help` is where the README sends people for each command's options: export's --models did not say
    # its default (the repository's models/, where a bundle then appeared), prune's --k and --threshold not what they count.
    import argparse
    from protopnet_trainer.cli import build_parser
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helpless = [f"{name} {action.option_strings[0]}" for name, command in commands.choices.items()
                for action in command._actions
                if action.option_strings and not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()]
    assert helpless == []
