"""Lossless ANN-to-SNN conversion with negative spike dynamics.

Shared logic for the workspace scripts, in layers whose imports point down: network
descriptions (`networks`) and datasets (`data`); the quantized layers (`layers`) and the
TensorLayer model builder (`model`), the BatchNorm-folding converter (`convert`, producing
`spiking_network`) and the exact ANN (`exact_ann`); the neuron rules (`neurons`) and the
spiking simulators (`snn`, `reference`); training (`train`), checkpoints (`checkpoint`) and
spiking runs (`spiking`); the command line (`cli`). TensorFlow starts quietly once, at an
entry point (`startup.start`); logs (`logs`) and figures (`plots`).
"""
