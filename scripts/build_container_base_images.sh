#!/usr/bin/env bash
# Builds, from Debian's packages, the base image that docker/*.Dockerfile start FROM where no registry can be reached:
#   debian:12-slim   Debian 12 "bookworm", debootstrap's minbase variant (the same set of packages Docker's
#                    debian:12-slim holds: priority required plus apt), with documentation, manual pages and
#                    translations left out as in that image.
# It is a stand-in, made here because registries cannot be reached: the Dockerfiles name the real image, and on a
# machine with Docker Hub they use that one. An image that already exists is kept (podman's storage is the cache);
# --rebuild makes it anew. Needs root, podman and debootstrap (scripts/test_containers.sh installs them).
set -euo pipefail

rebuild=false
[ "${1:-}" = "--rebuild" ] && rebuild=true
image=localhost/debian:12-slim

if ! $rebuild && podman image exists "$image"; then
  echo "== base image $image exists"
  exit 0
fi

# debootstrap from the Debian mirror this machine's apt already uses, so nothing here names a host.
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
  | awk '$2 == "bookworm" && $3 == "main" { print $1; exit }')
[ -n "$mirror" ] || { echo "no Debian 12 (bookworm) main archive in this machine's apt sources" >&2; exit 1; }

rootfs=$(mktemp -d /var/tmp/debian-12-slim.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "== debootstrap --variant=minbase bookworm (from the machine's apt mirror)"
started=$SECONDS
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

# The image's apt reads the same sources as the machine (security and updates included), so a Dockerfile's
# `apt-get install` gets the versions the machine has.
rm -f "$rootfs/etc/apt/sources.list"
cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
[ -s /etc/apt/sources.list ] && cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"
rm -f "$rootfs"/etc/apt/sources.list.d/*.disabled-by-*

# As Docker's slim images: no docs, manual pages or translations, now or from packages installed later.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
rm -f "$rootfs"/var/cache/apt/archives/*.deb

tar --numeric-owner -C "$rootfs" -c . | podman import \
  --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD=["bash"]' - "$image" >/dev/null
echo "== built $image in $((SECONDS - started)) s"
