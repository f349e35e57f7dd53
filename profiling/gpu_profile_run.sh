#!/usr/bin/env bash
# Profile the SD3-Medium architecture at 1024 px in fp16 and bf16 on this machine's GPU, in one
# go. Written for the device tool's machines (PyTorch there, no diffusers, no network):
# carry the wheels folder .whl (diffusers, importlib_metadata) and run from the repository root:
#
#   bash profiling/gpu_profile_run.sh            # profiles land in $OUT/gpu/ (or ./gpu/)
#
# Each dtype runs under its own time limit; a failure in one does not stop the other.
set -u
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:${PWD}${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
dest="${OUT:-.}"
mkdir -p "${dest}/gpu"
logs="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,memory.total,driver_version,power.limit --format=csv,noheader || true
status=0
for dtype in float16 bfloat16; do
  echo "== profile-gpu sd3-medium 1024 ${dtype} =="
  timeout "${PROFILE_TIMEOUT_S:-200}" python3 -m his_opt.cli._profile profile-gpu \
    --arch sd3-medium --resolution 1024 --dtype "${dtype}" \
    --batch-sizes "${BATCH_SIZES:-1,2,4,8,16}" \
    --out "${dest}/gpu/sd3-medium-1024-${dtype}.json" 2>&1 | tee "${logs}/profile-gpu-${dtype}.log"
  rc=${PIPESTATUS[0]}
  echo "== ${dtype}: exit ${rc} =="
  [ "${rc}" -ne 0 ] && status=1
done
for f in "${dest}"/gpu/sd3-medium-1024-*.json; do
  [ -e "$f" ] && python3 profiling/compare_gpu_profiles.py "$f"
done
exit "${status}"
