# ProtoPNet inference service, NVIDIA GPU image (CUDA execution provider of ONNX Runtime).
# Build from the repository root:  docker build -f docker/service-gpu.Dockerfile -t protopnet-service:gpu .
# Run with the NVIDIA container toolkit:  docker run --gpus all -p 8080:8080 protopnet-service:gpu
# ONNX Runtime 1.31's CUDA provider links against CUDA 13 (libcublasLt.so.13, libcudart.so.13) and loads cuDNN 9: this base image provides both.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /source
COPY Directory.Build.props Directory.Packages.props ./
COPY src/ProtoPNet.Inference/ProtoPNet.Inference.csproj src/ProtoPNet.Inference/
COPY src/ProtoPNet.Service/ProtoPNet.Service.csproj src/ProtoPNet.Service/
RUN dotnet restore src/ProtoPNet.Service/ProtoPNet.Service.csproj -r linux-x64
COPY src/ProtoPNet.Inference/ src/ProtoPNet.Inference/
COPY src/ProtoPNet.Service/ src/ProtoPNet.Service/
# Self-contained, so the CUDA image needs no .NET runtime of its own.
RUN dotnet publish src/ProtoPNet.Service/ProtoPNet.Service.csproj -c Release --no-restore \
      -r linux-x64 --self-contained true -o /app

FROM nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 AS runtime
WORKDIR /app
COPY --from=build /app ./
COPY models/ /models/
ENV ASPNETCORE_URLS=http://+:8080 \
    Models__Root=/models \
    Inference__ExecutionProvider=cuda \
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
  CMD ["/app/ProtoPNet.Service", "--healthcheck"]
ENTRYPOINT ["/app/ProtoPNet.Service"]
