"""The RTL test bench's text files: weights and activations as hex beats, and the σ/tanh LUT dumps.

Hex-beat text
-------------
One beat per line, upper- or lower-case hex, optionally followed by ``// comment``. A beat is a little-endian word:
the first element (weight or activation) is the lowest byte(s). Weights travel as 64-bit beats (8 INT8), activations
as 128-bit beats (8 Q8.8 int16). Blank lines and lines that are only a comment are skipped.

LUT dumps (``sigmoid_lut.txt``, ``tanh_lut.txt``) list one table entry per line: ``<index> : lut_out[i] = <value>;``.

This module must not import ``hil`` (imports point down the ladder experiments → hil → firmware_bridge).
"""

from __future__ import annotations

import os

import numpy as np

from firmware_bridge.errors import ImageError

WEIGHT_BEAT_BYTES = 8  # 64-bit weight stream
ACT_BEAT_VALUES = 8  # 128-bit activation stream: 8 × int16


def parse_hex_beats(text: str, beat_bytes: int) -> bytes:
    """Hex-beat text → bytes, each beat little-endian (first element = lowest byte)."""
    out = bytearray()
    for lineno, raw in enumerate(text.splitlines(), 1):
        token = raw.split("//", 1)[0].strip()
        if not token:
            continue
        if token.lower().startswith("0x"):
            token = token[2:]
        token = token.replace("_", "")
        if len(token) > 2 * beat_bytes:
            raise ImageError(
                f"line {lineno}: beat {token!r} has {len(token)} hex digits; expected at most {2 * beat_bytes}"
            )
        try:
            value = int(token, 16)
        except ValueError:
            raise ImageError(f"line {lineno}: {token!r} is not a hex beat") from None
        out += value.to_bytes(beat_bytes, "little")
    return bytes(out)


def format_hex_beats(data: bytes, beat_bytes: int, element_bytes: int = 1) -> str:
    """Bytes → hex-beat text in the test bench's style (comment lists the elements high → low, signed)."""
    if len(data) % beat_bytes:
        raise ImageError(f"{len(data)} bytes is not a whole number of {beat_bytes}-byte beats")
    dtype = {1: "<i1", 2: "<i2"}[element_bytes]
    lines = []
    for start in range(0, len(data), beat_bytes):
        beat = data[start : start + beat_bytes]
        word = int.from_bytes(beat, "little")
        elems = np.frombuffer(beat, dtype=dtype)[::-1]
        lines.append(f"{word:0{2 * beat_bytes}X} // " + "".join(f"{int(e)}, " for e in elems).rstrip())
    return "\n".join(lines) + "\n"


def parse_hex_activations(text: str, width: int) -> np.ndarray:
    """128-bit activation beats → int16 [T, width]; ``width`` (a multiple of 8) values = width/8 beats a step."""
    if width % ACT_BEAT_VALUES:
        raise ImageError(f"activation width {width} is not a multiple of {ACT_BEAT_VALUES} (one 128-bit beat)")
    data = parse_hex_beats(text, 2 * ACT_BEAT_VALUES)
    values = np.frombuffer(data, dtype="<i2")
    if values.size % width:
        beats = values.size // ACT_BEAT_VALUES
        raise ImageError(
            f"{beats} activation beats is not a multiple of {width // ACT_BEAT_VALUES} beats per step "
            f"(expected width {width})"
        )
    return values.reshape(-1, width).astype(np.int16)


def format_hex_activations(x: np.ndarray) -> str:
    """int16 [T, width] (width a multiple of 8) → 128-bit activation beat text."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] % ACT_BEAT_VALUES:
        raise ImageError(f"activations must be [T, width] with width a multiple of 8, got shape {x.shape}")
    return format_hex_beats(x.astype("<i2").tobytes(), 2 * ACT_BEAT_VALUES, element_bytes=2)


def read_lut_dump(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Parse an RTL LUT dump (lines ``<index> : lut_out[i] = <value>;``) into (indices, values)."""
    idx: list[int] = []
    val: list[int] = []
    with open(path, encoding="ascii") as fh:
        for line in fh:
            line = line.strip()
            if not line or ":" not in line:
                continue
            left, right = line.split(":", 1)
            idx.append(int(left))
            val.append(int(right.split("=", 1)[1].strip().rstrip(";")))
    return np.array(idx, dtype=np.int64), np.array(val, dtype=np.int64)
