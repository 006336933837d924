# ProtoPNet trainer and training worker, NVIDIA GPU image: a current PyTorch with CUDA. The same layout as the CPU
# image (docker/trainer.Dockerfile: the trainer in /app/trainer, non-root user app uid 1654, same health check and
# entry point) on PyTorch's own CUDA image.
# Build from the repository root:  docker build -f docker/trainer-gpu.Dockerfile -t protopnet-trainer:gpu .
#   (podman and buildah: add --build-arg WEIGHTS=restore, the default, or they look for an image named after the stage)
#   docker run --rm --gpus all -v "$PWD/models:/models" -v /data/CUB_200_2011:/data/cub:ro protopnet-trainer:gpu \
#     train --preset cub200-resnet18 --data /data/cub --models /models --name cub200-resnet18 --device cuda
#   (cub200-resnet34 starts from torchvision's resnet34-b627a593.pth, which the image does not hold and the trainer
#   never downloads: add -v DIR:/torch:ro -e TORCH_HOME=/torch with the file in DIR/hub/checkpoints/)

# Which stage the ImageNet ResNet-18 weights come from (below); declared before the first FROM, as a FROM line may only
# use such arguments.
ARG WEIGHTS=restore

# Fashion-MNIST from Debian's package, as the CPU image installs it: the fashion-mnist preset (and jobs naming it) read it
# from /usr/share/datasets/fashion-mnist.
FROM debian:12-slim AS fashion-mnist
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*

# The ImageNet ResNet-18 weights the photo recipes start from (cub200-resnet18, and a job on an image folder with it):
# the NuGet package the trainer imports them from (src/trainer/pretrained/PretrainedWeights.csproj), its model files
# only. The trainer never downloads; without them such a run stops at once.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS restore
WORKDIR /source
COPY Directory.Build.props Directory.Packages.props ./
COPY src/trainer/pretrained/PretrainedWeights.csproj src/trainer/pretrained/
RUN dotnet restore src/trainer/pretrained/PretrainedWeights.csproj --packages /packages \
 && mkdir /weights && cd /packages && cp -r --parents microsoft.ml.dnnimagefeaturizer.resnet18/*/tools /weights/

# The same files copied from this machine's restore (how scripts/test_containers.sh builds where no registry is reachable):
# --build-arg WEIGHTS=prebuilt.
FROM scratch AS prebuilt
COPY artifacts/containers/trainer-weights/ /weights/

FROM ${WEIGHTS} AS weights

FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
COPY --from=fashion-mnist /usr/share/datasets/fashion-mnist/ /usr/share/datasets/fashion-mnist/
RUN pip install --no-cache-dir tqdm matplotlib onnx pillow \
 && groupadd --gid 1654 app \
 && useradd --uid 1654 --gid 1654 --create-home --no-log-init app \
 && mkdir /models /jobs /runs && chown app:app /models /jobs /runs
# The trainer looks for the weights where NuGet keeps packages ($NUGET_PACKAGES).
COPY --from=weights /weights/ /app/nuget-packages/
COPY src/trainer/ /app/trainer/
WORKDIR /home/app
ENV PYTHONPATH=/app/trainer \
    NUGET_PACKAGES=/app/nuget-packages \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    PROTOPNET_WORKER_ALIVE_FILE=/tmp/protopnet-worker.alive
USER 1654:1654
# Healthy while the worker beats (its loop and its job's heartbeat touch $PROTOPNET_WORKER_ALIVE_FILE); a container
# running another command (a one-off `train`) has no worker to judge. The check imports no torch.
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s \
  CMD ["python", "-m", "protopnet_trainer.alive"]
ENTRYPOINT ["python", "-m", "protopnet_trainer"]
CMD ["--help"]
