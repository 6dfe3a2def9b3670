#!/usr/bin/env bash
# Simulate every shipped network, draw each workspace's figures and regenerate the README's table.
# MNIST runs offline on the shipped test set; the others need NEGSPIKE_DATA (or <workspace>/data).
set -euo pipefail
cd "$(dirname "$0")/.."

spike() {  # spike <Spiking script> <k> [extra flags...]
  local script=$1 k=$2; shift 2
  local ckpt
  ckpt="$(dirname "$script")/pretrained/k$k.npz"
  if [[ -f $ckpt ]]; then python "$script" --k "$k" --checkpoint "$ckpt" "$@"; fi
}

for k in 0 1; do spike MNIST/Spiking_LeNet_MNIST.py "$k"; done
spike MNIST/Spiking_LeNet_MNIST.py 2 --time_steps 40
for k in 0 1; do spike FashionMNIST/MLP/Spiking_MLP_FashionMNIST.py "$k"; done
spike FashionMNIST/MLP/Spiking_MLP_FashionMNIST.py 2 --time_steps 40
spike FashionMNIST/LeNet/Spiking_LeNet_FashionMNIST.py 1
spike CIFAR10/CNN_1/Spiking_CNN1_CIFAR10.py 1

for ws in MNIST FashionMNIST/MLP FashionMNIST/LeNet CIFAR10/CNN_1; do
  if compgen -G "$ws/figs/k*/summary.json" > /dev/null; then python -m common.plots "$ws"; fi
done
python tools/results_table.py --write
