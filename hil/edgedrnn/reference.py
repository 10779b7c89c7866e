"""A slow, readable pure-Python EdgeDRNN: the integer recipe and cycle model written out line by line.

This is the test oracle for the numba kernel (:mod:`hil.edgedrnn.kernel`) and a second reading of
``../shared/facts/edgedrnn.md``; nothing on the hot path uses it. Python ints never overflow, so every wrap or
saturation the hardware does is explicit here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controllers.fixedpoint import ACC_BITS, K, rhe, saturate, sig_q, tanh_q, wrap
from firmware_bridge.weight_image import ImageLayout, check_image

C_E = (3, 4)  # delta-encoder → MAC delay, layer 1 / later layers
C_S = (8, 10)  # scan-floor overhead, layer 1 / later layers
MAC_TAIL = 6  # cycles from the last burst to the end of the MAC phase


def mac_cycles_reference(positions: list[int], scan: int, beats: int, layer: int, burst_latency: int = 0) -> int:
    """T_mac of one layer from the ascending scan positions of its fired columns (facts page formula)."""
    c_e = C_E[min(layer, 1)]
    c_s = C_S[min(layer, 1)]
    f = None
    for p in positions:
        start = p + c_e if f is None else max(p + c_e, f)
        f = start + beats + burst_latency
    return scan + c_s if f is None else max(f + MAC_TAIL, scan + c_s)


@dataclass
class ReferenceStep:
    h: list[int]  # last layer
    cycles: int
    layer_fired: list[int]
    layer_mac: list[int]
    layer_act: list[int]


class ReferenceEdgeDRNN:
    """Integer delta-GRU on Python ints; ``saturate=False`` wraps like the RTL."""

    def __init__(
        self,
        image: bytes | np.ndarray,
        layers: int,
        input_size: int,
        hidden: int,
        theta_x: int,
        theta_h: int,
        *,
        saturate: bool = False,
        burst_latency: int = 0,
        k: int = K,
    ) -> None:
        self.w = check_image(image, layers, input_size, hidden).astype(int).tolist()
        self.layout = ImageLayout(layers, input_size, hidden)
        self.theta_x, self.theta_h = theta_x, theta_h
        self.sat = saturate
        self.lam = burst_latency
        self.k = k
        self.reset()

    def reset(self) -> None:
        lay = self.layout
        H = lay.hidden
        self.xhat = [[0] * i for i in lay.layer_inputs]
        self.hhat = [[0] * H for _ in range(lay.layers)]
        self.h = [[0] * H for _ in range(lay.layers)]
        self.m = [[[0] * H for _ in range(4)] for _ in range(lay.layers)]  # r, z, nx, nh
        self.first = True

    def _fit(self, v: int, bits: int) -> int:
        return saturate(v, bits) if self.sat else wrap(v, bits)

    def step(self, x: list[int]) -> ReferenceStep:
        lay = self.layout
        H = lay.hidden
        x = list(x) + [0] * (lay.input_padded - len(x))
        cycles = 0
        fired_l, mac_l, act_l = [], [], []
        for layer in range(lay.layers):
            I = lay.layer_inputs[layer]
            base = lay.layer_offsets[layer]
            m = self.m[layer]
            positions = []
            # scan order: bias, inputs, hidden
            cols: list[tuple[int, int, int]] = []  # (position, delta, target accumulator of the n rows)
            if self.first:
                cols.append((0, 256, 2))
            for i in range(I):
                d = self._fit(x[i] - self.xhat[layer][i], 16)
                if d != 0 and abs(d) >= self.theta_x:
                    self.xhat[layer][i] = x[i]
                    cols.append((1 + i, d, 2))
            for j in range(H):
                d = self._fit(self.h[layer][j] - self.hhat[layer][j], 16)
                if d != 0 and abs(d) >= self.theta_h:
                    self.hhat[layer][j] = self.h[layer][j]
                    cols.append((1 + I + j, d, 3))
            for pos, d, n_acc in cols:
                positions.append(pos)
                col = base + pos * 3 * H
                for j in range(H):
                    for acc, row in ((0, j), (1, H + j), (n_acc, 2 * H + j)):
                        m[acc][j] = self._fit(m[acc][j] + d * self.w[col + row], ACC_BITS)
            h_new = []
            for j in range(H):
                pre_r = self._fit(rhe(m[0][j], 7), 16)
                pre_z = self._fit(rhe(m[1][j], 7), 16)
                pre_nh = self._fit(rhe(m[3][j], 7), 16)
                r, z = sig_q(pre_r), sig_q(pre_z)
                pre_n = self._fit(rhe(2 * m[2][j] + r * pre_nh, 8), 16)
                n = tanh_q(pre_n)
                hp = self.h[layer][j]
                h_new.append(rhe((256 - z) * n, 8) + rhe(z * hp, 8))
            self.h[layer] = h_new
            x = h_new
            mac = mac_cycles_reference(positions, 1 + I + H, 3 * H // self.k, layer, self.lam)
            act = 5 * (H // self.k + 1)
            cycles += mac + act
            fired_l.append(len(positions))
            mac_l.append(mac)
            act_l.append(act)
        self.first = False
        return ReferenceStep(list(self.h[-1]), cycles, fired_l, mac_l, act_l)
