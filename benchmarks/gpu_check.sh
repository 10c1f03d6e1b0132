#!/bin/bash
# Issue 32's GPU checks, one run on a lent GPU machine: the CUDA tests, the limit benchmark and the
# compile / bf16 benchmark on cuda. Results: benchmarks/results/*_cuda.{json,md}, quoted in
# benchmarks/results.md. Data: VAELAB_DATA (default .devdata, a copy of mnist.pkl.gz carried along).
export PYTHONPATH=$PWD/src VAELAB_DATA=${VAELAB_DATA:-$PWD/.devdata} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_precision.py 2>&1 | tail -25
timeout 150 python3 benchmarks/bench_limit.py --device cuda --rounds 5 --block 20 --points 100
cp benchmarks/results/limit_cuda.* "$OUT/"
timeout 240 python3 benchmarks/bench_precision.py --device cuda --rounds 5 --train-size 50000 --points 1000 --k-is 1000
cp benchmarks/results/precision_cuda.* "$OUT/"
