#!/usr/bin/env bash
# System packages the tests use: OSMesa for headless MuJoCo rendering.
# Installed with apt-get when running as root on Debian/Ubuntu; elsewhere it says what is missing and the
# rendering test skips with that reason. Never fails the build.
set -u
if ldconfig -p 2>/dev/null | grep -q libOSMesa; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing libosmesa6 (headless rendering)..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libosmesa6 >/dev/null) \
    || echo "warning: could not install libosmesa6; rendering tests will be skipped" >&2
else
  echo "note: libOSMesa not found; install libosmesa6 (Debian/Ubuntu) for headless rendering tests" >&2
fi
exit 0
