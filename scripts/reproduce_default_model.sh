#!/usr/bin/env bash
# Reproduces the default model (models/fashion-mnist/) from a fresh Debian 12 machine: installs the Debian
# packages it needs, trains the `fashion-mnist` preset with the fixed seed, publishes a bundle, refits it
# (scripts/refit_default_model.py: contrast step, background-aware push, last layer, unfamiliarity calibration) into
# a second version and prints the table of results. The black-box baseline trains first and the ProtoPNet after it,
# each on the whole machine (2 threads), so the ProtoPNet's `training.seconds` is the recipe's own wall time; the two
# together took about 95 minutes on this 2-core machine when the committed model was trained (and about twice that
# when the machine ran at half speed), the refit about 10 more.
#
# Usage: scripts/reproduce_default_model.sh
#   EPOCHS=50   joint epochs (the committed default model: 50)
#   SEED=1      the fixed seed of the committed default model
#   MODELS=artifacts/reproduce/models   where the bundle is published (MODELS=models publishes a new default version)
#   RUN_DIR=artifacts/reproduce/run     checkpoints, metrics.jsonl and the logs
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)
epochs=${EPOCHS:-50}
seed=${SEED:-1}
models=${MODELS:-artifacts/reproduce/models}
run_dir=${RUN_DIR:-artifacts/reproduce/run}

apt_packages=(python3-torch python3-torchvision python3-onnx python3-tqdm python3-matplotlib python3-pil
              dataset-fashion-mnist)
scripts/install_debian_packages.sh "${apt_packages[@]}"

python=/usr/bin/python3
export PYTHONPATH="$root_dir/src/trainer${PYTHONPATH:+:$PYTHONPATH}"
rm -rf "$run_dir"
mkdir -p "$run_dir" "$models"
baseline_json="$run_dir/baseline.json"
recipe=(--preset fashion-mnist --epochs "$epochs" --seed "$seed")

echo "== black-box baseline (same trunk, epochs and augmentation): log $run_dir/baseline.log"
$python -m protopnet_trainer train "${recipe[@]}" --baseline-only "$baseline_json" --no-progress \
  > "$run_dir/baseline.log" 2>&1 || { echo "the baseline run failed:"; tail -5 "$run_dir/baseline.log"; exit 1; }
tail -1 "$run_dir/baseline.log"

echo "== ProtoPNet (fashion-mnist preset, $epochs epochs, seed $seed): log $run_dir/protopnet.log"
$python -m protopnet_trainer train "${recipe[@]}" --baseline-result "$baseline_json" \
  --models "$models" --name fashion-mnist --run-dir "$run_dir/protopnet" --no-progress 2>&1 | tee "$run_dir/protopnet.log"

trained=$(sed -n 's/^published \([^ ]*\) .*/\1/p' "$run_dir/protopnet.log" | tail -1)
[ -n "$trained" ] || { echo "no bundle was published"; exit 1; }

echo "== refit of $trained: log $run_dir/refit.log"
$python scripts/refit_default_model.py --bundle "$trained" --models "$models" --no-progress 2>&1 | tee "$run_dir/refit.log"
bundle=$(sed -n 's/^published \([^ ]*\) .*/\1/p' "$run_dir/refit.log" | tail -1)
[ -n "$bundle" ] || { echo "the refit published no bundle"; exit 1; }
$python - "$bundle/model.json" <<'EOF'
import json
import sys

manifest = json.load(open(sys.argv[1]))
training = manifest["training"]
protopnet = 100 * training["metrics"]["testAccuracy"]
baseline = training.get("baseline") or {}
rows = [("ProtoPNet (after the final push + last layer)", f"{protopnet:.2f}", f"{training['seconds']:.0f}")]
if training["metrics"].get("productShotAccuracy") is not None:   # the same test images as product photos
    rows.append(("ProtoPNet on product shots (dark on light, JPEG)",
                 f"{100 * training['metrics']['productShotAccuracy']:.2f}", ""))
if "testAccuracy" in baseline:
    rows.append(("black-box baseline, same trunk + GAP + linear", f"{100 * baseline['testAccuracy']:.2f}",
                 f"{baseline.get('seconds', 0):.0f}"))
rows += [("anchor: 2 conv + pooling", "91.6", ""), ("anchor: 2 conv + pooling + BN", "93.4", ""),
         ("anchor: AutoML", "93.9", ""), ("anchor: DenseNet-BC", "95.4", "")]
print(f"\nbundle {sys.argv[1].rsplit('/', 1)[0]} ({training['epochs']} epochs, seed {training['config']['seed']})")
print(f"{'model':<48} {'test acc %':>10} {'seconds':>8}")
for name, accuracy, seconds in rows:
    print(f"{name:<48} {accuracy:>10} {seconds:>8}")
if "testAccuracy" in baseline:
    print(f"gap (baseline - ProtoPNet): {100 * baseline['testAccuracy'] - protopnet:.2f} points")
if manifest.get("unfamiliarity"):
    block = manifest["unfamiliarity"]
    print(f"unfamiliarity threshold {block['threshold']:.4f} ({block['measure']}), flags "
          f"{block['calibration']['flaggedShare']:.4f} of its {block['calibration']['size']} calibration images "
          f"({block['calibration']['split']})")
card = manifest.get("interpretability") or {}
if card:
    print(f"background prototypes: {card['backgroundPrototypes']} of {len(manifest['prototypes'])}")
EOF
