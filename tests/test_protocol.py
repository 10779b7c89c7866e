"""Board protocol codec: CRC and COBS vectors, the spec page's examples, every message, the incremental decoder, and
a differential fuzz of the decoder against the plain reference receiver (≥ 10^5 random and mutated frames a run)."""

from __future__ import annotations

import math
import random
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as P
from firmware_bridge.protocol_reference import (
    cobs_decode_textbook,
    cobs_encode_blocks,
    cobs_encode_textbook,
    crc16_bitwise,
    fuzz_check,
    verdicts_of,
)
from firmware_bridge.weight_image import image_size

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
FUZZ_FRAMES_PER_EXAMPLE = 1000
FUZZ_EXAMPLES = 110  # ≥ 10^5 frames per run


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace("…", ""))


# ------------------------------------------------------------------------------------------------ CRC, COBS


def test_crc_check_values() -> None:
    assert P.crc16(b"123456789") == 0x29B1
    assert P.crc16_ccitt_false_table(b"123456789") == 0x29B1
    assert crc16_bitwise(b"123456789") == 0x29B1
    assert P.crc32(b"123456789") == 0xCBF43926
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 64, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert P.crc16(data) == P.crc16_ccitt_false_table(data) == crc16_bitwise(data)


COBS_VECTORS = [
    ("", "01"),
    ("00", "01 01"),
    ("00 00", "01 01 01"),
    ("11 22 00 33", "03 11 22 02 33"),
    ("11 22 33 44", "05 11 22 33 44"),
    ("11 00 00 00", "02 11 01 01 01"),
]


@pytest.mark.parametrize(("data", "enc"), COBS_VECTORS)
def test_cobs_vectors(data: str, enc: str) -> None:
    assert bytes(P.cobs_encode(_hex(data))) == _hex(enc)
    assert P.cobs_decode(_hex(enc)) == _hex(data)


def test_cobs_254_and_255_byte_runs() -> None:
    run254 = bytes(range(1, 255))
    assert bytes(P.cobs_encode(run254)) == b"\xff" + run254  # canonical: no trailing 0x01
    run255 = bytes(range(1, 256))
    assert bytes(P.cobs_encode(run255)) == b"\xff" + run255[:254] + b"\x02\xff"
    assert P.cobs_decode(b"\xff" + run254 + b"\x01") == run254  # the redundant 0x01 is accepted
    assert bytes(P.cobs_encode(b"\x00" + run254)) == b"\x01\xff" + run254
    assert bytes(P.cobs_encode(run254 + b"\x00")) == b"\xff" + run254 + b"\x01\x01"


@pytest.mark.parametrize("n", [0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 762, 1000, 4104])
@pytest.mark.parametrize("kind", ["zeros", "nonzero", "random", "sparse"])
def test_cobs_round_trip(n: int, kind: str) -> None:
    rng = np.random.default_rng(n)
    if kind == "zeros":
        data = bytes(n)
    elif kind == "nonzero":
        data = rng.integers(1, 256, n, dtype=np.uint8).tobytes()
    elif kind == "random":
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    else:
        data = (rng.integers(1, 256, n) * (rng.random(n) < 0.9)).astype(np.uint8).tobytes()
    enc = bytes(P.cobs_encode(data))
    assert 0 not in enc
    assert len(enc) <= P.max_encoded_size(n)
    assert enc == cobs_encode_textbook(data) == cobs_encode_blocks(data)
    assert P.cobs_decode(enc) == data
    assert cobs_decode_textbook(enc) == (data, True)


def test_cobs_decode_rejects_zero_and_truncation() -> None:
    with pytest.raises(P.CobsError, match="0x00"):
        P.cobs_decode(b"\x03\x11\x00\x22")
    with pytest.raises(P.CobsError, match="truncated"):
        P.cobs_decode(b"\x05\x11\x22")
    with pytest.raises(P.CobsError, match="empty"):
        P.cobs_decode(b"")


