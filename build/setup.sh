#!/usr/bin/env bash
# Installs what building and testing weft needs on a fresh Debian machine (as root):
# Debian packages for the kernel tooling the tests drive, and the npm dependencies.
# Safe to re-run: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The dependencies' floor (vite 8: ^20.19 or >= 22.12); another Node fails later, and obscurely.
if ! command -v node >/dev/null || ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a >= 23 ? 0 : 1)'; then
  echo "setup: Node.js 20.19+ or 22.12+ is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

packages=(iproute2 nftables iptables containernetworking-plugins iputils-ping iperf3 tcpdump util-linux
  containerd runc busybox-static python3 make g++ linux-libc-dev time netcat-openbsd strace)
missing=()
for p in "${packages[@]}"; do
  # Docker's containerd.io package provides containerd and runc under other names: installing
  # Debian's would remove it, and Docker with it.
  case "$p" in containerd | runc) command -v "$p" >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # --no-remove: never take away what the machine has to make room for ours.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}" >/dev/null
fi

# Install npm deps only when the lock file changed since the last install. `npm install`
# rather than `npm ci`: vite lists an optional dependency the registry does not have,
# which `npm ci` treats as a lock file out of sync.
stamp=node_modules/.weft-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm install"
  npm install --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
# .npmrc ignores install scripts (no dependency needs one but Bun's, and none may
# download anything), so put Bun's binary in place the way its own postinstall does (offline: the binary
# comes in the platform package npm just installed).
if ! node_modules/.bin/bun --version >/dev/null 2>&1; then
  (cd node_modules/bun && node install.js >/dev/null)
fi
