#!/usr/bin/env bash
# The GPU benchmark (not a test) on a CUDA host that has neither .NET nor the service's GPU image: a bare Linux x86-64
# machine with an NVIDIA driver, CUDA 13's libraries (cuBLAS, cuDNN, cuRAND, the runtime: PyTorch's Python packages
# bring them), xz, and a python3 with PyTorch and onnx for the trainer.
#   benchmarks/gpu_host.sh pack [--arch 90]   here (.NET SDK, Debian): two archives, each under 64 MiB, so that they can
#       travel separately to a host reached through a size-limited copy:
#       artifacts/gpu/provider: ONNX Runtime's CUDA provider library with only the host's GPU kernels (sm_90: H100, H200)
#       artifacts/gpu/runtime: the .NET 10 runtime, the service's and the benchmark's Release builds, libjpeg-turbo,
#                              libwebp and libdeflate, two JPEGs of a photo (224x224, 640x480)
#   benchmarks/gpu_host.sh prepare            there, in a copy of this checkout, after each archive arrives: unpacks what
#       has come into $GPU_STATE (default /var/tmp/protopnet-gpu), finds the CUDA libraries and exports the ResNet-18
#       bundle (200 classes x 10 prototypes, untrained) with the trainer
#   benchmarks/gpu_host.sh bench [--seconds 4] [--no-train] [--versus Section:Key=value] [--only resnet224|default|resnet640]
#       there: benchmarks/run.sh's program on the CUDA provider (required: a host where it cannot load stops at once
#       with the reason) on the ResNet-18 bundle (224x224 JPEG), the default model and ResNet-18 again (640x480), or
#       those named by --only (repeatable), its second service batching
#       64 (or, with --versus, configured as the first plus those settings; two runs in flight on CUDA:
#       --versus Batching:Strategy=Fixed --versus Batching:MaxConcurrentRuns=2), then
#       (unless --no-train) a smoke training on CUDA; everything printed is also in $RESULTS (default
#       artifacts/gpu/results), with nvidia-smi's utilisation every 2 s (gpu-bench.log)
#   benchmarks/gpu_host.sh diagnose [--resnet224] [--seconds 3] [--concurrency 32,32,32,128] [name:NAME=value,...]...
#       there: one service (per variant, with those environment settings) under /classify load, its threads sampled
#       (benchmarks/threads.py), its log and batching metrics kept in $RESULTS
# Why zero kernels: the provider library is 284 MB, 218 MB of it kernels for six GPU architectures (sm_75 to sm_120);
# with the others zeroed (benchmarks/cuda_fatbin.py) it compresses to 52 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
artifacts=artifacts/gpu
state=${GPU_STATE:-/var/tmp/protopnet-gpu}
results=${RESULTS:-$artifacts/results}
service_build=src/ProtoPNet.Service/bin/Release/net10.0
benchmark_build=benchmarks/ProtoPNet.Benchmarks/bin/Release/net10.0
native=runtimes/linux-x64/native
provider=libonnxruntime_providers_cuda.so
# The default model's newest version, as the service serves it (versions are UTC timestamps, so they sort by name).
default_model=$(ls -d models/fashion-mnist/*/ | sort | tail -1)

pack() {
  local arch=90 python=python3
  [ -x /usr/bin/python3 ] && python=/usr/bin/python3 # Debian's, with Pillow
  [ "${1:-}" = "--arch" ] && arch=$2
  dotnet build -c Release src/ProtoPNet.Service -v q -nologo
  dotnet build -c Release benchmarks/ProtoPNet.Benchmarks -v q -nologo
  local stage
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' RETURN
  rm -rf "$artifacts/provider" "$artifacts/runtime"
  mkdir -p "$artifacts/provider" "$artifacts/runtime"
  "$python" benchmarks/cuda_fatbin.py "$service_build/$native/$provider" --keep "$arch" -o "$stage/$provider"
  xz -9 -T0 -c "$stage/$provider" > "$artifacts/provider/$provider.xz"

  # The .NET runtime the builds run on: the host (dotnet), hostfxr and the two shared frameworks, of the SDK's newest 10.x.
  local dotnet_root version
  dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
  version=$(ls "$dotnet_root/shared/Microsoft.AspNetCore.App" | grep '^10\.' | sort -V | tail -1)
  mkdir -p "$stage/runtime/dotnet/host/fxr" "$stage/runtime/dotnet/shared/Microsoft.NETCore.App" \
    "$stage/runtime/dotnet/shared/Microsoft.AspNetCore.App" "$stage/runtime/libs"
  cp "$dotnet_root/dotnet" "$stage/runtime/dotnet/"
  cp -r "$dotnet_root/host/fxr/$version" "$stage/runtime/dotnet/host/fxr/"
  cp -r "$dotnet_root/shared/Microsoft.NETCore.App/$version" "$stage/runtime/dotnet/shared/Microsoft.NETCore.App/"
  cp -r "$dotnet_root/shared/Microsoft.AspNetCore.App/$version" "$stage/runtime/dotnet/shared/Microsoft.AspNetCore.App/"
  # The builds without the GPU libraries (the provider travels apart); the benchmark shares the service's native folder.
  mkdir -p "$stage/runtime/checkout/$service_build" "$stage/runtime/checkout/$benchmark_build"
  tar -C "$service_build" --exclude "$provider" --exclude libonnxruntime_providers_tensorrt.so -cf - . \
    | tar -C "$stage/runtime/checkout/$service_build" -xf -
  tar -C "$benchmark_build" --exclude runtimes -cf - . | tar -C "$stage/runtime/checkout/$benchmark_build" -xf -
  local library
  for library in libturbojpeg.so.0 libwebp.so.7 libdeflate.so.0; do
    cp -L "$(ldconfig -p | awk -v name="$library" '$1 == name { print $NF; exit }')" "$stage/runtime/libs/"
  done
  "$python" - "$stage/runtime" <<'EOF'
import sys
from PIL import Image
photo = Image.open("/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg").convert("RGB")
for width, height in ((224, 224), (640, 480)):
    photo.resize((width, height), Image.BICUBIC).save(f"{sys.argv[1]}/photo{width}.jpg", quality=90)
EOF
  tar -C "$stage/runtime" -cf - . | xz -9 -T0 > "$artifacts/runtime/runtime.tar.xz"
  ls -l "$artifacts/provider" "$artifacts/runtime"
}

prepare() {
  mkdir -p "$state"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || echo "nvidia-smi: none"
  python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.cuda.is_available())'
  if [ -f "$artifacts/provider/$provider.xz" ] && [ ! -s "$state/$provider" ]; then
    xz -dc "$artifacts/provider/$provider.xz" > "$state/$provider.part" && mv "$state/$provider.part" "$state/$provider"
  fi
  if [ -f "$artifacts/runtime/runtime.tar.xz" ] && [ ! -d "$state/runtime" ]; then
    mkdir -p "$state/runtime.part" && xz -dc "$artifacts/runtime/runtime.tar.xz" | tar -C "$state/runtime.part" -xf -
    mv "$state/runtime.part" "$state/runtime"
  fi
  # The folders of CUDA's libraries, wherever the host keeps them (the driver's, a CUDA install, Python packages).
  if [ ! -s "$state/ld_library_path" ]; then
    (ldconfig -p | awk '/libcuda\.so\.1 / { print $NF }'
     find / \( -path /proc -o -path /sys -o -path /dev -o -path "$PWD" -o -path "$state" \) -prune -o \
       \( -name libcudnn.so.9 -o -name libcublasLt.so.13 -o -name libcublas.so.13 -o -name libcudart.so.13 \
          -o -name libcurand.so.10 -o -name libcufft.so.12 -o -name libcuda.so.1 \) -print 2>/dev/null) \
      | xargs -r -n1 dirname | sort -u | paste -sd: - > "$state/ld_library_path"
  fi
  echo "CUDA libraries in: $(cat "$state/ld_library_path")"
  if [ -s "$state/$provider" ]; then
    LD_LIBRARY_PATH=$(cat "$state/ld_library_path") ldd "$state/$provider" | grep -E 'not found|libcu' || true
  fi
  if ! ls -d "$state"/models/resnet18-untrained/*/ > /dev/null 2>&1; then
    PYTHONPATH=src/trainer python3 -m protopnet_trainer export --untrained --backbone resnet18 --num-classes 200 \
      --prototypes-per-class 10 --image-size 224 --models "$state/models" --name resnet18-untrained \
      || echo "the ResNet-18 export failed on this torch: bench measures the default model alone"
  fi
  echo "ready: provider $([ -s "$state/$provider" ] && echo yes || echo no), runtime $([ -d "$state/runtime" ] && echo yes || echo no)"
}

