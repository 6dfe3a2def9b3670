#!/usr/bin/env bash
# The exact record of the extra seeds behind the results table's spread (mean ± standard deviation over seeds):
# each row's paper schedule, as tools/train_pretrained.sh runs seed 0, with seeds 1, 2, ... Each seed trains into
# <workspace>/pretrained/train/seed<N>/k1.npz (untracked; resumed when it is there), then spikes the full test set.
# Shipped per seed, without weights: pretrained/seeds/k1-seed<N>.history.json and k1-seed<N>.summary.json.
# Needs the training sets: set NEGSPIKE_DATA, or keep them in <workspace>/data. Run one row: ONLY=FashionMNIST/MLP.
set -euo pipefail
cd "$(dirname "$0")/.."

seed_run() {  # seed_run <workspace> <quant script> <spiking script> <epochs> <seed>
  local dir=$1 quant=$2 spiking=$3 epochs=$4 seed=$5
  if [[ -n ${ONLY:-} && $ONLY != "$dir" ]]; then return; fi
  local out="$dir/pretrained/seeds" train="$dir/pretrained/train/seed$seed" resume=False
  if [[ -f $out/k1-seed$seed.summary.json ]]; then return; fi  # done and shipped
  mkdir -p "$out" "$train"
  if [[ -f $train/k1.npz ]]; then resume=True; fi
  if [[ ! -f $train/k1.npz ]] || python -c "import numpy as np, sys; z = np.load(sys.argv[1]); \
sys.exit(int(z['meta/epoch']) >= $epochs and int(z['meta/batch']) == 0)" "$train/k1.npz"; then
    python "$dir/$quant" --k 1 --resume "$resume" --mode training --epochs "$epochs" --seed "$seed" \
      --learning_rate 0.0001 --checkpoint "$train/k1.npz"
  fi
  NEGSPIKE_WRITE_SHIPPED=1 python "$dir/$spiking" --k 1 --checkpoint "$train/k1.npz" --log_dir "$train/logs/k1"
  cp "$train/k1.history.json" "$out/k1-seed$seed.history.json"
  cp "$train/logs/k1/summary.json" "$out/k1-seed$seed.summary.json"
}

for seed in 1 2 3 4; do
  seed_run FashionMNIST/MLP Quant_MLP_FashionMNIST.py Spiking_MLP_FashionMNIST.py 150 "$seed"
done
for seed in 1 2; do
  seed_run FashionMNIST/LeNet Quant_LeNet_FashionMNIST.py Spiking_LeNet_FashionMNIST.py 100 "$seed"
  seed_run MNIST Quant_LeNet_MNIST.py Spiking_LeNet_MNIST.py 150 "$seed"
done
