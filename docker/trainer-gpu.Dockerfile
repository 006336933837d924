# ProtoPNet training worker, NVIDIA GPU image: a current PyTorch with CUDA.
# Build from the repository root:  docker build -f docker/trainer-gpu.Dockerfile -t protopnet-trainer:gpu .
#   docker run --rm --gpus all -v "$PWD/models:/models" -v /data/CUB_200_2011:/data/cub:ro protopnet-trainer:gpu \
#     train --preset cub200-resnet34 --data /data/cub --models /models --name cub200-resnet34 --device cuda

FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
RUN pip install --no-cache-dir tqdm matplotlib onnx pillow
WORKDIR /app
COPY src/trainer/ /app/trainer/
ENV PYTHONPATH=/app/trainer PYTHONUNBUFFERED=1
ENTRYPOINT ["python", "-m", "protopnet_trainer"]
CMD ["--help"]