# The unpacked builds in this checkout, their runtime and libraries on the paths, everything printed also in
# $results/$1, and nvidia-smi's utilisation every 2 s in $results/gpu-$1 (one per command, so that a second keeps the first's).
use_runtime() {
  [ -s "$state/$provider" ] && [ -d "$state/runtime" ] || { echo "run prepare with both archives first" >&2; exit 2; }
  mkdir -p "$results"
  exec > >(tee "$results/$1") 2>&1
  cp -r "$state/runtime/checkout/." .
  cp "$state/$provider" "$service_build/$native/"
  [ -d "$benchmark_build/runtimes" ] || ln -s "$PWD/$service_build/runtimes" "$benchmark_build/runtimes"
  export DOTNET_ROOT=$state/runtime/dotnet PATH=$state/runtime/dotnet:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  export LD_LIBRARY_PATH=$(cat "$state/ld_library_path"):$state/runtime/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  ldconfig -p | grep -q libicu || export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
  nvidia-smi dmon -s um -d 2 > "$results/gpu-$1" 2>&1 &
  trap "kill $! 2>/dev/null || true" EXIT # nvidia-smi's sampling ends with the script
}

# One service on CUDA serving the default model (or --resnet224), started here with its log kept, under /classify
# load at each --concurrency level in turn while benchmarks/threads.py samples its threads, with its batching metrics
# after each level. Once per variant: a name and environment settings (NAME=value,NAME=value), e.g.
# minthreads:DOTNET_ThreadPool_ForceMinWorkerThreads=40. The services' logs and samples: $results/diagnose-<model>.tgz.
diagnose() {
  local seconds=3 concurrency=32,32,32,128 model=default
  local -a variants=()
  while [ $# -gt 0 ]; do
    case $1 in
      --seconds) seconds=$2; shift 2 ;;
      --concurrency) concurrency=$2; shift 2 ;;
      --resnet224) model=resnet224; shift ;;
      *) variants+=("$1"); shift ;;
    esac
  done
  [ ${#variants[@]} -gt 0 ] || variants=(default:)
  use_runtime "diagnose-$model.log"
  local root bundle logs=$results/diagnose-$model port=5700
  local -a image=()
  root=$(mktemp -d)
  mkdir -p "$logs"
  if [ "$model" = resnet224 ]; then
    bundle=$(ls -d "$state"/models/resnet18-untrained/*/ | head -1)
    image=(--image "$state/runtime/photo224.jpg")
  else
    bundle=$PWD/$default_model
  fi
  bundle=${bundle%/}
  local name_of_model
  name_of_model=$(basename "$(dirname "$bundle")")
  mkdir -p "$root/$name_of_model" && ln -s "$bundle" "$root/$name_of_model/"
  local variant name pid sampler level
  for variant in "${variants[@]}"; do
    name=${variant%%:*}
    port=$((port + 1))
    echo "== $(date -u +%T) $model, $name (${variant#*:})"
    (
      IFS=, read -ra settings <<< "${variant#*:}"
      for setting in "${settings[@]}"; do [ -n "$setting" ] && export "${setting?}"; done
      cd "$service_build" && exec env ASPNETCORE_URLS="http://127.0.0.1:$port" Models__Root="$root" \
        Models__DefaultModel="$name_of_model" Inference__ExecutionProvider=cuda Logging__Format=json \
        Serilog__MinimumLevel__Override__Serilog.AspNetCore.RequestLoggingMiddleware=Warning \
        dotnet ProtoPNet.Service.dll > "$logs/service-$name.log" 2>&1
    ) &
    pid=$!
    for _ in $(seq 120); do
      sleep 1
      python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health/ready', timeout=2)" 2>/dev/null && break
    done
    python3 benchmarks/threads.py "$pid" --interval 1 --seconds 600 > "$logs/threads-$name.log" &
    sampler=$!
    for level in ${concurrency//,/ }; do
      echo "-- $(date -u +%T) load at $level"
      dotnet "$benchmark_build/ProtoPNet.Benchmarks.dll" --url "http://127.0.0.1:$port" --bundle "$bundle" ${image[@]+"${image[@]}"} \
        --classify-only --no-fixed --rounds 1 --seconds "$seconds" --concurrency "$level" --set Inference:ExecutionProvider=cuda \
        | grep -E '^concurrency|execution strategy' || echo "== the benchmark ended with $?"
      python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$port/metrics', timeout=5).read().decode())" \
        | grep -E '^protopnet_(batch_size|queue_duration|inference_duration|explanation_duration|request_duration)[a-z_]*_(sum|count)' \
        | grep -v 'model="-"' || true
    done
    kill "$pid" "$sampler" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -E 'runs batches' "$logs/service-$name.log" | cut -c1-400 || true   # the strategy, and on CUDA the padded sessions' first runs
    cat "$logs/threads-$name.log"
  done
  tar -C "$results" -czf "$results/diagnose-$model.tgz" "diagnose-$model" && rm -rf "$logs"
}

bench() {
  local seconds=4 train=yes
  local -a versus=() only=()
  while [ $# -gt 0 ]; do
    case $1 in
      --seconds) seconds=$2; shift 2 ;;
      --no-train) train=no; shift ;;
      --versus) versus+=(--versus "$2"); shift 2 ;;
      --only)
        case $2 in resnet224 | default | resnet640) only+=("$2") ;; *) echo "bench: --only takes resnet224, default or resnet640" >&2; exit 2 ;; esac
        shift 2 ;;
      *) echo "bench: unknown option $1" >&2; exit 2 ;;
    esac
  done
  wanted() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }
  use_runtime bench.log
  local resnet
  resnet=$(ls -d "$state"/models/resnet18-untrained/*/ 2>/dev/null | head -1 || true)
  run() { # time limit in seconds, then the benchmark's options
    local limit=$1
    shift
    echo "== $(date -u +%T) benchmark $*"
    timeout "$limit" dotnet "$benchmark_build/ProtoPNet.Benchmarks.dll" --rounds 1 --seconds "$seconds" --max-batch-size 64 \
      --set Inference:ExecutionProvider=cuda ${versus[@]+"${versus[@]}"} "$@" \
      || echo "== the benchmark ended with $?"
  }
  # Most telling first: when the device time runs out, what is cut is the last.
  [ -n "$resnet" ] || echo "== no ResNet-18 bundle (its export failed in prepare)"
  if [ -n "$resnet" ] && wanted resnet224; then
    run 150 --bundle "$resnet" --image "$state/runtime/photo224.jpg" --concurrency 1,32,128
  fi
  if wanted default; then run 120 --bundle "$default_model" --concurrency 1,32,128; fi
  if [ -n "$resnet" ] && wanted resnet640; then
    run 120 --bundle "$resnet" --image "$state/runtime/photo640.jpg" --concurrency 32,128
  fi
  [ "$train" = yes ] || return 0
  echo "== $(date -u +%T) trainer smoke on CUDA"
  PYTHONPATH=src/trainer PYTHONUNBUFFERED=1 timeout 120 python3 -m protopnet_trainer train --preset smoke --device cuda \
    --models "$state/trained" --name smoke-cuda 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -8 || echo "== the smoke training failed"
}

case "${1:-}" in
  pack | prepare | bench | diagnose) command=$1; shift; "$command" "$@" ;;
  *) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2 ;; # the usage: the comment at the top
esac
