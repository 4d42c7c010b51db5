# Shared by deploy/container-test.sh: installs the container tools when missing, makes the base
# image from Debian's packages (no registry) and builds the image's runtime stage from the
# release binary. Sourced, not run.
#
# Environment: CERAMIC_AUDIT_CONTAINER_CACHE (base root filesystems and podman-compose's venv,
# default ~/.cache/ceramic-audit/container), CERAMIC_AUDIT_IMAGE (the tag built, default
# localhost/ceramic-audit:test).
set -euo pipefail
DEPLOY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$DEPLOY")
CCACHE=${CERAMIC_AUDIT_CONTAINER_CACHE:-$HOME/.cache/ceramic-audit/container}
IMAGE=${CERAMIC_AUDIT_IMAGE:-localhost/ceramic-audit:test}
# podman-compose from PyPI (Debian bookworm has no package of it); 1.6 reads `!reset` in
# override files and the Compose spec's `deploy.resources.limits`.
PODMAN_COMPOSE_VERSION=1.6.0
export CONTAINERS_CONF="$DEPLOY/containers.conf"
COMPOSE="$CCACHE/venv/bin/podman-compose"

fail() { echo "FAIL: $*" >&2; exit 1; }
T_START=$(date +%s)
say() { echo "container-test [+$(($(date +%s) - T_START)) s]: $*" >&2; }

# apt-get install PACKAGES when any of COMMANDS is missing. A tool that cannot be had fails the
# run, CI or not: this script is the test of the image, there is nothing to skip to.
apt_install() { # pkg…
  command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available to install $* (install them by hand)"
  local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing $*"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null \
    || fail "apt-get install $* failed"
}
need() { # "cmd1 cmd2" pkg…
  local cmds=$1 c missing=
  shift
  for c in $cmds; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done
  [ -z "$missing" ] && return 0
  say "not found:$missing"
  apt_install "$@"
  for c in $cmds; do command -v "$c" >/dev/null 2>&1 || fail "$c still missing after installing $*"; done
}

install_tools() {
  # Containers here run as root (no user namespace): uidmap, slirp4netns, fuse-overlayfs are
  # only needed rootless, so they are not installed.
  need "podman runc conmon" podman runc conmon containernetworking-plugins
  need mmdebstrap mmdebstrap
  need "curl python3" curl python3
  if [ ! -x "$COMPOSE" ] || [ "$("$COMPOSE" --version 2>/dev/null | sed -n 's/^podman-compose version //p')" != "$PODMAN_COMPOSE_VERSION" ]; then
    python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
    say "installing podman-compose $PODMAN_COMPOSE_VERSION into $CCACHE/venv"
    rm -rf "$CCACHE/venv"
    python3 -m venv "$CCACHE/venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$CCACHE/venv/bin/pip" install -q "podman-compose==$PODMAN_COMPOSE_VERSION" || fail "pip install podman-compose failed"
  fi
  podman info >/dev/null 2>&1 || fail "podman does not work here: $(podman info 2>&1 | tail -3)"
}

