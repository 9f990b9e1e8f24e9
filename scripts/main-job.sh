#!/bin/bash
# The README's main command: build the default Keel image (compose + image build) and boot it
# with the sample Butane config (examples/container.bu), which starts a container.
# Run as root from the repository: `sudo scripts/main-job.sh`. Ctrl-a x stops the VM.
#   KEEL_BUILD   output directory (default: build)
#   KEEL_SSH_KEY public key to install for `core` (default: ~/.ssh/id_ed25519.pub, else a new
#                key in $KEEL_BUILD/ssh/)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${KEEL_BUILD:-build}
target=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$build"

if [ "$(id -u)" != 0 ]; then
    echo "error: run as root (compose uses mmdebstrap and chroot, image build uses loop devices): sudo $0" >&2
    exit 1
fi
source scripts/install-deps.sh

echo "== building keel (release)"
cargo build --release --locked -p keel
keel="$target/release/keel"

echo "== composing the default OS (manifests/keel.toml) into $build/repo"
"$keel" compose manifests/keel.toml --repo "$build/repo" --cache /var/cache/keel-debs

echo "== building the qemu image $build/keel.qcow2"
"$keel" image build --repo "$build/repo" --platform qemu -o "$build/keel.qcow2"

pub=${KEEL_SSH_KEY:-$HOME/.ssh/id_ed25519.pub}
identity=()
if [ ! -f "$pub" ]; then
    mkdir -p "$build/ssh"
    [ -f "$build/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C keel-example -f "$build/ssh/id_ed25519"
    pub="$build/ssh/id_ed25519.pub"
    identity=(--ssh-identity "$build/ssh/id_ed25519")
fi
cp "$pub" "$build/ssh.pub"

echo "== building the container image archive $build/files/busybox.oci.tar"
mkdir -p "$build/files"
cargo run --release --locked -q -p keel-vm --example busybox-oci -- "$build/files/busybox.oci.tar"

# The config's container archive is fetched at first boot from this loopback server
# (http://10.0.2.2:8123/ inside the guest), stopped when the VM stops.
python3 -m http.server --bind 127.0.0.1 8123 --directory "$build/files" >"$build/files-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
sleep 1
if ! kill -0 $server 2>/dev/null; then
    echo "error: could not serve $build/files on 127.0.0.1:8123 (port in use? see $build/files-server.log)" >&2
    exit 1
fi

cat <<MSG
== booting $build/keel.qcow2 with examples/container.bu
   Log in with the ssh command printed below (user core, your key), then try:
     systemctl status hello-container      # the container started by the config
     sudo podman exec hello wget -qO- http://127.0.0.1:8080/passwd   # served by the container
     sudo podman run --rm -it oci-archive:/var/lib/example/busybox.oci.tar sh
MSG
"$keel" run "$build/keel.qcow2" --butane examples/container.bu --files-dir "$build" --ssh "${identity[@]}"
