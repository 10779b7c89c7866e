"""Synthetic EdgeDRNN networks and input sequences for tests and benchmarks (no training needed).

Weights are drawn as float N(0, σ²) and quantised to Q1.7, with the scale σ = gain/√fan-in so that pre-activations
stay in the non-saturated range of σ/tanh (a plain N(0, 1) net would sit at ±1 and fire nothing interesting).
"""

from __future__ import annotations

import numpy as np

from controllers.fixedpoint import ACC_ONE, Q17_ONE, q17_codes, q88_codes
from firmware_bridge.bundle import Bundle
from firmware_bridge.weight_image import LayerWeights, build_image


def random_layers(
    rng: np.random.Generator, layers: int, input_size: int, hidden: int, gain: float = 1.0
) -> list[LayerWeights]:
    """Random int8 Q1.7 layers (W_ih [3H, I_l], W_hh [3H, H], bias [3H]) in PyTorch's r, z, n row order."""
    out = []
    for layer in range(layers):
        i_l = input_size if layer == 0 else hidden
        w_ih = q17_codes(rng.normal(0.0, gain / np.sqrt(i_l), (3 * hidden, i_l)))
        w_hh = q17_codes(rng.normal(0.0, gain / np.sqrt(hidden), (3 * hidden, hidden)))
        bias = q17_codes(rng.normal(0.0, 0.2, 3 * hidden))
        out.append(LayerWeights(w_ih, w_hh, bias))
    return out


def image_of(layers: list[LayerWeights]) -> bytes:
    """The DRAM image of :func:`random_layers`' output."""
    return build_image([w.w_ih for w in layers], [w.w_hh for w in layers], [w.bias for w in layers])


def random_bundle(
    rng: np.random.Generator,
    layers: int = 2,
    input_size: int = 5,
    hidden: int = 16,
    outputs: int = 2,
    theta_x: int = 0,
    theta_h: int = 0,
    gain: float = 1.0,
) -> Bundle:
    """A complete deployment bundle with random weights and unit input normalisation."""
    net = random_layers(rng, layers, input_size, hidden, gain)
    return Bundle(
        image=image_of(net),  # type: ignore[arg-type]  # Bundle.__post_init__ turns bytes into the uint8 array
        layers=layers,
        input_size=input_size,
        hidden=hidden,
        theta_x=theta_x,
        theta_h=theta_h,
        out_weight=q17_codes(rng.normal(0.0, 1.0 / np.sqrt(hidden), (outputs, hidden))),
        # a Q1.7 bias in the ARM MAC's 2^-15 units
        out_bias=(q17_codes(rng.normal(0.0, 0.2, outputs)).astype(np.int32) * (ACC_ONE // Q17_ONE)),
        input_mean=np.zeros(input_size, dtype=np.float32),
        input_std=np.ones(input_size, dtype=np.float32),
        metadata='{"source": "hil.edgedrnn.synthetic.random_bundle"}',
    )


def smooth_inputs(
    rng: np.random.Generator, steps: int, width: int, period: float = 200.0, amplitude: float = 1.0
) -> np.ndarray:
    """Slowly varying Q8.8 inputs [steps, width]: sums of random-phase sinusoids with periods around ``period``."""
    t = np.arange(steps)[:, None]
    x = np.zeros((steps, width))
    for _ in range(3):
        per = period * rng.uniform(0.5, 2.0, width)
        x += np.sin(2 * np.pi * t / per + rng.uniform(0, 2 * np.pi, width)) / 3
    return q88_codes(amplitude * x)


def noisy_inputs(rng: np.random.Generator, steps: int, width: int, amplitude: float = 1.0) -> np.ndarray:
    """White-noise Q8.8 inputs [steps, width] (every delta fires at Θ = 0)."""
    return q88_codes(rng.normal(0.0, amplitude, (steps, width)))
