#!/usr/bin/env bash
# Whether the service stays live while it is overloaded with drawing (not a test): starts the Release service on the
# default model, sends 1000x1000 JPEGs to /classify?heatmaps=png&topPrototypes=10 from 60 closed-loop clients for
# 25 s, meanwhile asks GET /health/live on a new connection every 0.5 s (as a container probe does), and prints the
# probe's round trips and the answers' statuses and times.
#   benchmarks/drawing_overload.sh [photo.jpg] [service build folder, default: this checkout's Release build]
# A probe waiting seconds means the drawing took every thread-pool thread (Serving/DrawingTurns.cs is what prevents it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
photo=${1:-}
build=${2:-$root/src/ProtoPNet.Service/bin/Release/net10.0}
work=$(mktemp -d)
service=
trap '[ -z "$service" ] || kill "$service" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
if [ -z "$photo" ]; then
  # A 1000x1000 JPEG made from one of the default model's example images (ImageMagick): no photo to find first.
  command -v convert >/dev/null || { echo "give a photo, or install ImageMagick (apt-get install imagemagick)" >&2; exit 2; }
  photo=$work/photo.jpg
  example=$(ls "$root"/models/fashion-mnist/*/examples/6.png | tail -1)
  convert "$example" -resize '1000x1000!' -quality 90 "$photo"
fi
[ -n "${2:-}" ] || dotnet build -c Release src/ProtoPNet.Service -v q -nologo >/dev/null
port=5391
! curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "port $port is in use: is a service still running?" >&2; exit 1; }
(cd "$root/src/ProtoPNet.Service" && Urls=http://127.0.0.1:$port Inference__ExecutionProvider=cpu \
  exec dotnet "$build/ProtoPNet.Service.dll" >"$work/service.log" 2>&1) &
service=$!
for _ in $(seq 90); do curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready" && break; sleep 1; done
curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready" || { tail -20 "$work/service.log"; exit 1; }

end=$((SECONDS + 25))
clients=()
for c in $(seq 60); do
  (while [ $SECONDS -lt $end ]; do
     curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -F "image=@$photo" \
       "http://127.0.0.1:$port/classify?heatmaps=png&topPrototypes=10"
   done) >"$work/answers-$c.txt" &
  clients+=($!)
done
sleep 3
while [ $SECONDS -lt $end ]; do
  curl -s -o /dev/null -m 120 -w '%{time_total}\n' "http://127.0.0.1:$port/health/live" >>"$work/probes.txt"
  sleep 0.5
done
wait "${clients[@]}"
cat "$work"/answers-*.txt >"$work/answers.txt"
/usr/bin/env python3 - "$work/probes.txt" "$work/answers.txt" <<'EOF'
import statistics, sys
probes = sorted(float(line) for line in open(sys.argv[1]) if line.strip())
answers = [line.split() for line in open(sys.argv[2]) if line.strip()]
print(f"GET /health/live during the load: {len(probes)} probes, p50 {statistics.median(probes) * 1000:.0f} ms, "
      f"slowest {probes[-1] * 1000:.0f} ms")
for status in sorted({a[0] for a in answers}):
    times = sorted(float(a[1]) for a in answers if a[0] == status)
    print(f"/classify {status}: {len(times)} answers, p50 {statistics.median(times):.1f} s, slowest {times[-1]:.1f} s")
EOF
