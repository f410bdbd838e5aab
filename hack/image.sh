#!/usr/bin/env bash
# Builds the metrics-server-rs container image without a container engine or a registry.
#
#   hack/image.sh [BINARY]      (default: target/release/metrics-server; `make image` builds it first)
#
# The image holds one layer: the binary at /metrics-server, the shared libraries it loads (found with
# ldd, so a glibc-linked build carries its loader and libc; a static build carries nothing else), their
# copyright files, a minimal /etc/passwd and /etc/group, and an empty world-writable /tmp. Its config
# runs ENTRYPOINT ["/metrics-server"] as user 65534:65534 from /, like the Dockerfile and upstream's
# distroless image. Nothing in it needs a shell or a writable root filesystem.
#
# crane (go-containerregistry, built by hack/build-tools.sh) turns the layer into an image on an empty
# OCI base (`crane append --oci-empty-base`), which gives the compressed layer and its digests. crane's
# config editing (`crane mutate`) works only against a registry, so the final config, manifest and
# index are written here, and the result is checked with `crane validate`.
#
# Output in target/image/:
#   oci/                    an OCI image layout (index.json, oci-layout, blobs/sha256/*); it also has
#                           a manifest.json, so that
#   metrics-server-rs.tar   (the same folder as a tar) loads with `docker load` / `podman load`
# Push the layout with: crane push target/image/oci <registry>/<repository>:<tag>
#
# Variables: IMAGE (reference recorded in the image, default
# ghcr.io/metrics-server-rs/metrics-server:v<workspace version>), SOURCE_DATE_EPOCH (timestamps,
# default 0, so that the same binary always gives the same image digest).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
crane=${CRANE:-$repo/.cluster/bin/crane}
binary=${1:-$repo/target/release/metrics-server}
out=$repo/target/image
epoch=${SOURCE_DATE_EPOCH:-0}

version=$(awk -F'"' '/^\[workspace.package\]/{p=1} p && $1 ~ /^version *= */{print $2; exit}' "$repo/Cargo.toml")
image=${IMAGE:-ghcr.io/metrics-server-rs/metrics-server:v$version}

die() { echo "image: $*" >&2; exit 1; }
case "$image" in *[\\\"]*) die "IMAGE must not contain quotes or backslashes" ;; esac
[ -x "$binary" ] || die "no binary at $binary (build it with: cargo build --release -p metrics-server)"
[ -x "$crane" ] || "$repo/hack/build-tools.sh" crane >&2

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"

install -m 0755 "$binary" "$root/metrics-server"

# Shared libraries, at the paths the dynamic loader will look for them (the paths ldd prints), as
# regular files (symlinks resolved). usr-merged hosts print /lib/...; the image has real /lib folders.
libs=$(ldd "$binary" 2>/dev/null | awk '/=> \//{print $3} /^[[:space:]]*\/[^ ]+ \(0x/{print $1}' | sort -u || true)
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  install -m 0755 "$(readlink -f "$lib")" "$root$lib"
  # The library's licence, as distroless images carry them.
  pkg=$( { dpkg -S "$lib" || dpkg -S "$(readlink -f "$lib")"; } 2>/dev/null | head -n1 | cut -d: -f1 || true)
  if [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ]; then
    mkdir -p "$root/usr/share/doc/$pkg"
    install -m 0644 "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
  fi
done

printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"

# A reproducible layer: sorted names, root ownership, fixed timestamps, no ./ prefix.
(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$work/files"
tar -C "$root" --no-recursion --null -T <(tr '\n' '\0' <"$work/files") \
  --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=gnu -cf "$work/layer.tar"

# crane: layer -> image on an empty OCI base, saved as a tarball (config, gzip layer, manifest.json).
SOURCE_DATE_EPOCH=$epoch "$crane" append --oci-empty-base -f "$work/layer.tar" -t "$image" -o "$work/appended.tar" 2>/dev/null
mkdir "$work/appended"
tar -C "$work/appended" -xf "$work/appended.tar"
# The tarball holds one compressed layer, <hex>.tar.gz.
layer_file=$(cd "$work/appended" && ls -- *.tar.gz)
[ "$(echo "$layer_file" | wc -l)" -eq 1 ] || die "crane wrote $(echo "$layer_file" | wc -l) layers"

rm -rf "$out/oci" "$out/metrics-server-rs.tar"
mkdir -p "$out/oci/blobs/sha256"
blobs=$out/oci/blobs/sha256

# put FILE: stores FILE as a blob, prints "<sha256 hex> <size>".
put() {
  local hex size
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  cp "$1" "$blobs/$hex"
  echo "$hex $size"
}

read -r layer_hex layer_size < <(put "$work/appended/$layer_file")
diff_id=$(gzip -dc "$work/appended/$layer_file" | sha256sum | cut -d' ' -f1)
[ "$diff_id" = "$(sha256sum "$work/layer.tar" | cut -d' ' -f1)" ] || die "the compressed layer is not our layer"

# The JSON documents are written with printf; every value in them is a digest, a number or a fixed word.
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
printf '{"architecture":"%s","os":"linux","created":"%s","config":{"User":"65534:65534","WorkingDir":"/","Entrypoint":["/metrics-server"],"Env":["PATH=/"],"Labels":{"org.opencontainers.image.title":"metrics-server-rs","org.opencontainers.image.version":"%s","org.opencontainers.image.licenses":"Apache-2.0"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"hack/image.sh","comment":"metrics-server-rs binary and its shared libraries"}]}' \
  "$arch" "$created" "$version" "$diff_id" "$created" >"$work/config.json"
read -r config_hex config_size < <(put "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config_hex" "$config_size" "$layer_hex" "$layer_size" >"$work/manifest.json"
read -r manifest_hex manifest_size < <(put "$work/manifest.json")

printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"%s","io.containerd.image.name":"%s"}}]}' \
  "$manifest_hex" "$manifest_size" "$arch" "${image##*:}" "$image" >"$out/oci/index.json"
# docker load reads manifest.json; an OCI layout with one is what `docker save` writes since Docker 25.
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s"]}]' \
  "$config_hex" "$image" "$layer_hex" >"$out/oci/manifest.json"

(cd "$out/oci" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | tr '\n' '\0' |
  tar --no-recursion --null -T - --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=gnu \
    -cf "$out/metrics-server-rs.tar")

"$crane" validate --tarball "$out/metrics-server-rs.tar" >/dev/null || die "crane validate failed"
echo "image: $image sha256:$manifest_hex ($arch, $(wc -l <"$work/files") files, libraries: $(echo ${libs:-none}))"
echo "image: $out/oci (OCI layout) and $out/metrics-server-rs.tar"
