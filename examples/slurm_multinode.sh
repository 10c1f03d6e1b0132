#!/bin/bash
# Two machines, four processes each, restarted up to 3 times when a process dies (docs/performance.md,
# "Fault tolerance"). The run directory must be on a file system every node sees.
#SBATCH --nodes=2 --ntasks-per-node=1 --cpus-per-task=16 --time=04:00:00
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun vaelab train --nproc 4 --nnodes "$SLURM_NNODES" --rdzv-endpoint "$head:29400" --rdzv-id "$SLURM_JOB_ID" \
    --max-restarts 3 --set train.checkpoint_every_steps=500 --config my.toml --out "$HOME/runs/$SLURM_JOB_ID"