# ------------------------------------------------------------------------------------------------ the spec page


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_doc_cobs_table_matches() -> None:
    rows = re.findall(r"^\| `([0-9A-F ]+)` \| `([0-9A-F ]+)` \|$", _doc(), re.M)
    assert len(rows) >= 4
    for data, enc in rows:
        assert bytes(P.cobs_encode(_hex(data))) == _hex(enc), data


def test_doc_example_frames_match_the_codec() -> None:
    block = _doc().split("**Example frames**", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    seen = 0
    for title, body in re.findall(r"^(\S[^\n]*)\n((?:  [^\n]*\n)+)", block, re.M):
        fields = dict(re.findall(r"^  (\w+):\s+([0-9A-F ]+)$", body, re.M))
        wire = _hex(fields["wire"])
        frames = P.FrameDecoder().feed(wire)
        assert len(frames) == 1 and isinstance(frames[0], P.Frame), title
        f = frames[0]
        assert bytes(P.encode_frame(f.msg_type, f.seq, f.payload)) == wire, title
        if "decoded" in fields:
            assert P.frame_bytes(f.msg_type, f.seq, f.payload) == _hex(fields["decoded"]), title
        if "payload" in fields:
            assert f.payload == _hex(fields["payload"]), title
        seen += 1
    assert seen == 5
    frames = P.FrameDecoder().feed(_hex(re.search(r"STEP, seq 0x0102.*\n.*\n.*\n  wire:\s+([0-9A-F ]+)", block)[1]))
    step = P.Step.decode(frames[0].payload)
    assert step.features.tolist() == [256, -128, 0, 512, 1]
    res_wire = re.search(r"RESULT, seq 0x0102.*\n.*\n.*\n  wire:\s+([0-9A-F ]+)", block)[1]
    res = P.Result.decode(P.FrameDecoder().feed(_hex(res_wire))[0].payload)
    assert (res.cycles, res.compute_ticks, res.fired_columns, res.nonzero_deltas, res.flags) == (600, 0, 14, 12, 1)
    assert res.outputs.tolist() == [1000, -20000]


def test_doc_type_and_error_tables_match_the_enums() -> None:
    doc = _doc()
    types = {int(t, 16): name for t, name in re.findall(r"^\| (0x[0-9A-F]{2}) \| (\w+) \|", doc, re.M)}
    assert types == {int(t): t.name for t in P.MsgType}
    table = doc.split("| code | name | when |", 1)[1].split("\n\n", 1)[0]
    codes = {int(c): name for c, name in re.findall(r"^\| (\d+) \| ([a-z_0-9]+) \| ", table, re.M)}
    assert codes == {int(c): c.name.lower() for c in P.ErrorCode}


def test_doc_step_tables_are_the_luts() -> None:
    """The spec's SIG/TANH breakpoints reproduce the recipe's tables (16·rint(16·f(p/256)), saturated)."""
    doc = _doc()
    sig = [int(v) for v in re.search(r"^SIG_STEPS\s*=\s*(.*)$", doc, re.M)[1].split()]
    tanh = [int(v) for v in re.search(r"^TANH_STEPS\s*=\s*(.*)$", doc, re.M)[1].split()]
    for p in range(-1200, 1201):
        want_sig = 256 if p > 879 else 0 if p < -879 else 16 * int(np.rint(16.0 / (1.0 + math.exp(-p / 256.0))))
        want_tanh = 256 if p > 530 else -256 if p < -530 else 16 * int(np.rint(16.0 * math.tanh(p / 256.0)))
        assert 16 * sum(b <= p for b in sig) == want_sig, p
        assert -256 + 16 * sum(b <= p for b in tanh) == want_tanh, p


def test_doc_frame_sizes_of_the_paper_network() -> None:
    assert len(P.encode_frame(P.MsgType.STEP, 0xFFFF, np.full(5, 0x0101, np.int16).tobytes())) == 20
    assert P.wire_size(2 * 5) == 20 and P.wire_size(14 + 4 * 2) == 32
    assert P.model_image_size(2, 5, 128, 2) == 151_560
    assert round(P.wire_time(52, 115200) * 1e3, 2) == 4.51


# ------------------------------------------------------------------------------------------------ messages

MESSAGES = [
    P.Hello(),
    P.Info(
        capabilities=0x5,
        boot_id=0xDEADBEEF,
        model_hash=0x12345678,
        clock_hz=125_000_000,
        timer_hz=1_000_000_000,
        max_payload=1024,
        max_layers=4,
        max_outputs=64,
        max_hidden=1024,
        max_input=512,
        max_image_bytes=1 << 24,
        status=3,
        firmware="legloop-c 0.1",
    ),
    P.Configure(layers=2, input_size=5, hidden=128, outputs=2, theta_x=6, theta_h=511),
    P.ConfigureAck(151_296, 151_560),
    P.LoadBegin(151_560, 0xCAFEBABE),
    P.LoadBeginAck(151_560),
    P.LoadChunk(1020, bytes(range(256)) * 3),
    P.LoadChunkAck(1020, 768),
    P.LoadEnd(),
    P.LoadEndAck(0xCAFEBABE),
    P.ResetState(),
    P.ResetStateAck(),
    P.Step(np.array([256, -128, 0, 512, 32767, -32768], dtype=np.int16)),
    P.Result(2**32 - 1, 12345, 65535, 7, 3, np.array([2**31 - 1, -(2**31), 0], dtype=np.int32)),
    P.SetThresholds(0, 511),
    P.SetThresholdsAck(12, 34),
    P.Stats(),
    P.StatsReply(*range(1, 14)),
    P.Ping(b"\x00\x01\x02hello"),
    P.Pong(b""),
    P.Error(int(P.ErrorCode.NOT_CONFIGURED), int(P.MsgType.STEP), "not configured"),
]


def _same(a: P.Message, b: P.Message) -> bool:
    if type(a) is not type(b):
        return False
    for k, v in vars(a).items():
        w = vars(b)[k]
        if isinstance(v, np.ndarray):
            if not np.array_equal(v, w) or w.dtype != v.dtype:
                return False
        elif v != w:
            return False
    return True


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(msg: P.Message) -> None:
    payload = msg.encode()
    assert _same(type(msg).decode(payload), msg)
    frame = P.FrameDecoder().feed(P.encode_frame(msg.TYPE, 0xABCD, payload))[0]
    assert isinstance(frame, P.Frame) and frame.seq == 0xABCD
    assert _same(P.decode_message(frame), msg)


def test_every_type_has_a_message_class() -> None:
    assert set(P.MESSAGES) == {int(t) for t in P.MsgType}
    for t in P.REQUEST_TYPES:
        assert P.response_type(t) in P.RESPONSE_TYPES


@pytest.mark.parametrize(
    ("cls", "payload", "match"),
    [
        (P.Configure, bytes(11), "CONFIGURE payload must be 12 bytes, got 11"),
        (P.StatsReply, bytes(53), "must be 52 bytes"),
        (P.Step, bytes(3), "even number"),
        (P.Step, b"", "non-zero even"),
        (P.Result, bytes(14), "14 \\+ 4·O"),
        (P.Result, bytes(20), "14 \\+ 4·O"),
        (P.LoadChunk, bytes(4), "at least 5"),
        (P.Info, bytes(33), "at least 34"),
        (P.Error, bytes(1), "2..66"),
    ],
)
def test_bad_lengths_are_refused(cls: type[P.Message], payload: bytes, match: str) -> None:
    with pytest.raises(P.PayloadLengthError, match=match):
        cls.decode(payload)


def test_bad_values_are_refused_with_the_field_named() -> None:
    with pytest.raises(P.FieldValueError, match=r"theta_x=512 .* 0\.\.511"):
        P.Configure(layers=1, input_size=1, hidden=8, outputs=1, theta_x=512).encode()
    with pytest.raises(P.FieldValueError, match="flags"):
        P.Configure.decode(struct.pack("<BBHHBBHH", 1, 1, 1, 8, 1, 0, 0, 0))
    with pytest.raises(P.FieldValueError, match="reserved"):
        P.Configure.decode(struct.pack("<BBHHBBHH", 1, 0, 1, 8, 1, 9, 0, 0))
    with pytest.raises(P.FieldValueError, match=r"theta_h=600"):
        P.SetThresholds.decode(struct.pack("<HH", 0, 600))
    with pytest.raises(P.FieldValueError, match=r"LOAD_BEGIN.total=-1 out of range"):
        P.LoadBegin(-1, 0).encode()
    with pytest.raises(P.FieldValueError, match="must be an integer"):
        P.LoadChunkAck(1.5, 0).encode()  # type: ignore[arg-type]
    with pytest.raises(P.FieldValueError, match="max_payload"):
        P.Info(max_payload=64).encode()
    with pytest.raises(P.FieldValueError, match="int16"):
        P.Step(np.array([40000])).encode()
    with pytest.raises(P.ProtocolError, match="unknown message type 0x42"):
        P.decode_message(P.Frame(1, 0x42, 0, b""))


# ------------------------------------------------------------------------------------------------ decoder


def _stream(n: int, seed: int = 0) -> tuple[bytes, list[bytes]]:
    rng = np.random.default_rng(seed)
    payloads = [rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes() for _ in range(n)]
    return b"".join(bytes(P.encode_frame(7, i, p)) for i, p in enumerate(payloads)), payloads


def test_decoder_any_chunking_gives_the_same_frames() -> None:
    stream, payloads = _stream(40)
    whole = P.FrameDecoder().feed(stream)
    assert [f.payload for f in whole] == payloads and [f.seq for f in whole] == list(range(40))
    d = P.FrameDecoder()
    bytewise = [x for i in range(len(stream)) for x in d.feed(stream[i : i + 1])]
    assert verdicts_of(bytewise) == verdicts_of(whole)
    assert d.buffered == 0


def test_decoder_empty_chunks_and_leading_delimiters_are_ignored() -> None:
    frame = bytes(P.encode_frame(P.MsgType.PING, 1))
    out = P.FrameDecoder().feed(b"\x00\x00" + frame + b"\x00" + frame)
    assert len(out) == 2 and all(isinstance(f, P.Frame) for f in out)


def test_decoder_oversize_run_is_one_resync_and_the_buffer_stays_bounded() -> None:
    d = P.FrameDecoder(max_payload=128)
    frame = bytes(P.encode_frame(P.MsgType.PING, 3, b"x" * 128))
    assert len(frame) - 1 == d.max_encoded  # the largest frame fits exactly
    assert isinstance(d.feed(frame)[0], P.Frame)
    out = []
    for _ in range(100):
        out += d.feed(b"\x55" * 97)
        assert d.buffered <= d.max_encoded
    assert verdicts_of(out) == [("resync",)]
    out = d.feed(b"\x55" * 10 + b"\x00" + frame)  # the run ends at the next delimiter; the next frame is fine
    assert len(out) == 1 and isinstance(out[0], P.Frame)
    out = d.feed(b"\x66" * (d.max_encoded + 1) + b"\x00")  # oversize in one piece
    assert verdicts_of(out) == [("resync",)]


def test_decoder_discard_partial_skips_the_rest_of_that_frame() -> None:
    d = P.FrameDecoder()
    frame = bytes(P.encode_frame(P.MsgType.RESULT, 9, bytes(range(1, 30))))
    assert d.feed(frame[:10]) == []
    assert d.discard_partial() == 10
    assert d.feed(frame[10:]) == []  # the tail of the dropped frame is skipped, not judged
    assert isinstance(d.feed(frame)[0], P.Frame)


def _response_frame() -> bytes:
    payload = P.pack_result(600, 123, 14, 12, 1, np.array([1000, -20000, 0, 7], dtype=np.int32))
    return P.frame_bytes(P.MsgType.RESULT, 0x0102, payload)


def test_every_truncation_is_counted_as_truncated() -> None:
    """The emulator's truncate fault: any non-empty strict prefix of the encoded frame, then 0x00."""
    enc = bytes(P.cobs_encode(_response_frame()))
    for k in range(1, len(enc)):
        out = P.FrameDecoder().feed(enc[:k] + b"\x00")
        assert verdicts_of(out) == [("truncated",)], k


def test_every_corruption_outside_the_length_field_is_a_crc_error() -> None:
    """The emulator's corrupt fault: 1–3 bit flips of the decoded frame, never bits 32..47, then COBS."""
    dec = _response_frame()
    bits = [b for b in range(8 * len(dec)) if not 32 <= b < 48]
    rng = random.Random(0)
    cases = [[b] for b in bits] + [rng.sample(bits, rng.randint(2, 3)) for _ in range(3000)]
    for flips in cases:
        b = bytearray(dec)
        for bit in flips:
            b[bit >> 3] ^= 1 << (bit & 7)
        out = P.FrameDecoder().feed(bytes(P.cobs_encode(bytes(b))) + b"\x00")
        assert verdicts_of(out) == [("crc",)], flips


def test_a_lying_length_field_is_never_accepted_even_with_a_good_crc() -> None:
    dec = bytearray(_response_frame()[:-2])
    true_len = struct.unpack_from("<H", dec, 4)[0]
    for lie in (0, true_len - 1, true_len + 1, 0xFFFF):
        struct.pack_into("<H", dec, 4, lie)
        crc = P.crc16(bytes(dec))
        out = P.FrameDecoder().feed(bytes(P.cobs_encode(bytes(dec) + struct.pack("<H", crc))) + b"\x00")
        assert verdicts_of(out) in ([("truncated",)], [("malformed",)]), lie


def test_decoder_never_raises_on_short_garbage() -> None:
    d = P.FrameDecoder()
    for n in range(1, 12):
        for v in range(256):
            d.feed(bytes([v]) * n + b"\x00")
    assert d.buffered == 0


def test_decoder_fuzz_matches_the_reference_receiver() -> None:
    """Random and mutated frames (bit flips before and after COBS, truncations, insertions, deletions, lost and
    extra delimiters, garbage, oversize runs, lying length fields) fed in random chunks: the decoder never raises,
    keeps its buffer bounded, and gives exactly the reference receiver's verdicts — so it never accepts a frame whose
    CRC or length is wrong."""
    fed = [0]

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        seed=st.integers(0, 2**63 - 1),
        max_payload=st.sampled_from([128, 300, 1024, P.PROTOCOL_MAX_PAYLOAD]),
        max_chunk=st.integers(16, 4096),  # byte-wise feeding: test_decoder_any_chunking_gives_the_same_frames
    )
    def run(seed: int, max_payload: int, max_chunk: int) -> None:
        fuzz_check(seed, FUZZ_FRAMES_PER_EXAMPLE, max_payload, max_chunk)
        fed[0] += FUZZ_FRAMES_PER_EXAMPLE

    run()
    assert fed[0] >= 100_000


