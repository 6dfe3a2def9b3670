#!/usr/bin/env bash
# The shipped results: simulate every shipped network on its full test set into <workspace>/pretrained/logs/k<k>/,
# draw <workspace>/pretrained/figs/ and regenerate the README's table. User runs never write there: only
# NEGSPIKE_WRITE_SHIPPED=1, set here, lets a spiking run write a pretrained/ folder.
# MNIST runs offline on the shipped test set; the others need NEGSPIKE_DATA (or <workspace>/data).
set -euo pipefail
cd "$(dirname "$0")/.."

spike() {  # spike <Spiking script> <k> [extra flags...]
  local script=$1 k=$2; shift 2
  local dir
  dir=$(dirname "$script")
  if [[ -f $dir/pretrained/k$k.npz ]]; then
    NEGSPIKE_WRITE_SHIPPED=1 python "$script" --k "$k" --checkpoint "$dir/pretrained/k$k.npz" \
      --log_dir "$dir/pretrained/logs/k$k" --replace_logs True "$@"
  fi
}

for k in 0 1 2; do
  spike MNIST/Spiking_LeNet_MNIST.py "$k"
  spike FashionMNIST/MLP/Spiking_MLP_FashionMNIST.py "$k"
  spike FashionMNIST/LeNet/Spiking_LeNet_FashionMNIST.py "$k"
  # CIFAR-10: the first 200 of the 1,000 test images here, so that the test suite can re-run it (about 2 min)
  spike CIFAR10/CNN_1/Spiking_CNN1_CIFAR10.py "$k" --num_samples 200
done

for ws in MNIST FashionMNIST/MLP FashionMNIST/LeNet CIFAR10/CNN_1 CIFAR10/CNN_2; do
  if compgen -G "$ws/pretrained/logs/k*/summary.json" > /dev/null; then python -m common.plots "$ws" --shipped; fi
done
python tools/results_table.py --write
