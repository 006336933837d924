"""The committed default model (models/fashion-mnist/, newest version) against the default-model contract: trained by
the `fashion-mnist` preset as committed, every prototype pushed, within the size and time budgets, with its baseline
and report. The accuracy floor and the gap to the baseline guard against committing a weaker bundle by mistake."""
import json
import os

import pytest

from protopnet_trainer.config import preset_config

REPOSITORY = os.path.join(os.path.dirname(__file__), "..", "..")
MODEL_FOLDER = os.path.join(REPOSITORY, "models", "fashion-mnist")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bundle():
    versions = sorted(v for v in os.listdir(MODEL_FOLDER) if not v.startswith("."))
    assert versions, f"no default model under {MODEL_FOLDER}"
    folder = os.path.join(MODEL_FOLDER, versions[-1])
    with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
        return folder, json.load(f)


def _is_png(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG_SIGNATURE


def test_the_default_model_was_trained_by_the_committed_preset_and_refit(bundle):
    _, manifest = bundle
    training = manifest["training"]
    assert training["preset"] == "fashion-mnist"
    preset = preset_config("fashion-mnist").to_dict()
    # The baseline ran in its own process (--baseline-result), so this run itself trained none.
    differing = {k for k, v in training["config"].items() if preset.get(k) != v} - {"with_baseline"}
    # scripts/refit_default_model.py declared the contrast step and pushed background-aware, nothing else.
    assert training["refit"]["script"] == "scripts/refit_default_model.py"
    assert os.path.isfile(os.path.join(REPOSITORY, training["refit"]["script"]))
    assert (training["config"]["contrast"], training["config"]["background_aware"]) == ("auto", True)
    assert manifest["input"]["contrast"] == "auto"
    assert differing == {"contrast", "background_aware"}, f"the bundle's recipe differs from the preset in {sorted(differing)}"


def test_the_default_model_reads_product_shots_knows_its_background_and_flags_the_unfamiliar(bundle):
    """Issues 15 and 16: product shots recognised, at most 5 of 100 prototypes background, a calibrated threshold
    on held-out images."""
    _, manifest = bundle
    metrics = manifest["training"]["metrics"]
    assert metrics["testAccuracy"] >= 0.94 and metrics["productShotAccuracy"] >= 0.90
    assert manifest["interpretability"]["backgroundPrototypes"] <= 5
    block = manifest["unfamiliarity"]
    assert block["calibration"]["size"] >= 1000 and abs(block["calibration"]["flaggedShare"] - 0.01) <= 0.002


def test_every_prototype_is_a_pushed_training_patch_and_each_class_has_ten(bundle):
    folder, manifest = bundle
    classes = len(manifest["classes"])
    per_class = [sum(p["classIndex"] == k for p in manifest["prototypes"]) for k in range(classes)]
    assert classes == 10 and min(per_class) >= 10
    assert manifest["training"]["pushEpochs"][-1] == manifest["training"]["epochs"]
    for prototype in manifest["prototypes"]:
        assert prototype["source"]["split"] == "train" and prototype["source"]["item"]
        assert all(_is_png(os.path.join(folder, path)) for path in prototype["images"].values())


def test_the_default_model_meets_its_budgets_and_reports_its_baseline(bundle):
    folder, manifest = bundle
    training = manifest["training"]
    size = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)
    assert size <= 20 * 1024 * 1024
    assert 0 < training["seconds"] <= 3600
    assert training["testSize"] == 10000 and training["metrics"]["testAccuracy"] >= 0.935
    baseline = training["baseline"]
    assert (baseline["epochs"], baseline["seed"]) == (training["epochs"], training["config"]["seed"])
    assert 0.9 < baseline["testAccuracy"] <= 1
    # The interpretability must cost at most half a point against the black-box twin.
    assert round(baseline["testAccuracy"] - training["metrics"]["testAccuracy"], 4) <= 0.005
    assert [os.path.basename(p) for p in manifest["report"]] == ["curves.png", "confusion.png", "gallery.png",
                                                               "interpretability.png"]
    assert all(_is_png(os.path.join(folder, p)) for p in manifest["report"])
