#!/usr/bin/env bash
# Re-trains the shipped mjlab Cartpole swing-up teacher (envs/assets/mjlab_cartpole_swingup_teacher.pt) with mjlab's
# own `train` command on the CPU: PPO with mjlab's Cartpole config, 1024 envs, 400 iterations (32 steps each, about
# 13.1M env steps), seed 0, one torch thread. It creates its own virtual environment (rsl-rl-lib 5.4.2 + mjlab 1.6).
# The run goes to logs/rsl_rl/cartpole/<timestamp>_swingup_teacher/; its model_399.pt is the teacher. Extra
# arguments go to mjlab's train command (e.g. --agent.max-iterations 5 for a quick check).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
bin="$(ensure_venv rsl542 "rsl-rl-lib==5.4.2" dev,gymnasium,mjlab)"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # one thread: the numbers do not depend on the machine's core count
exec "$bin/python" -m mjlab.scripts.train Mjlab-Cartpole-Swingup \
    --env.scene.num-envs 1024 --agent.max-iterations 400 --agent.seed 0 --agent.run-name swingup_teacher \
    --agent.logger tensorboard --agent.upload-model False --gpu-ids None "$@"
