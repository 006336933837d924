# ProtoPNet inference service, CPU image.
# Build from the repository root:  docker build -f docker/service.Dockerfile -t protopnet-service .
# The default model in models/ is baked in; mount another model root at /models to serve your own bundles.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /source
# Restore first, on the project files alone, so that code changes keep the restore layer cached.
COPY Directory.Build.props Directory.Packages.props ./
COPY src/ProtoPNet.Inference/ProtoPNet.Inference.csproj src/ProtoPNet.Inference/
COPY src/ProtoPNet.Service/ProtoPNet.Service.csproj src/ProtoPNet.Service/
RUN dotnet restore src/ProtoPNet.Service/ProtoPNet.Service.csproj
COPY src/ProtoPNet.Inference/ src/ProtoPNet.Inference/
COPY src/ProtoPNet.Service/ src/ProtoPNet.Service/
RUN dotnet publish src/ProtoPNet.Service/ProtoPNet.Service.csproj -c Release --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
COPY models/ /models/
ENV ASPNETCORE_URLS=http://+:8080 \
    Models__Root=/models \
    Inference__ExecutionProvider=cpu
EXPOSE 8080
USER $APP_UID
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD ["dotnet", "ProtoPNet.Service.dll", "--healthcheck"]
ENTRYPOINT ["dotnet", "ProtoPNet.Service.dll"]
