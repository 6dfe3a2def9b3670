"""Lossless ANN-to-SNN conversion with negative spike dynamics.

Shared logic for the workspace scripts: network descriptions (`networks`), quantized
layers (`layers`), the TensorLayer model builder (`model`), data (`data`), training
(`train`), checkpoints (`checkpoint`), the BatchNorm-folding converter (`convert`),
the spiking simulators (`snn`, `reference`), logs (`logs`) and figures (`plots`).
"""
