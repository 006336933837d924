# ProtoPNet training worker, CPU image: Debian's PyTorch, the same packages the tests use.
# Build from the repository root:  docker build -f docker/trainer.Dockerfile -t protopnet-trainer .
# Train the default model into a mounted model root:
#   docker run --rm -v "$PWD/models:/models" protopnet-trainer train --preset fashion-mnist --models /models --name fashion-mnist

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3-torch python3-torchvision python3-onnx python3-tqdm python3-matplotlib python3-pil \
      dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY src/trainer/ /app/trainer/
ENV PYTHONPATH=/app/trainer PYTHONUNBUFFERED=1
ENTRYPOINT ["/usr/bin/python3", "-m", "protopnet_trainer"]
CMD ["--help"]
