#!/bin/bash
# The GPU checks (issues 32 and 45), one run on a lent GPU machine, under 5 minutes (timeouts 80 + 70 + 130 s): the CUDA tests
# (train.cuda_graphs against eager, resume bit-exact), the limit benchmark (eager step and the captured
# step against the fused hand-written loop) and the compile / bf16 / cuda-graphs benchmark on cuda
# (speed and test log p(x) after one epoch). Results: benchmarks/results/*_cuda.{json,md}, quoted in
# benchmarks/results.md. Data: VAELAB_DATA (default .devdata, a copy of mnist.pkl.gz carried along).
export PYTHONPATH=$PWD/src VAELAB_DATA=${VAELAB_DATA:-$PWD/.devdata} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 80 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_graphs.py 2>&1 | tail -25
timeout 70 python3 benchmarks/bench_limit.py --device cuda --k 1 5 50 --rounds 4 --block 20 --points 100
cp benchmarks/results/limit_cuda.* "$OUT/"
timeout 130 python3 benchmarks/bench_precision.py --device cuda --k 1 5 --rounds 4 --train-size 20000 --points 1000 --k-is 1000
cp benchmarks/results/precision_cuda.* "$OUT/"
