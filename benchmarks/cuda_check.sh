#!/usr/bin/env bash
# The real-GPU check of the CUDA backend, as one script (a few minutes; under 10 even with every step at its timeout):
#   1. the GPU and the CUDA backend's own account of it (engine.device_status);
#   2. the CUDA kernel tests on the device at larger sizes (CPU and CUDA must agree on every layer kind);
#   3. `convdesigner bench --device cuda`: LeNet-5, the seed CNN and resnet-small at batch 64 and 256, training and
#      inference img/s next to PyTorch CUDA (fp32, TF32 off) when PyTorch with CUDA is installed;
#   4. LeNet-5 on the MNIST sample for 5 epochs on the CPU and on CUDA (validation accuracies side by side), the
#      CUDA model evaluated on the CPU and resumed there for one more epoch (model files are device-independent).
# Run from anywhere: bash benchmarks/cuda_check.sh [OUTPUT_DIR]. Needs `pip install -e ".[cuda,dev]"` (and torch
# with CUDA for the comparison) done beforehand: it installs nothing. Everything it prints is also written to OUTPUT_DIR/cuda_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/convdesigner-cuda-check}}"
mkdir -p "$out"
exec > >(tee "$out/cuda_check.log") 2>&1
failed=0
step() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }
check() { local rc=$?; if [ $rc -ne 0 ]; then echo "!!! FAILED ($rc): $1"; failed=1; fi; }

step "GPU and CUDA backend"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "(nvidia-smi not found)"
python - <<'PY'
import sys
from convdesigner.engine import device_status
ok, why = device_status("cuda")
print(("CUDA available: " if ok else "CUDA NOT available: ") + why)
sys.exit(0 if ok else 1)
PY
if [ $? -ne 0 ]; then echo "!!! the CUDA backend cannot run here; nothing else to check"; exit 1; fi
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>/dev/null \
  || echo "torch is not installed: the bench will time our engine only"

step "CUDA kernel tests on the device (CPU and CUDA agree on every kernel, layer kind and optimizer)"
CONVDESIGNER_CUDA_TESTS=gpu timeout 120 python -m pytest -q -p no:cacheprovider tests/engine/cuda/simulated \
  --durations=5
check "CUDA tests"

step "convdesigner bench --device cuda"
timeout 180 convdesigner bench --device cuda
check "bench"

step "LeNet-5 on the MNIST sample, 5 epochs, CPU then CUDA"
train="--template lenet5 --data mnist-sample --epochs 5 --optimizer adam --lr 1e-3 --batch-size 64 --seed 0"
for device in cpu cuda; do
  SECONDS=0
  timeout 75 convdesigner train $train --device "$device" --out "$out/lenet-$device.h5" | tail -n 3
  check "train on $device"
  echo "$device: ${SECONDS} s for the whole command (start-up and compilation included)"
done
timeout 45 convdesigner eval "$out/lenet-cuda.h5" --device cpu
check "the CUDA-trained model evaluated on the CPU"
timeout 45 convdesigner eval "$out/lenet-cpu.h5" --device cuda
check "the CPU-trained model evaluated on CUDA"
timeout 45 convdesigner train --resume "$out/lenet-cuda.h5" --epochs 1 --device cpu --out "$out/lenet-resumed.h5" \
  | tail -n 2
check "the CUDA-trained model resumed on the CPU"

echo
if [ $failed -ne 0 ]; then echo "cuda_check: SOME CHECKS FAILED (see above); log in $out/cuda_check.log"; exit 1; fi
echo "cuda_check: all checks passed; log in $out/cuda_check.log"
