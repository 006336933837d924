#!/usr/bin/env bash
# Throughput benchmark (not a test): in-process ONNX Runtime (batch 1 and batched) vs POST /classify on 127.0.0.1 with and
# without dynamic batching, at concurrency 1, 4, 16, 32, 64, with img/s, p50/p99 and CPU ms per image (the service process's
# own CPU time, which other work on a shared machine does not change).
#   benchmarks/run.sh models/fashion-mnist/<version> [--seconds 10] [--concurrency 1,4,16,32,64] [--max-batch-size 16] [--no-unbatched]
# For the ResNet-18 224x224 bundle with 200 classes x 10 prototypes (untrained), make it first with the trainer:
#   PYTHONPATH=src/trainer /usr/bin/python3 -m protopnet_trainer export --untrained --backbone resnet18 \
#     --num-classes 200 --prototypes-per-class 10 --image-size 224 --models artifacts/bench-models --name resnet18-untrained
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: benchmarks/run.sh <bundle folder> [--seconds N] [--concurrency 1,4,16,32,64] [--max-batch-size 16] [--no-unbatched]" >&2; exit 2; }
bundle=$1; shift
dotnet build -c Release src/ProtoPNet.Service -v q -nologo
dotnet run -c Release --project benchmarks/ProtoPNet.Benchmarks -- --bundle "$bundle" "$@"
