# ProtoPNet trainer and training worker, NVIDIA GPU image: a current PyTorch with CUDA. The same layout as the CPU
# image (docker/trainer.Dockerfile: the trainer in /app/trainer, non-root user app uid 1654, same health check and
# entry point) on PyTorch's own CUDA image.
# Build from the repository root:  docker build -f docker/trainer-gpu.Dockerfile -t protopnet-trainer:gpu .
#   docker run --rm --gpus all -v "$PWD/models:/models" -v /data/CUB_200_2011:/data/cub:ro protopnet-trainer:gpu \
#     train --preset cub200-resnet34 --data /data/cub --models /models --name cub200-resnet34 --device cuda

# Fashion-MNIST from Debian's package, as the CPU image installs it: the fashion-mnist preset (and jobs naming it) read it
# from /usr/share/datasets/fashion-mnist.
FROM debian:12-slim AS fashion-mnist
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*

FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
COPY --from=fashion-mnist /usr/share/datasets/fashion-mnist/ /usr/share/datasets/fashion-mnist/
RUN pip install --no-cache-dir tqdm matplotlib onnx pillow \
 && groupadd --gid 1654 app \
 && useradd --uid 1654 --gid 1654 --create-home --no-log-init app \
 && mkdir /models /jobs /runs && chown app:app /models /jobs /runs
COPY src/trainer/ /app/trainer/
WORKDIR /home/app
ENV PYTHONPATH=/app/trainer \
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
