#!/usr/bin/env bash
# Train the networks shipped in <workspace>/pretrained/ with the schedules recorded in the README
# (shorter than the paper's: this runs on a 2-core CPU), then export them without optimizer state.
# Needs the training sets: set NEGSPIKE_DATA or pass nothing and keep them in <workspace>/data.
set -euo pipefail
cd "$(dirname "$0")/.."

train() {  # train <script> <k or fp32> <epochs> [extra flags...]
  local script=$1 level=$2 epochs=$3; shift 3
  local dir name kflag=()
  dir=$(dirname "$script")
  if [[ $level == fp32 ]]; then name=fp32; else name=k$level; kflag=(--k "$level"); fi
  python "$script" "${kflag[@]}" --resume False --mode training --epochs "$epochs" --seed 0 \
    --checkpoint "$dir/checkpoints/$name.npz" "$@"
  python -m common.checkpoint export "$dir/checkpoints/$name.npz" "$dir/pretrained/$name.npz"
}

train MNIST/Quant_LeNet_MNIST.py 1 "${MNIST_EPOCHS:-20}"
train FashionMNIST/MLP/Quant_MLP_FashionMNIST.py 1 "${MLP_EPOCHS:-20}"
for k in 0 2; do train MNIST/Quant_LeNet_MNIST.py "$k" "${MNIST_EPOCHS:-20}"; done
train MNIST/FP32_LeNet_MNIST.py fp32 "${MNIST_EPOCHS:-20}"
for k in 0 2; do train FashionMNIST/MLP/Quant_MLP_FashionMNIST.py "$k" "${MLP_EPOCHS:-20}"; done
train FashionMNIST/MLP/FP32_MLP_FashionMNIST.py fp32 "${MLP_EPOCHS:-20}"
train FashionMNIST/LeNet/Quant_LeNet_FashionMNIST.py 1 "${FASHION_LENET_EPOCHS:-8}"
train FashionMNIST/LeNet/FP32_LeNet_FashionMNIST.py fp32 "${FASHION_LENET_EPOCHS:-8}"
# CIFAR-10 CNN 1: a short schedule on the first 10,000 training images (the paper: 200 epochs on 50,000).
train CIFAR10/CNN_1/Quant_CNN1_CIFAR10.py 1 "${CIFAR_EPOCHS:-3}" --train_samples 10000
