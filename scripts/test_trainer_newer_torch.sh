#!/usr/bin/env bash
# Tests the trainer on a newer PyTorch than Debian 12's 1.13, since users elsewhere train with a torch 2.x from pip:
# Debian 13 "trixie" has torch 2.6, torchvision 0.21, onnx 1.17, NumPy 2 and Python 3.13.
#   1. the trainer's tests (pytest) run there;
#   2. without pytest arguments, a smoke bundle published there is served: the .NET tests run against it, on this
#      machine, so the service is known to load and answer what a newer trainer publishes.
# The trainer runs in a debootstrapped trixie root kept under /var/tmp (made once, about 3 minutes; --rebuild makes it
# anew), with this checkout, the Fashion-MNIST dataset and the NuGet package cache bound in at the same paths, in a
# mount namespace of its own so nothing stays mounted when it ends. By hand, not in scripts/test.sh (the CI machine's
# 20 minutes go to the tests of the torch the product ships with). Needs root; about 9 minutes once the root exists.
#   scripts/test_trainer_newer_torch.sh [--rebuild] [pytest arguments, default: tests/trainer, then the bundle check]
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)

rebuild=false
[ "${1:-}" = "--rebuild" ] && { rebuild=true; shift; }
serve_a_bundle=false
[ $# -gt 0 ] || { set -- tests/trainer; serve_a_bundle=true; }
rootfs=/var/tmp/protopnet-trixie-torch
packages=python3-torch,python3-torchvision,python3-onnx,python3-pytest,python3-tqdm,python3-pil,python3-numpy,python3-matplotlib

scripts/install_debian_packages.sh debootstrap dataset-fashion-mnist
# The ResNet-18 weights the import tests read come from a NuGet package.
dotnet restore src/trainer/pretrained/PretrainedWeights.csproj --verbosity quiet

if $rebuild || [ ! -x "$rootfs/usr/bin/python3" ]; then
  # debootstrap from the Debian mirror this machine's apt already uses, so nothing here names a host.
  mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
    | awk '$2 == "bookworm" && $3 == "main" { print $1; exit }')
  [ -n "$mirror" ] || { echo "no Debian main archive in this machine's apt sources" >&2; exit 1; }
  rm -rf "$rootfs" "$rootfs.partial"
  echo "== debootstrap trixie with Debian's PyTorch into $rootfs (a few minutes)"
  debootstrap --variant=minbase --include="$packages" trixie "$rootfs.partial" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; exit 1; }
  mv "$rootfs.partial" "$rootfs"
  rm -f "$rootfs.log"
fi

# Debian's torch 2.6 is built without libuv, while torchrun's rendezvous store asks for the libuv one (a pip torch
# has it). The distributed tests get the older TCP store this way; a pip torch needs nothing of the kind.
mkdir -p "$rootfs/opt/without-libuv"
cat > "$rootfs/opt/without-libuv/sitecustomize.py" <<'PY'
import sys

import torch.distributed
import torch.distributed.rendezvous  # noqa: F401 (the module, reached through sys.modules below)


class _TCPStoreWithoutLibuv(torch.distributed.TCPStore):
    def __init__(self, *args, **kwargs):
        kwargs["use_libuv"] = False
        super().__init__(*args, **kwargs)


torch.distributed.TCPStore = _TCPStoreWithoutLibuv
sys.modules["torch.distributed.rendezvous"].TCPStore = _TCPStoreWithoutLibuv
PY
# torchrun's c10d rendezvous looks this machine's own name up.
cp /etc/hosts "$rootfs/etc/hosts"

nuget_packages=${NUGET_PACKAGES:-$HOME/.nuget/packages}

# Runs a command (one bash -c string, from the checkout's root) in the trixie root.
in_trixie() {
  unshare --mount --propagation private bash -euo pipefail -c '
    rootfs=$1; root_dir=$2; nuget_packages=$3; command=$4
    mount -t proc proc "$rootfs/proc"
    mount --rbind /dev "$rootfs/dev"
    for path in "$root_dir" /usr/share/datasets/fashion-mnist "$nuget_packages"; do
      mkdir -p "$rootfs$path"; mount --bind "$path" "$rootfs$path"
    done
    exec chroot "$rootfs" env HOME="$HOME" NUGET_PACKAGES="$nuget_packages" \
      PYTHONPATH="$root_dir/src/trainer:/opt/without-libuv" bash -euo pipefail -c "cd \"$root_dir\" && $command"
  ' in-trixie "$rootfs" "$root_dir" "$nuget_packages" "$1"
}

in_trixie 'python3 -c "import sys, torch, torchvision, onnx, numpy
print(f\"== python {sys.version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}, \"
      f\"onnx {onnx.__version__}, numpy {numpy.__version__}\")"'
status=0
in_trixie "python3 -m pytest -q -p no:cacheprovider $(printf '%q ' "$@")" || status=$?
$serve_a_bundle || exit $status

models="$root_dir/artifacts/newer-torch-models"
rm -rf "$models"
echo "== a smoke bundle published by the trainer on torch 2.6, then the .NET tests against it"
in_trixie "python3 -m protopnet_trainer train --preset smoke --models artifacts/newer-torch-models --name smoke --seed 1 --no-progress" \
  | tail -3
PROTOPNET_TEST_MODELS="$models" dotnet test ProtoPNet.Service.sln -c Release || status=$?
exit $status