# ------------------------------------------------------------------------------------------------ model image


@pytest.mark.parametrize(("layers", "inputs", "hidden"), [(1, 1, 8), (2, 5, 16), (2, 5, 128), (3, 12, 24), (4, 9, 64)])
def test_model_image_size_is_the_weight_image_layout(layers: int, inputs: int, hidden: int) -> None:
    assert P.weight_image_size(layers, inputs, hidden) == image_size(layers, inputs, hidden)
    assert P.model_image_size(layers, inputs, hidden, 3) == image_size(layers, inputs, hidden) + 3 * hidden + 12


def test_model_image_build_and_split() -> None:
    rng = np.random.default_rng(3)
    weights = rng.integers(-128, 128, P.weight_image_size(2, 5, 16), dtype=np.int8).tobytes()
    w = rng.integers(-128, 128, (2, 16), dtype=np.int8)
    b = np.array([-(2**31), 2**31 - 1], dtype=np.int32)
    img = P.build_model_image(weights, w, b)
    assert len(img) == P.model_image_size(2, 5, 16, 2)
    w2, wout, bout = P.split_model_image(img, 2, 5, 16, 2)
    assert w2 == weights and np.array_equal(wout, w) and np.array_equal(bout, b)
    with pytest.raises(P.FieldValueError, match="int8"):
        P.build_model_image(weights, w.astype(np.int16), b)
    with pytest.raises(P.FieldValueError, match="expected 2"):
        P.split_model_image(img[:-1], 2, 5, 16, 2)
