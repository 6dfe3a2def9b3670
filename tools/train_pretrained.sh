#!/usr/bin/env bash
# The exact record of how the shipped networks were trained: the paper's schedules (Adam 1e-4, batch 200;
# MNIST LeNet and FashionMNIST MLP 150 epochs, FashionMNIST LeNet 100), seed 0.
# Each run trains into <workspace>/pretrained/train/<k|fp32>.npz (git-ignored, with Adam's state) and resumes it
# when it is there, so a run cut short by the end of a session continues where it stopped; a finished run is
# exported without optimizer state to <workspace>/pretrained/<k|fp32>.npz.
# Needs the training sets: set NEGSPIKE_DATA, or keep them in <workspace>/data. Run one row: ONLY=MNIST:1.
set -euo pipefail
cd "$(dirname "$0")/.."

train() {  # train <script> <k or fp32> <epochs> [extra flags...]
  local script=$1 level=$2 epochs=$3; shift 3
  local dir name ckpt kflag=() resume=False
  dir=$(dirname "$script")
  if [[ $level == fp32 ]]; then name=fp32; else name=k$level; kflag=(--k "$level"); fi
  if [[ -n ${ONLY:-} && $ONLY != "$dir:$level" ]]; then return; fi
  ckpt="$dir/pretrained/train/$name.npz"
  if [[ ! -f $ckpt ]] && python -c "import numpy as np, sys; sys.exit(int(np.load(sys.argv[1])['meta/epoch']) < $epochs)" \
      "$dir/pretrained/$name.npz" 2>/dev/null; then return; fi  # trained to this schedule and exported
  if [[ -f $ckpt ]]; then resume=True; fi
  python "$script" "${kflag[@]}" --resume "$resume" --mode training --epochs "$epochs" --seed 0 \
    --checkpoint "$ckpt" "$@"
  python -m common.checkpoint export "$ckpt" "$dir/pretrained/$name.npz" ${EXPORT_FLAGS:-}
  rm -f "$ckpt" "${ckpt%.npz}.history.json"
}

for level in 1 fp32 0 2; do
  script=FashionMNIST/MLP/Quant_MLP_FashionMNIST.py
  if [[ $level == fp32 ]]; then script=FashionMNIST/MLP/FP32_MLP_FashionMNIST.py; fi
  train "$script" "$level" 150
done
train MNIST/Quant_LeNet_MNIST.py 1 150
train FashionMNIST/LeNet/Quant_LeNet_FashionMNIST.py 1 100
train MNIST/FP32_LeNet_MNIST.py fp32 150
train FashionMNIST/LeNet/FP32_LeNet_FashionMNIST.py fp32 100
for k in 0 2; do train MNIST/Quant_LeNet_MNIST.py "$k" 150; done
# CIFAR-10 CNN 1 k=1 at the paper's schedule (Adam at 1e-3 for 100 epochs, then --resume True --learning_rate 0.0001
# for 100 more): one run resumed across many stops, its state outside the work tree (tools/long_run.py); shipped
# with float16 filters and output weights once done. The row shipped before it:
#   EXPORT_FLAGS=--float16 train CIFAR10/CNN_1/Quant_CNN1_CIFAR10.py 1 3 --train_samples 10000
if [[ -z ${ONLY:-} || $ONLY == CIFAR10/CNN_1:1 ]]; then
  python tools/long_run.py resume && python tools/long_run.py ship
fi
