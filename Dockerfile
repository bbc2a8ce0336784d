# The weft image: one executable (CNI plugins, `weft install`, `weft agent`) on a small
# Debian base. deploy/weft.yaml runs it as the init container and the agent.
#
#   docker build -t weft:dev .

# ---- build: the same steps as `npm run build` on a Debian machine ----
FROM node:20-bookworm AS build

# node-gyp compiles the native addon, which includes the kernel's netfilter headers (this
# image already has them all; listed so the requirement is explicit and survives a change
# of base image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ linux-libc-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, so editing sources does not redo the install.
# .npmrc sets ignore-scripts=true. The one install script the build needs is bun's: without
# it node_modules/.bin/bun is a placeholder that only prints an error, so run that one.
COPY package.json package-lock.json .npmrc ./
RUN npm install --no-audit --no-fund --loglevel=error \
 && npm rebuild bun --ignore-scripts=false \
 && node_modules/.bin/bun --version

COPY . .

# build.mjs points node-gyp at the running Node's own headers (here under /usr/local), so
# nothing is downloaded.
RUN node build/build.mjs \
 && dist/bin/weft version

# ---- runtime ----
FROM debian:bookworm-slim

# The agent writes its masquerade table with `nft`. iptables is there for weft's firewall
# code, which falls back to it where nft is missing; iproute2 (`ip`, `bridge`) for
# inspecting a node from the pod; kmod for the node-setup init container's modprobe.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables iptables iproute2 kmod \
 && rm -rf /var/lib/apt/lists/*

# `weft install` copies this file (process.execPath) into the node's /opt/cni/bin and links
# the plugin names to it, so the image needs nothing but the executable.
COPY --from=build /src/dist/bin/weft /usr/local/bin/weft

ENTRYPOINT ["/usr/local/bin/weft"]
CMD ["agent"]
