#!/usr/bin/env bash
# Refreshes the README's pictures, docs/images/page.png and docs/images/card.png, from the default model in models/:
# starts the service on 127.0.0.1, uploads an image on the web page in headless Chromium and asks for its card.
# Usage: [PORT=18090] scripts/docs_screenshots.sh [IMAGE]   (default: the model's last example image, the README's)
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)
port=${PORT:-18090}
url="http://127.0.0.1:$port"
work=$(mktemp -d)
trap 'kill "$service_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

dotnet build tests/ProtoPNet.Web.Tests -c Release --verbosity quiet
driver="$root_dir/tests/ProtoPNet.Web.Tests/bin/Release/net10.0/.playwright"
Urls="$url" Inference__ExecutionProvider=cpu dotnet src/ProtoPNet.Service/bin/Release/net10.0/ProtoPNet.Service.dll > "$work/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 60); do curl -sf "$url/health/ready" > /dev/null && break; sleep 1; done
curl -sf "$url/health/ready" > /dev/null || { echo "the service did not become ready:"; tail -20 "$work/service.log"; exit 1; }

image=${1:-}
if [ -z "$image" ]; then
  example=$(curl -sf "$url/models" | /usr/bin/python3 -c 'import json,sys; m=[m for m in json.load(sys.stdin)["models"] if m["isDefaultModel"]][0]; print(m["examples"][-1]["url"])')
  image="$work/example.png"
  curl -sf -o "$image" "$url$example"
fi

mkdir -p docs/images
PLAYWRIGHT_PACKAGE="$driver/package" SERVICE_URL="$url/" IMAGE="$image" PAGE_PNG="docs/images/page.png" \
  "$driver/node/linux-x64/node" scripts/docs_screenshots.js
curl -sf -o docs/images/card.png -F "image=@$image" "$url/classify/card?topPrototypes=3"
ls -l docs/images/page.png docs/images/card.png
