#!/usr/bin/env bash
# System packages the tests use, installed with apt-get when running as root on Debian/Ubuntu; elsewhere it says
# what is missing and the tests that need it skip with that reason. Never fails the build.
#   libosmesa6                           headless MuJoCo rendering (the report's filmstrip, the rendering test)
#   chromium                             opening the report page headless (tests/test_report.py)
#   gcc-arm-none-eabi, qemu-system-arm   the C firmware's Cortex-M build and the emulated board it runs on
#                                        (--no-install-recommends: ~110 MB download instead of ~650 MB)
#   clang + its libFuzzer runtime        fuzzing the firmware (on Debian 12 the runtime is libclang-rt-14-dev,
#                                        only a recommendation of clang-14)
set -u

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

updated=0
install() { # install WHAT PACKAGE...: warn (never fail) when it cannot
  local what=$1
  shift
  if ! can_apt; then
    echo "note: $what needs $* (apt-get install $* as root on Debian/Ubuntu); its tests will be skipped" >&2
    return 1
  fi
  if [ "$updated" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || echo "warning: apt-get update failed" >&2
    updated=1
  fi
  echo "installing $* ($what)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { echo "warning: could not install $*; $what tests will be skipped" >&2; return 1; }
}

has_libfuzzer() { # clang links a fuzz target with -fsanitize=fuzzer
  command -v clang >/dev/null 2>&1 || return 1
  local dir
  dir=$(mktemp -d) || return 1
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)\n{ (void)d; (void)n; return 0; }\n' >"$dir/f.c"
  clang -fsanitize=fuzzer "$dir/f.c" -o "$dir/f" >/dev/null 2>&1
  local rc=$?
  rm -rf "$dir"
  return $rc
}

if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then
  install "headless rendering" libosmesa6
fi

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  install "the report page tests" chromium
fi

firmware=()
command -v arm-none-eabi-gcc >/dev/null 2>&1 || firmware+=(gcc-arm-none-eabi)
command -v qemu-system-arm >/dev/null 2>&1 || firmware+=(qemu-system-arm)
if [ ${#firmware[@]} -gt 0 ]; then
  install "the C firmware's Cortex-M build and QEMU board" "${firmware[@]}"
fi

if ! has_libfuzzer; then
  command -v clang >/dev/null 2>&1 || install "fuzzing (clang)" clang
  if command -v clang >/dev/null 2>&1 && ! has_libfuzzer && can_apt; then
    major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
    if [ -n "$major" ] && apt-cache show "libclang-rt-$major-dev" >/dev/null 2>&1; then
      install "fuzzing (libFuzzer runtime)" "libclang-rt-$major-dev"
    fi
  fi
  has_libfuzzer || echo "note: clang's libFuzzer runtime is not available; fuzz tests will be skipped" >&2
fi
exit 0
