#!/usr/bin/env bash
# System packages the tests use: OSMesa for headless MuJoCo rendering (the report's filmstrip, the rendering test)
# and Chromium to open the report page headless (tests/test_report.py).
# Installed with apt-get when running as root on Debian/Ubuntu; elsewhere it says what is missing and the tests
# that need it skip with that reason. Never fails the build.
set -u
missing=()
if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then
  missing+=(libosmesa6)
fi
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (headless rendering, report page tests)..." >&2
  # One package at a time: a distribution without one of them still gets the other.
  apt-get update -qq || echo "warning: apt-get update failed" >&2
  for pkg in "${missing[@]}"; do
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null \
      || echo "warning: could not install $pkg; the tests that need it will be skipped" >&2
  done
else
  echo "note: not installed: ${missing[*]} (Debian/Ubuntu packages); the tests that need them will be skipped" >&2
fi
exit 0
