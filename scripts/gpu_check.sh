#!/usr/bin/env bash
# One-shot check on a machine with a real GPU: the GPU stage and pipeline tests, `compare`,
# `bench` (GPU and CPU, same machine) and the criterion GPU benches. Takes the prebuilt
# binaries from $1 (stemkit, gpu_stages, gpu_pipeline, gpu_bench) and writes logs to $2.
#   cargo build --release --all-targets; copy target/release/stemkit and the deps/ test and
#   bench executables into BIN; then: scripts/gpu_check.sh BIN LOGDIR
set -uo pipefail
BIN=${1:?binaries folder}
LOG=${2:?log folder}
mkdir -p "$LOG"
export STEMKIT_REQUIRE_GPU=1 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee -a "$LOG/checks.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$LOG/checks.txt"
if ! "$BIN/stemkit" devices | grep -qi nvidia; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
"$BIN/stemkit" devices | tee -a "$LOG/checks.txt"
run() { local name=$1; shift; echo "== $name: $*" | tee -a "$LOG/checks.txt"; timeout "$@" 2>&1 | grep -v XDG_RUNTIME | tee -a "$LOG/checks.txt" | tail -25; }
run gpu_stages 90 "$BIN/gpu_stages"
run gpu_pipeline 90 "$BIN/gpu_pipeline"
run compare 60 "$BIN/stemkit" compare --demo 120
run compare_8192 40 "$BIN/stemkit" compare --demo 30 --n-fft 8192 --hop 2048
run bench_gpu 90 "$BIN/stemkit" bench --seconds 600 -- --stems hpr --device gpu --stats
run bench_cpu 90 "$BIN/stemkit" bench --seconds 600 -- --stems hpr --device cpu
run criterion_gpu 120 "$BIN/gpu_bench" --bench --warm-up-time 1 --measurement-time 2
