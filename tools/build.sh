#!/usr/bin/env bash
# rill's two set-up commands:
#   tools/build.sh test    install missing Debian packages, build, run the whole test suite
#                          (release: every ctest label; then unit + stress under asan and tsan; then each
#                          libFuzzer target for RILL_FUZZ_SECONDS, default 45)
#   tools/build.sh bench   install missing Debian packages, build release, run the benchmark harness
# Extra arguments after `bench` go to the harness (for example --quick or --json FILE).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
jobs=$(nproc 2>/dev/null || echo 2)

say() { printf '\n==> %s\n' "$*"; }

packages=(
  g++ clang libclang-rt-14-dev cmake ninja-build pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libconcurrentqueue-dev libreaderwriterqueue-dev libboost-dev libmimalloc-dev libsimdjson-dev
  valgrind relacy-dev gnuplot-nox
)

install_missing_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    say "Debian packages: all ${#packages[@]} present"
    return
  fi
  say "Installing missing Debian packages: ${missing[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

configure_and_build() {
  local preset=$1
  say "Configuring preset '$preset'"
  cmake --preset "$preset" >/dev/null
  say "Building preset '$preset' with $jobs jobs"
  cmake --build --preset "$preset" -j "$jobs"
}

run_tests() {
  local preset=$1
  say "Running tests for preset '$preset'"
  ctest --preset "$preset" -j "$jobs" --timeout 900
}

cmd=${1:-}
shift || true
case "$cmd" in
  test)
    install_missing_packages
    for preset in release asan tsan; do
      configure_and_build "$preset"
      run_tests "$preset"
    done
    say "Configuring preset 'fuzz' (clang libFuzzer + ASan/UBSan; each target runs ${RILL_FUZZ_SECONDS:-45} s)"
    cmake --preset fuzz -DRILL_FUZZ_SECONDS="${RILL_FUZZ_SECONDS:-45}" >/dev/null
    say "Building the fuzz targets"
    cmake --build --preset fuzz -j "$jobs" --target rill_fuzz_targets
    run_tests fuzz
    say "All test runs passed (release: all labels; asan and tsan: unit + stress; fuzz: every target)"
    ;;
  bench)
    install_missing_packages
    configure_and_build release
    if [[ -x build/release/tools/rill-bench ]]; then
      say "Running rill-bench $*"
      build/release/tools/rill-bench "$@"
    else
      say "Running the streaming demo (100k synthetic LLM events through SPSC and MPMC streams)"
      build/release/tools/rill-demo "$@"
    fi
    ;;
  *)
    echo "usage: tools/build.sh test|bench [harness arguments]" >&2
    exit 2
    ;;
esac
