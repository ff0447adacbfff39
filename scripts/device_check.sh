#!/bin/bash
# The device check run on a lent GPU machine (H100): copy release binaries into .devbin/ first
# (stemkit, and the gpu_stages / gpu_pipeline / gpu_cli test binaries from
# `cargo test --release --no-run`),
# and the Vulkan loader debs into .gl/ (see the device README); run from the repository root.
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
B=.devbin
if ! $B/stemkit devices 2>&1 | grep -qi nvidia; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
$B/stemkit devices 2>&1 | head -5
echo "== gpu_stages"; STEMKIT_REQUIRE_GPU=1 $B/gpu_stages 2>&1 | grep -E "test result|FAILED|panicked" | head
echo "== gpu_pipeline"; STEMKIT_REQUIRE_GPU=1 $B/gpu_pipeline 2>&1 | grep -E "test result|FAILED|panicked" | head
if [ -x $B/gpu_cli ]; then
  # gpu_cli runs the binary at the path cargo compiled in (this checkout's target/release).
  mkdir -p /work/main/target/release && cp $B/stemkit /work/main/target/release/stemkit
  echo "== gpu_cli"; STEMKIT_REQUIRE_GPU=1 $B/gpu_cli 2>&1 | grep -E "test result|FAILED|panicked" | head
fi
echo "== compare"; $B/stemkit compare --demo 60 2>&1 | tail -12
echo "== bench gpu"; $B/stemkit bench --seconds 600 -- --device gpu --stats 2>&1 | tail -14
echo "== bench gpu noloud"; $B/stemkit bench --seconds 600 -- --device gpu --no-loudness 2>&1 | tail -1
for i in 1 2 3; do
echo "== bench cpu five noloud"; $B/stemkit bench --seconds 600 -- --device cpu --no-loudness 2>&1 | tail -1
echo "== bench cpu hpr noloud"; $B/stemkit bench --seconds 600 -- --stems hpr --device cpu --no-loudness 2>&1 | tail -1
done
