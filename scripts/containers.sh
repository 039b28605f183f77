# Sourced by build-images.sh and test-images.sh: how podman and buildah must run on these
# machines, in one place.
#   - runtime runc: crun refuses this host's hybrid cgroups;
#   - ulimits no higher than this shell's: raising them in a container is refused (and here an
#     nproc above 32768 is refused too, whatever the shell's: measured, 32768 works, 50000 not);
#   - the netavark network backend (Debian's netavark + aardvark-dns): with podman 4.3's default,
#     CNI, podman refuses DNS on internal networks ("dnsname and internal networks are
#     incompatible"), and the proxy on the internal backend network cannot resolve `triton`;
#   - a containers.conf of our own (CONTAINERS_CONF) carries all three to every podman command.

# Installs the Debian packages named that are missing.
need() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "containers: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

containers_setup() {
  local nofile nproc
  need buildah podman runc uidmap containernetworking-plugins iptables netavark aardvark-dns
  nofile=$(ulimit -n); nproc=$(ulimit -u)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=1048576
  [ "$nofile" -gt 65536 ] && nofile=65536
  [ "$nproc" -gt 32768 ] && nproc=32768
  mkdir -p "$ROOT/target/images"
  export CONTAINERS_CONF="$ROOT/target/images/containers.conf"
  cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[network]
network_backend = "netavark"
[engine]
runtime = "runc"
CONF
  export BUILDAH_RUNTIME=runc
  ULIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
  # Builds reach Debian's and crates.io's registries through the host's network.
  RUN_FLAGS=(--runtime runc --network host)
  FROM_FLAGS=("${ULIMITS[@]}")
  BUD_FLAGS=(--runtime runc --network host "${ULIMITS[@]}")
}

# Unmounts whatever is mounted under $1 (a debootstrap root), deepest first.
unmount_under() {
  local dir=$1
  [ -d "$dir" ] || return 0
  { findmnt -rn -o TARGET | grep -F "$(readlink -f "$dir")" || true; } | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}
