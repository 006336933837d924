#!/usr/bin/env bash
# Where the service's CPU goes (not a test): starts the Release service on a bundle under /classify load at
# concurrency 32 (the benchmark's --soak mode), records 12 s of it with perf (call stacks at 499 Hz, after the JIT has
# settled) and prints the share of each stage: ONNX Runtime, decode, resize + tensor, explanation, HTTP, JSON,
# logging and metrics, batching hand-offs, the thread pool, the .NET runtime (benchmarks/perf_stages.py).
#   benchmarks/profile.sh models/fashion-mnist/<version> [--image photo.jpg] [--set Section:Key=value]
# Needs perf (Debian's linux-perf) and root or kernel.perf_event_paranoid <= 1 for another process's samples.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: benchmarks/profile.sh <bundle folder> [--image photo.jpg] [--set Section:Key=value]" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
bundle=$1; shift
out=${PROFILE_OUT:-artifacts/profile}
mkdir -p "$out"
dotnet build -c Release src/ProtoPNet.Service -v q -nologo
dotnet build -c Release benchmarks/ProtoPNet.Benchmarks -v q -nologo
# The JIT's code goes to /tmp/perf-<pid>.map where perf looks (no W^X double mapping, whose copies perf cannot name).
dotnet run -c Release --no-build --project benchmarks/ProtoPNet.Benchmarks -- --bundle "$bundle" --soak 40 --concurrency 32 \
  --set DOTNET_PerfMapEnabled=1 --set DOTNET_EnableWriteXorExecute=0 "$@" >"$out/load.txt" 2>&1 &
load=$!
sleep 25   # start, strategy measurement, 5 s warm-up and the first seconds of load
service=$(pgrep -n -f 'ProtoPNet.Service.dll')
perf record -F 499 -g -p "$service" -o "$out/service.perf" -- sleep 12 >/dev/null 2>&1
wait "$load"
grep -E 'execution strategy|^service RSS' "$out/load.txt" | cut -c1-200 || true
perf script -i "$out/service.perf" -F comm,tid,ip,sym,dso 2>/dev/null | /usr/bin/python3 benchmarks/perf_stages.py --label "$(basename "$bundle")"
