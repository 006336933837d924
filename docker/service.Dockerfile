# ProtoPNet inference service, CPU image: the service published self-contained (it carries its own .NET runtime) on
# Debian 12 slim, run as the non-root user app (uid 1654, as in Microsoft's .NET images).
# Build from the repository root (BuildKit skips the stage that is not used):
#   docker build -f docker/service.Dockerfile -t protopnet-service .
#   (podman and buildah: add --build-arg PUBLISHED=build, the default, or they look for an image named after the stage)
# Run:  docker run -p 8080:8080 protopnet-service
# The default model in models/ is baked in; mount another model root at /models to serve your own bundles.
# Publishing on the host instead of in the SDK image (how scripts/test_containers.sh builds it where no registry is
# reachable): publish self-contained for linux-x64 into artifacts/containers/service-cpu/, then add
# --build-arg PUBLISHED=prebuilt.

ARG PUBLISHED=build

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /source
# Restore first, on the project files alone, so that code changes keep the restore layer cached.
COPY Directory.Build.props Directory.Packages.props ./
COPY src/ProtoPNet.Inference/ProtoPNet.Inference.csproj src/ProtoPNet.Inference/
COPY src/ProtoPNet.Service/ProtoPNet.Service.csproj src/ProtoPNet.Service/
RUN dotnet restore src/ProtoPNet.Service/ProtoPNet.Service.csproj -r linux-x64
COPY src/ProtoPNet.Inference/ src/ProtoPNet.Inference/
COPY src/ProtoPNet.Service/ src/ProtoPNet.Service/
# The CPU image never loads ONNX Runtime's CUDA and TensorRT providers: leaving them out saves 270 MB.
RUN dotnet publish src/ProtoPNet.Service/ProtoPNet.Service.csproj -c Release --no-restore \
      -r linux-x64 --self-contained true -o /app \
 && rm /app/libonnxruntime_providers_cuda.so /app/libonnxruntime_providers_tensorrt.so

FROM scratch AS prebuilt
COPY artifacts/containers/service-cpu/ /app/

FROM ${PUBLISHED} AS published

FROM debian:12-slim AS runtime
# ca-certificates (and with it OpenSSL) for HTTPS calls out, e.g. to an OTLP collector; libturbojpeg0 and libwebp7 to
# decode JPEG and WebP uploads with libjpeg-turbo and libwebp, as Pillow does in the trainer (the same pixels, and the
# same refusals of damaged files; ImageSharp's JPEG pixels differ by a step in a few); libwebpdemux2 to judge a WebP's
# container as Pillow opens it; libdeflate0 to judge a TIFF's deflate strips as libtiff in Pillow inflates them.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libturbojpeg0 libwebp7 libwebpdemux2 libdeflate0 \
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
    Inference__ExecutionProvider=cpu \
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
EXPOSE 8080
USER 1654:1654
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["/app/ProtoPNet.Service", "--healthcheck"]
ENTRYPOINT ["/app/ProtoPNet.Service"]
