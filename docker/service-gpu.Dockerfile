# ProtoPNet inference service, NVIDIA GPU image (CUDA execution provider of ONNX Runtime). The same build as the CPU
# image (docker/service.Dockerfile: self-contained publish, non-root user app uid 1654, same health check and entry
# point) on a CUDA base instead of Debian, keeping ONNX Runtime's CUDA provider.
# Build from the repository root:  docker build -f docker/service-gpu.Dockerfile -t protopnet-service:gpu .
#   (podman and buildah: add --build-arg PUBLISHED=build, the default, or they look for an image named after the stage)
# Run with the NVIDIA container toolkit:  docker run --gpus all -p 8080:8080 protopnet-service:gpu
# ONNX Runtime 1.31's CUDA provider links against CUDA 13 (libcublasLt.so.13, libcudart.so.13) and loads cuDNN 9: this
# base image provides both. CUDA 13 needs an NVIDIA driver of 580 or later on the host (the GPU trainer image, CUDA
# 12.4, runs on older ones). Publishing on the host instead: publish into artifacts/containers/service-gpu/ and add
# --build-arg PUBLISHED=prebuilt.

ARG PUBLISHED=build

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /source
COPY Directory.Build.props Directory.Packages.props ./
COPY src/ProtoPNet.Inference/ProtoPNet.Inference.csproj src/ProtoPNet.Inference/
COPY src/ProtoPNet.Service/ProtoPNet.Service.csproj src/ProtoPNet.Service/
RUN dotnet restore src/ProtoPNet.Service/ProtoPNet.Service.csproj -r linux-x64
COPY src/ProtoPNet.Inference/ src/ProtoPNet.Inference/
COPY src/ProtoPNet.Service/ src/ProtoPNet.Service/
RUN dotnet publish src/ProtoPNet.Service/ProtoPNet.Service.csproj -c Release --no-restore \
      -r linux-x64 --self-contained true -o /app

FROM scratch AS prebuilt
COPY artifacts/containers/service-gpu/ /app/

FROM ${PUBLISHED} AS published

FROM nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 AS runtime
# libturbojpeg and libwebp7: JPEG and WebP uploads decoded with libjpeg-turbo and libwebp, as Pillow does in the
# trainer; libwebpdemux2: a WebP's container judged as Pillow opens it; libdeflate0: a TIFF's deflate strips judged as
# libtiff inflates them; ca-certificates: HTTPS calls out (an
# OpenTelemetry collector), as in the CPU image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libturbojpeg libwebp7 libwebpdemux2 libdeflate0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1654 app \
 && useradd --uid 1654 --gid 1654 --create-home --no-log-init app
WORKDIR /app
COPY --from=published /app ./
COPY models/ /models/
# The model repository, each model's folder in it and the jobs folder are owned by app, so fresh volumes mounted there
# are writable by the worker (same uid), which publishes new versions of the default model beside it too; the default
# model's version folder and files stay read-only.
RUN chown app:app /models /models/* && mkdir /jobs && chown app:app /jobs
ENV ASPNETCORE_URLS=http://+:8080 \
    Models__Root=/models \
    Inference__ExecutionProvider=cuda \
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
EXPOSE 8080
USER 1654:1654
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["/app/ProtoPNet.Service", "--healthcheck"]
ENTRYPOINT ["/app/ProtoPNet.Service"]
