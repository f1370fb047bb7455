#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a GPU machine that has no Rust toolchain: the
# release binary and every test executable, built here (both machines are x86-64), stripped and
# packed into gpu-bundle/bundle.tar.xz: about 22 MB with xz, where gzip's 59 MB plus the working
# tree came within 2 MB of the 64 MiB a device call carries.
#
#   scripts/gpu-bundle.sh            # then carry gpu-bundle/ with the call that runs gpu-check.sh
#
# Kernels are compiled by NVRTC here when it is on LD_LIBRARY_PATH (as .ci/run sets it up), so
# the bundle holds cubins for sm_70/80/90; without NVRTC the binary compiles them on the GPU
# machine at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
if python3 -c 'import nvidia.cuda_nvrtc' 2>/dev/null; then
    lib=$(python3 -c 'import nvidia.cuda_nvrtc as m; print(list(m.__path__)[0] + "/lib")')
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export FEAR_REQUIRE_NVRTC=1
fi
cargo build --release
# The test executables, as cargo reports them.
tests=$(cargo test --release --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["target"]["name"] + "=" + m["executable"])
')
rm -rf gpu-bundle && mkdir -p gpu-bundle/stage/target/release gpu-bundle/stage/test-bin
cp target/release/fear gpu-bundle/stage/target/release/fear
for t in $tests; do
    cp "${t#*=}" "gpu-bundle/stage/test-bin/${t%%=*}"
done
strip --strip-debug gpu-bundle/stage/target/release/fear gpu-bundle/stage/test-bin/*
# Where the tests were built: they find fixtures and the fear binary under this absolute path.
pwd > gpu-bundle/stage/BUILT_AT
tar -C gpu-bundle/stage -cJf gpu-bundle/bundle.tar.xz .
rm -rf gpu-bundle/stage
ls -la gpu-bundle/bundle.tar.xz
echo "carry gpu-bundle with the call that runs: scripts/gpu-check.sh \$OUT"
