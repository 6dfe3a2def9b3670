#!/usr/bin/env bash
# The shipped results: simulate every shipped network on its full test set into <workspace>/pretrained/logs/k<k>/,
# compare SpikingJelly on the k=1 LeNets, draw <workspace>/pretrained/figs/ and regenerate the README's tables, the
# model cards and SHA256SUMS. User runs never write there: only
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

# SpikingJelly with and without negative spikes on the k=1 LeNets (the bench extra; each in a process of its own)
spikingjelly() {  # spikingjelly <workspace> <network> <IDX folder>
  local ws=$1 idx=$3 model
  model=$(mktemp -d)/$2_k1_snn.safetensors
  python -m common.convert export "$ws/pretrained/k1.npz" "$model"
  mkdir -p "$ws/pretrained/spikingjelly"
  python examples/spikingjelly/compare.py "$model" --images "$idx/t10k-images-idx3-ubyte.gz" \
    --labels "$idx/t10k-labels-idx1-ubyte.gz" --num_images 1000 --json "$ws/pretrained/spikingjelly/k1.json"
}
if python -c "import torch, spikingjelly" 2>/dev/null; then
  spikingjelly MNIST mnist MNIST/data/mnist
  spikingjelly FashionMNIST/LeNet fashion_lenet "${NEGSPIKE_DATA:-FashionMNIST/LeNet/data}/fashion_mnist"
fi

for ws in MNIST FashionMNIST/MLP FashionMNIST/LeNet CIFAR10/CNN_1 CIFAR10/CNN_2; do
  if compgen -G "$ws/pretrained/logs/k*/summary.json" > /dev/null; then python -m common.plots "$ws" --shipped; fi
done
python tools/results_table.py --write
python tools/model_cards.py --write   # the model cards, SHA256SUMS and the SpikingJelly tables, from the records above