# The base: Debian bookworm minbase with ca-certificates, slimmed like debian:bookworm-slim
# (no docs, man pages, locales; merged /usr without the usrmerge package and its perl), ~86 MB.
# Cached as a tarball and a local image, both keyed on these arguments and the month: Debian's
# updates are picked up at most a month late (a cold base costs ~20–100 s of downloads).
MMDEBSTRAP_ARGS=(--variant=minbase --include=ca-certificates --aptopt='APT::Install-Recommends "false"'
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*' --dpkgopt='path-exclude=/usr/share/groff/*'
  bookworm)

base_image() { # prints the base image's tag, making it when missing
  local key tag tar
  key=$(printf '%s\n' "${MMDEBSTRAP_ARGS[@]}" "$(date -u +%Y-%m)" | sha256sum | cut -c1-12)
  tag=localhost/ceramic-audit-base:bookworm-$key
  tar=$CCACHE/base-bookworm-$key.tar
  if ! podman image exists "$tag"; then
    if [ ! -s "$tar" ]; then
      say "making the base root filesystem with mmdebstrap (cached as $tar)"
      mkdir -p "$CCACHE"
      mmdebstrap --quiet --format=tar "${MMDEBSTRAP_ARGS[@]}" "$tar.partial" >"$CCACHE/mmdebstrap.log" 2>&1 \
        || { rm -rf "$tar.partial"; tail -20 "$CCACHE/mmdebstrap.log" >&2; fail "mmdebstrap failed (log: $CCACHE/mmdebstrap.log)"; }
      mv "$tar.partial" "$tar"
      find "$CCACHE" -maxdepth 1 -name 'base-bookworm-*.tar' ! -name "$(basename "$tar")" -delete
    fi
    podman import --quiet --change 'CMD ["/bin/bash"]' "$tar" "$tag" >/dev/null || fail "podman import $tar failed"
  fi
  echo "$tag"
}

# Builds the Dockerfile's runtime stage from target/release/ceramic-audit (built here first).
build_image() {
  local base ctx version source
  (cd "$ROOT" && cargo build --release --locked --quiet) || fail "cargo build --release failed"
  base=$(base_image)
  say "building $IMAGE on $base"
  ctx=$(mktemp -d)
  install -D "$ROOT/target/release/ceramic-audit" "$ctx/out/ceramic-audit"
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
  source=$(git -C "$ROOT" remote get-url origin 2>/dev/null || echo "file://$ROOT")
  # --network none: the runtime stage needs no network with this base; --format docker: OCI
  # image configs have no HEALTHCHECK.
  # --no-cache: buildah 1.28 (Debian bookworm's podman 4.3) reuses a cached LABEL layer whose
  # ${REVISION} came from an earlier build (the ARG is not part of its cache key), so a rebuild
  # after a new commit carried the old revision (seen in CI). The stage is a few file copies.
  # The previous build of this tag is removed afterwards, so reruns do not pile up images.
  local old; old=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  podman build --quiet --no-cache --format docker --network none -f "$DEPLOY/Dockerfile" --target runtime \
    --build-context "build=$ctx" --build-arg "BASE=$base" --build-arg "VERSION=$version" \
    --build-arg "REVISION=$(git -C "$ROOT" rev-parse HEAD)" --build-arg "SOURCE=$source" \
    -t "$IMAGE" "$ROOT" >/dev/null || { rm -rf "$ctx"; fail "podman build failed"; }
  rm -rf "$ctx"
  if [ -n "$old" ] && [ "$old" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    podman rmi "$old" >/dev/null 2>&1 || true   # still used by a container: kept
  fi
}

# What the Dockerfile's `build` stage receives with `COPY . .` (the root .dockerignore applied):
# the sources, not target/ (gigabytes) nor reports, fixtures or secrets; and cargo resolves that
# tree (manifest, lock file, every declared target present) without the network.
check_build_context() {
  local tag=localhost/ceramic-audit-context:test dir listing
  printf 'FROM %s\nCOPY . /ctx\n' "$(base_image)" \
    | podman build --quiet --network none -f - -t "$tag" "$ROOT" >/dev/null || fail "building the context image failed"
  dir=$(mktemp -d)
  podman run --rm --no-healthcheck --network none -v "$dir:/out" --entrypoint cp "$tag" -a /ctx/. /out/ \
    || fail "copying the build context out failed"
  podman rmi "$tag" >/dev/null 2>&1 || true
  listing=$(cd "$dir" && ls -A | tr '\n' ' ')
  [ "$listing" = "Cargo.lock Cargo.toml benches crates deploy src " ] || fail "the build context holds: $listing"
  cargo metadata --locked --offline --no-deps --format-version 1 --manifest-path "$dir/Cargo.toml" >/dev/null \
    || fail "cargo cannot resolve the build context"
  echo "ok: build context $(du -sh "$dir" | cut -f1) ($listing), resolved by cargo"
  rm -rf "$dir"
}
