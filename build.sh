#!/usr/bin/env bash
# build.sh - set-up, build and run, on a fresh Debian 12 machine.
#
#   ./build.sh bench   install what is missing, build, run fsesl-bench
#                      against the embedded simulator (the main job)
#   ./build.sh test    install what is missing, build, run every test
#   ./build.sh asan    the suite again under ASan+UBSan (all but the two
#                      longest stress runs: 64x10,000 commands, the bench)
#   ./build.sh tsan    the TSan-capable drivers (queues, soak, two engines) under ThreadSanitizer
#   ./build.sh fuzz    bounded libFuzzer runs (clang), FSESL_FUZZ_SECONDS each
#   ./build.sh format  check the house style (.clang-format)
#   ./build.sh configs the README's Release build (gcc and clang), installed
#                      and used as docs/examples/README.md shows
#   ./build.sh valgrind  memcheck over a few unit suites (when installed)
#   ./build.sh deps    only install the Debian packages
#
# Extra arguments after `bench` go to fsesl-bench.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
          liburcu-dev libck-dev libcriterion-dev libcjson-dev uuid-dev libedit-dev
          libpcre2-dev liburing-dev)
JOBS=$(nproc 2>/dev/null || echo 2)

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "build.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
    echo "build.sh: installing with sudo: ${missing[*]}"
  else
    echo "build.sh: installing: ${missing[*]}"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

configure_build() { # dir [cmake args...]
  local dir=$1; shift
  echo "build.sh: building in $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  # The compiler's lines only when something fails.
  if ! cmake --build "$dir" -j "$JOBS" >"$dir/build.log" 2>&1; then
    cat "$dir/build.log"; echo "build.sh: build failed in $dir" >&2; exit 1
  fi
}

cmd=${1:-test}; shift || true
case "$cmd" in
  deps) deps ;;
  bench)
    deps
    configure_build build -DBUILD_TESTING=OFF
    exec ./build/bench/harness/fsesl-bench "$@" ;;
  test)
    deps
    configure_build build
    ctest --test-dir build --output-on-failure -j "$JOBS" "$@" ;;
  asan)
    deps
    configure_build build-asan -DFSESL_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp" \
      ctest --test-dir build-asan --output-on-failure -j "$JOBS" -L 'unit|stress' \
        -E 'test_engine_stress|test_bench_quick' "$@" ;;
  tsan)
    deps
    configure_build build-tsan -DFSESL_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
    # Criterion's runner cannot start under TSan (Criterion issue 274), so
    # the TSan run covers the plain drivers labelled "tsan": the queues
    # harness and the soak, which exercise every thread of the engine, and
    # two engines at once (tests/engine/two_engines.c).
    TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" \
      ctest --test-dir build-tsan --output-on-failure -j "$JOBS" -L tsan "$@" ;;
  fuzz)
    deps
    CC=clang cmake -S . -B build-fuzz -DFSESL_FUZZ=ON -DBUILD_TESTING=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    targets=()
    for src in tests/fuzz/fuzz_*.c; do
      n=$(basename "$src" .c); targets+=("fuzz-${n#fuzz_}")
    done
    cmake --build build-fuzz -j "$JOBS" --target "${targets[@]}" >/dev/null
    secs=${FSESL_FUZZ_SECONDS:-60}
    for name in "${targets[@]}"; do
      corpus="build-fuzz/corpus-$name"; mkdir -p "$corpus"
      echo "== $name (${secs}s)"
      # A crash, leak or sanitizer report makes the fuzzer exit non-zero,
      # and pipefail makes this script fail with it.
      build-fuzz/tests/fuzz/"$name" -max_total_time="$secs" -print_final_stats=1 \
        "$corpus" tests/fuzz/seeds/"${name#fuzz-}" 2>&1 | tail -n 5
    done ;;
  valgrind)
    deps
    command -v valgrind >/dev/null || { echo "build.sh: valgrind not installed: skipped"; exit 0; }
    configure_build build
    # memcheck over suites that cover the parser, the refusals and the
    # engine's start/stop; --trace-children follows Criterion's workers.
    for t in tests/proto/test_proto_frames tests/proto/test_proto_encode \
             tests/engine_faults/test_engine_bad_input tests/engine_faults/test_engine_forged; do
      echo "== valgrind $t"
      FSESL_TEST_TIMEOUT_SCALE=20 valgrind --trace-children=yes --leak-check=full \
        --errors-for-leak-kinds=definite --error-exitcode=99 -q "build/$t" --jobs 1 2>&1 | tail -n 3
    done ;;
  configs)
    deps
    # -Werror meets other warnings at other optimisation levels and with
    # another compiler: gcc 12 at -O3 (Release, the README's install line)
    # flagged what -O2 did not. So every configuration the README and the
    # docs it links show is built here as a user would type it: Release
    # with gcc and with clang (the fuzz build's compiler), then installed
    # and used through pkg-config and find_package (.ci/install-check).
    # RelWithDebInfo is `test`'s build, Debug is `asan`'s and `tsan`'s.
    # Build only: the suites run in those.
    configure_build build-release -DCMAKE_BUILD_TYPE=Release
    CC=clang configure_build build-release-clang -DCMAKE_BUILD_TYPE=Release
    FSESL_BUILD_DIR=build-release .ci/install-check ;;
  format)
    deps
    # The house style (.clang-format) on every tracked C file.
    git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
    echo "format: ok" ;;
  *) echo "usage: $0 bench|test|asan|tsan|fuzz|format|configs|valgrind|deps" >&2; exit 2 ;;
esac
