"""An executable, deliberately plain reading of ``docs/protocol.md``'s receive rules, and a fuzz stream generator.

:func:`reference_receive` classifies a whole byte stream the slow, obvious way (split at 0x00, textbook COBS,
CRC-16 from a bit-by-bit table), independently of :mod:`firmware_bridge.protocol`'s fast paths. The fuzz test and
``benchmarks/fuzz_protocol.py`` feed the same mutated streams to :class:`firmware_bridge.protocol.FrameDecoder` in
random chunk sizes and require the same verdicts in the same order. A C receiver can be checked against it the same
way.
"""

from __future__ import annotations

import binascii
import random
import struct

# Independent of protocol.py on purpose: constants restated from the spec.
_HEADER = struct.Struct("<BBHH")
_OVERHEAD = 8


def crc16_bitwise(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE one bit at a time (poly 0x1021, init 0xFFFF, MSB first, no final XOR)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _table() -> list[int]:
    return [crc16_bitwise(bytes((b,)), 0) for b in range(256)]


_TABLE = _table()


def crc16_reference(data: bytes) -> int:
    """CRC-16/CCITT-FALSE through a table built by :func:`crc16_bitwise` (same result, 8× fewer Python steps)."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc


def cobs_decode_textbook(chunk: bytes) -> tuple[bytes, bool]:
    """Block by block: code c is followed by c−1 data bytes and, if c < 0xFF and more follows, a zero.

    Returns (decoded bytes, complete); ``complete`` is False when the last code promises more bytes than remain.
    """
    out = bytearray()
    i = 0
    n = len(chunk)
    while i < n:
        code = chunk[i]
        block = chunk[i + 1 : i + code]
        out += block
        if len(block) < code - 1:
            return bytes(out), False
        i += code
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out), True


def cobs_encode_blocks(data: bytes) -> bytes:
    """Canonical COBS by splitting at zeros and at 254-byte runs (the fuzz generator's encoder)."""
    out = bytearray()
    blocks = data.split(b"\x00")
    for k, block in enumerate(blocks):
        last = k == len(blocks) - 1
        while len(block) >= 254:
            out.append(0xFF)
            out += block[:254]
            block = block[254:]
            if not block and last:
                return bytes(out)
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_encode_textbook(data: bytes) -> bytes:
    """The canonical encoder of the spec (no trailing 0x01 after a final 254-byte run)."""
    out = bytearray()
    code_at = 0
    out.append(0)
    code = 1
    for i, b in enumerate(data):
        if b:
            out.append(b)
            code += 1
        if not b or code == 0xFF:
            out[code_at] = code
            code = 1
            if not b or i < len(data) - 1:
                code_at = len(out)
                out.append(0)
            else:
                return bytes(out)
    out[code_at] = code
    return bytes(out)


def reference_classify(chunk: bytes) -> tuple:
    """Verdict on one non-empty chunk: ("frame", version, type, seq, payload) or (kind,)."""
    dec, complete = cobs_decode_textbook(chunk)
    if len(dec) < _OVERHEAD:
        return ("truncated",)
    version, msg_type, seq, length = _HEADER.unpack_from(dec)
    if len(dec) < _OVERHEAD + length:
        return ("truncated",)
    if len(dec) > _OVERHEAD + length or not complete:
        return ("malformed",)
    if crc16_reference(dec[:-2]) != dec[-2] | dec[-1] << 8:
        return ("crc",)
    return ("frame", version, msg_type, seq, bytes(dec[6:-2]))


def reference_receive(stream: bytes, max_payload: int) -> list[tuple]:
    """Verdicts of a whole stream: chunks between 0x00 in order; empty chunks ignored; a chunk (or unterminated
    tail) longer than the largest encoded frame is one ("resync",)."""
    n = _OVERHEAD + max_payload
    limit = n + 1 + n // 254
    pieces = stream.split(b"\x00")
    out: list[tuple] = []
    for piece in pieces[:-1]:
        if not piece:
            continue
        out.append(("resync",) if len(piece) > limit else reference_classify(piece))
    if len(pieces[-1]) > limit:
        out.append(("resync",))
    return out


def _crc(body: bytes) -> bytes:
    # The generator may use the fast CRC: verdicts are judged by reference_classify's own CRC.
    crc = binascii.crc_hqx(body, 0xFFFF)
    return bytes((crc & 0xFF, crc >> 8))


def valid_frame(rng: random.Random, max_payload: int) -> bytes:
    """A random well-formed decoded frame (header | payload | CRC); mostly short payloads like STEP/RESULT, some
    up to ``max_payload``, biased towards zeros and long non-zero runs (COBS's edge cases)."""
    u = rng.random()
    if u < 0.1:
        size = 0
    elif u < 0.7:
        size = rng.randint(1, 40)
    elif u < 0.9:
        size = rng.randint(41, 300)
    else:
        size = rng.randint(0, max_payload)
    size = min(size, max_payload)
    style = rng.random()
    if style < 0.15:
        payload = bytes([rng.randint(1, 255)]) * size  # one long non-zero run
    elif style < 0.25:
        payload = bytes(size)
    else:
        b = bytearray(rng.randbytes(size))
        for _ in range(rng.randint(0, max(1, size // 4))):
            if size:
                b[rng.randrange(size)] = 0
        payload = bytes(b)
    version = 1 if rng.random() < 0.9 else rng.randint(0, 255)
    body = _HEADER.pack(version, rng.randint(0, 255), rng.randint(0, 0xFFFF), size) + payload
    return body + _crc(body)


def fuzz_stream(rng: random.Random, n_frames: int, max_payload: int) -> bytes:
    """``n_frames`` frames, each either valid or mutated, as one byte stream (the kinds of damage a link does)."""
    out = bytearray()
    for _ in range(n_frames):
        dec = valid_frame(rng, max_payload)
        enc = cobs_encode_blocks(dec)
        m = rng.randrange(12)
        if m == 0:  # bit flips in the encoded bytes (may create or remove delimiters)
            b = bytearray(enc)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            enc = bytes(b)
        elif m == 1:  # bit flips before encoding: valid COBS, wrong CRC (or a lying length field)
            b = bytearray(dec)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            enc = cobs_encode_blocks(bytes(b))
        elif m == 2:  # truncation
            enc = enc[: rng.randrange(len(enc))]
        elif m == 3:  # insertion of random bytes
            p = rng.randrange(len(enc) + 1)
            enc = enc[:p] + rng.randbytes(rng.randint(1, 20)) + enc[p:]
        elif m == 4:  # deletion
            p = rng.randrange(len(enc))
            enc = enc[:p] + enc[p + rng.randint(1, 10) :]
        elif m == 5:  # concatenation: the delimiter is lost
            out += enc
            continue
        elif m == 6:  # garbage, sometimes a long run without a delimiter
            n = rng.choice((rng.randint(1, 64), rng.randint(1, 3 * max_payload)))
            garbage = rng.randbytes(n)
            if rng.random() < 0.5:
                garbage = garbage.replace(b"\x00", b"\x01")
            out += garbage
        elif m == 7:  # a length field that lies, with a CRC that matches it
            b = bytearray(dec[:-2])
            struct.pack_into("<H", b, 4, rng.randint(0, 0xFFFF))
            enc = cobs_encode_blocks(bytes(b) + _crc(bytes(b)))
        elif m == 8:  # extra delimiters
            out += b"\x00" * rng.randint(1, 3)
        # m >= 9: valid
        out += enc
        out += b"\x00"
    return bytes(out)


def verdicts_of(items: list) -> list[tuple]:
    """:class:`firmware_bridge.protocol.FrameDecoder` output in :func:`reference_receive`'s form."""
    from .protocol import Frame

    return [
        ("frame", x.version, x.msg_type, x.seq, x.payload) if isinstance(x, Frame) else (x.kind.value,) for x in items
    ]


def fuzz_check(seed: int, n_frames: int, max_payload: int, max_chunk: int) -> dict[str, int]:
    """One fuzz round: a :func:`fuzz_stream` fed to a FrameDecoder in random chunks of 1..``max_chunk`` bytes.

    Raises AssertionError (naming the seed) unless the decoder's verdicts equal :func:`reference_receive`'s and its
    buffer stayed within bounds; returns the count of each verdict.
    """
    from .protocol import FrameDecoder

    rng = random.Random(seed)
    stream = fuzz_stream(rng, n_frames, max_payload)
    want = reference_receive(stream, max_payload)
    decoder = FrameDecoder(max_payload)
    got: list = []
    i = 0
    while i < len(stream):
        k = rng.randint(1, max_chunk)
        got += decoder.feed(stream[i : i + k])
        if decoder.buffered > decoder.max_encoded:
            raise AssertionError(f"seed {seed}: buffer {decoder.buffered} > bound {decoder.max_encoded}")
        i += k
    have = verdicts_of(got)
    if have != want:
        first = next(k for k, (a, b) in enumerate(zip(have, want, strict=False)) if a != b) if have and want else 0
        raise AssertionError(
            f"seed {seed} (max_payload {max_payload}, max_chunk {max_chunk}): verdict {first} differs: "
            f"decoder {have[first : first + 1]}, reference {want[first : first + 1]} "
            f"({len(have)} vs {len(want)} verdicts)"
        )
    counts: dict[str, int] = {}
    for v in want:
        counts[v[0]] = counts.get(v[0], 0) + 1
    return counts
