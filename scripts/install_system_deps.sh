#!/usr/bin/env bash
# Installs the Debian packages the sandbox relies on: bubblewrap (pinned) and util-linux's
# setpriv/unshare. Without root or apt it only warns: the sandbox then falls back to weaker
# isolation and says so when it starts (see README, "Sandbox").
set -u
BWRAP_VERSION="0.8.0-2+deb12u1"
if command -v bwrap >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: bubblewrap is not installed and cannot be installed here (needs root + apt);" \
       "the sandbox will use weaker isolation" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
if ! apt-get install -y -qq "bubblewrap=${BWRAP_VERSION}" util-linux >/dev/null 2>&1; then
  echo "warning: bubblewrap ${BWRAP_VERSION} is not available; installing the archive's version" >&2
  apt-get install -y -qq bubblewrap util-linux >/dev/null 2>&1 || \
    echo "warning: could not install bubblewrap; the sandbox will use weaker isolation" >&2
fi
