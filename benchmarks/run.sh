#!/usr/bin/env bash
# Throughput benchmark (not a test): in-process ONNX Runtime (batch 1 and batched) vs POST /classify on 127.0.0.1 to the
# service as configured by default (plus any --set Section:Key=value) and to one with a fixed batch of --max-batch-size,
# at concurrency 1, 4, 16, 32, 64, with img/s, p50/p99 and CPU ms per image (the service process's own CPU time, which
# other work on a shared machine changes little). The measurements of one level take turns in --rounds slices.
#   benchmarks/run.sh models/fashion-mnist/<version> [--seconds 10] [--rounds 2] [--concurrency 1,4,16,32,64] [--image photo.jpg]
#     [--max-batch-size 16] [--no-fixed] [--set Batching:MaxBatchSize=4] [--versus Inference:IntraOpThreads=1]
#     [--versus-build /tmp/before/src/ProtoPNet.Service/bin/Release/net10.0] [--httpclient] [--classify-only]
# --versus Section:Key=value (repeatable) replaces the fixed-batch service with one configured as the first plus those
# settings: an A/B of a setting in one run, its measurements taking turns with the default's. --versus-build DIR does the
# same for a code change: the second service is another build (DIR holds its ProtoPNet.Service.dll), e.g. of the commit
# before, built with: git worktree add /tmp/before HEAD~1 && dotnet build -c Release /tmp/before/src/ProtoPNet.Service
#   (then --versus-build /tmp/before/src/ProtoPNet.Service/bin/Release/net10.0).
# The load comes from a lean HTTP/1.1 client (LeanHttpClient.cs); --httpclient uses .NET's HttpClient instead, to compare.
# --classify-only measures /classify (and the second service) alone, one line per level: a load to watch the service under.
# Memory over a long run: --soak 300 --concurrency 64 (resident memory of the service at start, every 30 s and at the end).
# For the ResNet-18 224x224 bundle with 200 classes x 10 prototypes (untrained), make it first with the trainer:
#   PYTHONPATH=src/trainer /usr/bin/python3 -m protopnet_trainer export --untrained --backbone resnet18 \
#     --num-classes 200 --prototypes-per-class 10 --image-size 224 --models artifacts/bench-models --name resnet18-untrained
set -euo pipefail
cd "$(dirname "$0")/.."
# The options and their usage line are the benchmark program's (BenchmarkOptions.cs).
help() { dotnet run -c Release --project benchmarks/ProtoPNet.Benchmarks -- --help; }
case "${1:-}" in
  -h | --help) help; exit 0 ;;
  "") help >&2; exit 2 ;;
esac
[ -d "$1" ] || { echo "no bundle folder $1 (benchmarks/run.sh --help lists the options)" >&2; exit 2; }
bundle=$1; shift
dotnet build -c Release src/ProtoPNet.Service -v q -nologo
dotnet run -c Release --project benchmarks/ProtoPNet.Benchmarks -- --bundle "$bundle" "$@"
