"""Drive the C reference firmware (``firmware_bridge/firmware/``) from Python: build it, feed its test runner.

The firmware's sources ship inside the package, so an installed legloop can build them on demand into any
folder (the package folder may be read-only): :func:`build` runs ``make -C <sources> BUILD=<dir> <targets>``.
:func:`toolchain` says which compilers and emulators are present, so callers can skip with a reason.

The test runner (``test/runner.[ch]``, the same C code on the host and on the emulated board) reads a test case
blob and writes a result stream; :func:`encode_case` / :func:`decode_results` are the Python ends of that format
(``firmware/test/runner.h`` documents it byte by byte). :func:`run_host` and :func:`run_qemu` execute one case.

This module must not import ``hil`` (imports point down the ladder experiments → hil → firmware_bridge).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"

MAGIC_IN = 0x5654474C  # "LGTV"
MAGIC_OUT = 0x5254474C  # "LGTR"
MAGIC_END = 0x4554474C  # "LGTE"
CASE_VERSION = 1
MODE_RUN, MODE_LUT = 0, 1
CASE_ADDR = 0x00200000  # where the QEMU runner expects its case (mps2.ld's CASE region)
CASE_MAX_QEMU = 2 * 1024 * 1024
RUNNER_E_FORMAT, RUNNER_E_TRUNCATED = 100, 101

# QEMU boards: the Cortex-M3 image runs on both, the Cortex-M7 image on the AN500 only.
QEMU_MACHINES = {"m3": "mps2-an385", "m7": "mps2-an500"}

# edgedrnn_status of src/edgedrnn.h
STATUS_NAMES = {
    0: "ok",
    1: "E_LAYERS",
    2: "E_HIDDEN",
    3: "E_INPUT",
    4: "E_IMAGE_SIZE",
    5: "E_THETA",
    6: "E_OUTPUTS",
    7: "E_NULL",
    RUNNER_E_FORMAT: "RUNNER_E_FORMAT",
    RUNNER_E_TRUNCATED: "RUNNER_E_TRUNCATED",
}


class FirmwareError(RuntimeError):
    """A firmware build or run failed (the message carries the tool's output)."""


# ------------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class Toolchain:
    make: str | None
    cc: str | None
    arm_cc: str | None
    qemu: str | None

    def missing(self, *needs: str) -> str | None:
        """A skip reason naming what is missing among ``needs`` ("host", "qemu"), or None if all is there."""
        want = {"make": self.make}
        if "host" in needs:
            want["a C compiler (cc)"] = self.cc
        if "qemu" in needs:
            want["arm-none-eabi-gcc"] = self.arm_cc
            want["qemu-system-arm"] = self.qemu
        absent = [name for name, path in want.items() if path is None]
        if not absent:
            return None
        pkgs = [INSTALL_HINT[name] for name in absent if name in INSTALL_HINT]
        line = f" or `apt-get install -y --no-install-recommends {' '.join(pkgs)}`" if pkgs else ""
        return f"{', '.join(absent)} not found (install as root: `make setup`{line})"


INSTALL_HINT = {
    "make": "make",
    "a C compiler (cc)": "gcc",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
}


def toolchain() -> Toolchain:
    """Which of the firmware's tools are on PATH (``CC`` overrides the host compiler)."""
    cc = os.environ.get("CC", "cc")
    return Toolchain(
        make=shutil.which("make"),
        cc=shutil.which(cc) or shutil.which("gcc") or shutil.which("clang"),
        arm_cc=shutil.which("arm-none-eabi-gcc"),
        qemu=shutil.which("qemu-system-arm"),
    )


def build(
    build_dir: str | os.PathLike,
    targets: list[str],
    *,
    max_hidden: int | None = None,
    jobs: int = 2,
    make_vars: dict[str, object] | None = None,
) -> Path:
    """``make`` the firmware ``targets`` ("host", "sanitize", "qemu-m3", "qemu-m7", …) into ``build_dir``.

    ``make_vars``: more Makefile variables (``MAX_PAYLOAD``, ``MAX_INPUT``, ``MAX_OUTPUTS``, ``MAX_IMAGE_BYTES``).
    """
    build_dir = Path(build_dir)
    missing = [
        p.name for p in (FIRMWARE_DIR / "Makefile", FIRMWARE_DIR / "ports" / "qemu" / "mps2.ld") if not p.is_file()
    ]
    if missing:
        raise FirmwareError(
            f"{FIRMWARE_DIR} lacks {', '.join(missing)}: this installation shipped only the C sources "
            '(pyproject\'s package-data needs "Makefile" and "*.ld" next to "*.c", "*.h")'
        )
    cmd = ["make", "--no-print-directory", "-C", str(FIRMWARE_DIR), f"BUILD={build_dir}", f"-j{jobs}", *targets]
    if max_hidden is not None:
        cmd.append(f"MAX_HIDDEN={int(max_hidden)}")
    for key, value in (make_vars or {}).items():
        cmd.append(f"{key}={value}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FirmwareError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return build_dir


# Which tools each make target needs (for the error that names what is missing).
_TARGET_NEEDS = {
    "host": "host",
    "sanitize": "host",
    "fuzz": "fuzz",
    "fuzz-cov": "fuzz",
    "qemu": "qemu",
    "qemu-m3": "qemu",
    "qemu-m7": "qemu",
}


def cache_root() -> Path:
    """Where :func:`cached_build` puts builds: ``$LEGLOOP_FIRMWARE_CACHE``, else ``$XDG_CACHE_HOME/legloop/firmware``
    (``~/.cache/legloop/firmware``)."""
    env = os.environ.get("LEGLOOP_FIRMWARE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "legloop" / "firmware"


def source_hash(*extra: object) -> str:
    """SHA-256 (16 hex digits) of every file of the firmware's sources, plus ``extra`` (flags, tool paths)."""
    h = hashlib.sha256()
    for path in sorted(p for p in FIRMWARE_DIR.rglob("*") if p.is_file() and "build" not in p.parts):
        if path.suffix in (".pyc",) or "__pycache__" in path.parts:
            continue
        h.update(str(path.relative_to(FIRMWARE_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(repr(extra).encode())
    return h.hexdigest()[:16]


def cached_build(targets: list[str], *, max_hidden: int | None = None, **make_vars: object) -> Path:
    """Build ``targets`` once per version of the sources and flags, into ``cache_root()/<hash>``; returns that folder.

    Works from a read-only installed package (only the cache is written). Concurrent callers (pytest-xdist workers)
    serialise on a lock file. Raises :class:`FirmwareError` naming the missing compiler or emulator and how to
    install it.
    """
    tools = toolchain()
    needs = {_TARGET_NEEDS.get(t, "host") for t in targets}
    reason = tools.missing(*(needs - {"fuzz"})) or (libfuzzer_missing() if "fuzz" in needs else None)
    if reason:
        raise FirmwareError(f"cannot build the firmware ({' '.join(targets)}): {reason}")
    cc = os.environ.get("CC", "cc")
    key = source_hash(sorted(targets), max_hidden, sorted(make_vars.items()), cc, tools.cc, tools.arm_cc)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    out = root / key
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = out / ".done"
        if not done.exists():
            build(out, targets, max_hidden=max_hidden, make_vars=make_vars)
            done.write_text(" ".join(targets) + "\n")
    return out


# ---------------------------------------------------------------------------------------------- test cases


def encode_case(
    image: bytes | np.ndarray,
    layers: int,
    input_size: int,
    hidden: int,
    X: np.ndarray,
    *,
    theta_x: int | np.ndarray = 0,
    theta_h: int | np.ndarray = 0,
    resets: np.ndarray | None = None,
    out_weight: np.ndarray | None = None,
    out_bias: np.ndarray | None = None,
    saturate: bool = False,
    burst_latency: int = 0,
    emit_state: bool = False,
) -> bytes:
    """A runner test case: run ``X`` (int16 [T, width], width = input size or padded) through the net.

    ``theta_x``/``theta_h`` are one value or one per step (set before the step); ``resets`` [T] bool resets the
    state before the marked steps; ``out_weight`` int8 [O, H] and ``out_bias`` int32 [O] add the output layer;
    ``emit_state`` makes the runner write x̂, ĥ, h and the accumulators of every layer after every step.
    """
    img = np.asarray(np.frombuffer(image, dtype=np.uint8) if isinstance(image, bytes | bytearray) else image)
    img = img.view(np.uint8).ravel()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be [T, width], got shape {X.shape}")
    T, width = X.shape
    tx = np.broadcast_to(np.asarray(theta_x, dtype=np.int64), (T,))
    th = np.broadcast_to(np.asarray(theta_h, dtype=np.int64), (T,))
    rs = np.zeros(T, dtype=bool) if resets is None else np.asarray(resets, dtype=bool)
    n_out = 0 if out_weight is None else int(np.asarray(out_weight).shape[0])
    parts = [img.tobytes()]
    if n_out:
        parts.append(np.asarray(out_weight, dtype=np.int8).reshape(n_out, hidden).tobytes())
        parts.append(np.asarray(out_bias, dtype="<i4").reshape(n_out).tobytes())
    rec = np.zeros((T, 3 + width), dtype="<u2")
    rec[:, 0] = tx
    rec[:, 1] = th
    rec[:, 2] = rs
    rec[:, 3:] = X.astype("<i2").view("<u2")
    parts.append(rec.tobytes())
    body = b"".join(parts)
    header = struct.pack(
        "<IHHIHHHHHHHHII",
        MAGIC_IN,
        CASE_VERSION,
        MODE_RUN,
        36 + len(body),
        layers,
        input_size,
        hidden,
        n_out,
        width,
        int(bool(saturate)) | (2 if emit_state else 0),
        burst_latency,
        0,
        T,
        img.size,
    )
    return header + body


def encode_lut_case() -> bytes:
    """A case that makes the runner dump SIG(−2048..2047) and TANH(−1024..1023)."""
    return struct.pack("<IHHIHHHHHHHHII", MAGIC_IN, CASE_VERSION, MODE_LUT, 36, *([0] * 10))


@dataclass
class RunnerResults:
    """What the runner wrote. Per-step arrays have one row per completed step."""

    status: int
    steps: int
    capacity: dict[str, int]  # max_layers, max_hidden, max_input, max_outputs, tick_hz
    cycles: np.ndarray  # int64 [T]
    fired_columns: np.ndarray
    nonzero_deltas: np.ndarray
    ticks_step: np.ndarray  # hal_ticks around edgedrnn_step
    ticks_output: np.ndarray  # hal_ticks around edgedrnn_output
    layer_fired: np.ndarray  # int64 [T, L]
    layer_mac_cycles: np.ndarray
    layer_act_cycles: np.ndarray
    h: np.ndarray  # int16 [T, H]
    out: np.ndarray  # int32 [T, O]
    state: dict[str, list[np.ndarray]] | None = None  # emit_state: x_hat [T, I_l], h_hat, h [T, H], acc [T, 4, H]
    sig: np.ndarray | None = None  # LUT mode: SIG(-2048..2047)
    tanh: np.ndarray | None = None  # LUT mode: TANH(-1024..1023)

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, str(self.status))


_CAPACITY = ("max_layers", "max_hidden", "max_input", "max_outputs", "tick_hz")


def decode_results(
    data: bytes,
    layers: int = 0,
    hidden: int = 0,
    n_out: int = 0,
    *,
    lut: bool = False,
    state_input: int | None = None,
) -> RunnerResults:
    """Parse a runner result stream (the geometry of the case tells the record size).

    ``state_input``: the padded layer-1 input width, for a case encoded with ``emit_state``.
    """
    if len(data) < 24 + 12:
        raise FirmwareError(f"runner output too short ({len(data)} bytes): {data[:64]!r}")
    head = struct.unpack_from("<6I", data, 0)
    if head[0] != MAGIC_OUT:
        raise FirmwareError(f"runner output does not start with LGTR: {data[:16]!r}")
    capacity = dict(zip(_CAPACITY, head[1:], strict=True))
    magic, status, steps = struct.unpack_from("<3I", data, len(data) - 12)
    if magic != MAGIC_END:
        raise FirmwareError(f"runner output has no trailer (cut short?): ends {data[-16:]!r}")
    body = data[24:-12]
    empty = np.zeros(0, dtype=np.int64)
    res = RunnerResults(
        status=status,
        steps=steps,
        capacity=capacity,
        cycles=empty,
        fired_columns=empty,
        nonzero_deltas=empty,
        ticks_step=empty,
        ticks_output=empty,
        layer_fired=np.zeros((0, layers), dtype=np.int64),
        layer_mac_cycles=np.zeros((0, layers), dtype=np.int64),
        layer_act_cycles=np.zeros((0, layers), dtype=np.int64),
        h=np.zeros((0, hidden), dtype=np.int16),
        out=np.zeros((0, n_out), dtype=np.int32),
    )
    if lut:
        v = np.frombuffer(body, dtype="<i2")
        if v.size != 4096 + 2048:
            raise FirmwareError(f"LUT dump has {v.size} values; expected 6144")
        res.sig, res.tanh = v[:4096].astype(np.int64), v[4096:].astype(np.int64)
        return res
    fields: list[tuple[str, str, tuple[int, ...]]] = [
        ("u", "<u4", (5 + 3 * layers,)),
        ("h", "<i2", (hidden,)),
        ("out", "<i4", (n_out,)),
    ]
    if state_input is not None:
        for layer in range(layers):
            fields += [
                (f"x_hat{layer}", "<i2", (state_input if layer == 0 else hidden,)),
                (f"h_hat{layer}", "<i2", (hidden,)),
                (f"h{layer}", "<i2", (hidden,)),
                (f"acc{layer}", "<i4", (4, hidden)),
            ]
    dt = np.dtype(fields)
    if len(body) % dt.itemsize:
        raise FirmwareError(f"{len(body)} result bytes is not a whole number of {dt.itemsize}-byte step records")
    T = len(body) // dt.itemsize
    arr = np.frombuffer(body, dtype=dt, count=T)
    if state_input is not None:
        res.state = {
            name: [arr[f"{name}{layer}"].copy() for layer in range(layers)] for name in ("x_hat", "h_hat", "h", "acc")
        }
    u = arr["u"].astype(np.int64).reshape(T, 5 + 3 * layers)
    per_layer = u[:, 5:].reshape(T, layers, 3)
    res.cycles, res.fired_columns, res.nonzero_deltas = u[:, 0], u[:, 1], u[:, 2]
    res.ticks_step, res.ticks_output = u[:, 3], u[:, 4]
    res.layer_fired = per_layer[:, :, 0]
    res.layer_mac_cycles = per_layer[:, :, 1]
    res.layer_act_cycles = per_layer[:, :, 2]
    res.h = arr["h"].astype(np.int16).reshape(T, hidden)
    res.out = arr["out"].astype(np.int32).reshape(T, n_out)
    return res


# ---------------------------------------------------------------------------------------------- running


def run_host(runner: str | os.PathLike, case: bytes, *, timeout: float = 60.0) -> tuple[int, bytes]:
    """Run a host-built ``edgedrnn-runner`` on ``case``; returns (exit status, result bytes)."""
    proc = subprocess.run([str(runner), "-"], input=case, capture_output=True, timeout=timeout, check=False)
    if proc.stderr:
        # sanitizer reports land here; a clean run writes nothing to stderr
        err = proc.stderr.decode(errors="replace")
        raise FirmwareError(f"{runner} wrote to stderr (exit {proc.returncode}):\n{err}")
    return proc.returncode, proc.stdout


def qemu_command(elf: str | os.PathLike, machine: str, *, icount: bool = True) -> list[str]:
    """The QEMU command line of a bare-metal MPS2 image with semihosting exit (serial and loader not included)."""
    cmd = ["qemu-system-arm", "-M", machine, "-display", "none", "-monitor", "none", "-nodefaults"]
    if icount:
        cmd += ["-icount", "shift=0"]  # deterministic: SysTick then follows the retired-instruction count
    return [*cmd, "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]


def run_qemu(
    runner_elf: str | os.PathLike,
    case: bytes,
    machine: str = "mps2-an385",
    *,
    icount: bool = True,
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """Run the QEMU-built ``edgedrnn-runner.elf`` on ``case``; returns (exit status, result bytes from UART0)."""
    with tempfile.TemporaryDirectory(prefix="legloop-qemu-") as tmp:
        case_path = Path(tmp) / "case.bin"
        out_path = Path(tmp) / "uart0.bin"
        case_path.write_bytes(case)
        cmd = [
            *qemu_command(runner_elf, machine, icount=icount),
            "-serial",
            f"file:{out_path}",
            "-device",
            f"loader,file={case_path},addr={CASE_ADDR:#x},force-raw=on",
        ]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        data = out_path.read_bytes() if out_path.exists() else b""
        if not data:
            raise FirmwareError(f"{' '.join(cmd)} produced no UART output (exit {proc.returncode}):\n{proc.stderr!r}")
        return proc.returncode, data


# ---------------------------------------------------------------------------------------------- fuzzing

FUZZ_CAPACITY = {"max_hidden": 16, "max_input": 8, "max_outputs": 4, "max_payload": 256}  # Makefile FUZZ_CFLAGS


def libfuzzer_missing() -> str | None:
    """A skip reason if clang cannot link a libFuzzer target here, else None."""
    clang = os.environ.get("CLANG", "clang")
    if shutil.which(clang) is None:
        return f"{clang} not found (install as root: `make setup` or `apt-get install -y clang libclang-rt-14-dev`)"
    with tempfile.TemporaryDirectory(prefix="legloop-fuzzcheck-") as tmp:
        src = Path(tmp) / "f.c"
        src.write_text(
            "#include <stddef.h>\n#include <stdint.h>\n"
            "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n"
        )
        proc = subprocess.run(
            [clang, "-fsanitize=fuzzer", str(src), "-o", str(Path(tmp) / "f")], capture_output=True, check=False
        )
    if proc.returncode != 0:
        return (
            f"{clang} cannot link -fsanitize=fuzzer (libFuzzer runtime missing: on Debian 12 "
            "`apt-get install -y libclang-rt-14-dev`, or `make setup` as root)"
        )
    return None


def fuzz_seed_corpus(folder: str | os.PathLike, seed: int = 0) -> list[Path]:
    """Write the libFuzzer seed corpus of ``test/fuzz_proto.c`` into ``folder``: valid frames of every request
    type, whole sessions (configure, load, reset, steps, thresholds, stats, ping; with and without the governor)
    and the usual refusals, each in
    the target's two input modes (raw wire bytes; records of frame bodies that the harness completes with a CRC)."""
    from . import protocol as P

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cap = FUZZ_CAPACITY
    AUTO_LOAD = None  # a record of length 0: the harness uploads an image of the configured size

    def session(L: int, I: int, H: int, O: int, *, upload: bool, governed: int = 0) -> list:
        out: list = [(P.MsgType.HELLO, b""), (P.MsgType.CONFIGURE, P.Configure(L, 0, I, H, O, 0, 2, 3).encode())]
        if governed:  # the split (1) or worst (2) governor on a tight budget (protocol 1.1): Θ goes up on most steps
            out.append((P.MsgType.SET_GOVERNOR, P.SetGovernor(governed, 1, 0, 60 * L + 40).encode()))
        if upload:  # the real chunks (raw wire mode has no auto-load)
            image = rng.integers(-48, 48, P.model_image_size(L, I, H, O)).astype(np.int8).tobytes()
            out.append((P.MsgType.LOAD_BEGIN, P.LoadBegin(len(image), P.crc32(image)).encode()))
            for off in range(0, len(image), 240):  # a record holds at most 255 bytes
                out.append((P.MsgType.LOAD_CHUNK, P.LoadChunk(off, image[off : off + 240]).encode()))
            out.append((P.MsgType.LOAD_END, b""))
        else:
            out.append(AUTO_LOAD)
        out.append((P.MsgType.RESET_STATE, b""))
        for _ in range(3):
            out.append((P.MsgType.STEP, rng.integers(-600, 600, I).astype("<i2").tobytes()))
        out += [
            (P.MsgType.SET_THRESHOLDS, P.SetThresholds(0, 0).encode()),
            (P.MsgType.STEP, rng.integers(-600, 600, I).astype("<i2").tobytes()),
            (P.MsgType.LOAD_END, b""),
            (P.MsgType.STATS, b""),
            (P.MsgType.PING, b"ping\x00"),
        ]
        return out

    refusals = [
        (P.MsgType.STEP, b"\x00\x00"),  # not configured
        (P.MsgType.LOAD_CHUNK, b"\x00\x00\x00\x00\x01"),
        (P.MsgType.LOAD_END, b""),
        (P.MsgType.RESET_STATE, b""),
        (P.MsgType.SET_THRESHOLDS, b"\x00\x00\x00\x00"),
        (P.MsgType.SET_GOVERNOR, bytes(8)),  # not configured
        (P.MsgType.CONFIGURE, P.Configure(4, 0, cap["max_input"], cap["max_hidden"], cap["max_outputs"]).encode()),
        (P.MsgType.CONFIGURE, P.Configure(5, 0, 1, 8, 1).encode()),  # too large
        (P.MsgType.CONFIGURE, bytes(12)),  # bad values
        (P.MsgType.CONFIGURE, b"\x01"),  # bad length
        (P.MsgType.LOAD_BEGIN, bytes(8)),
        (P.MsgType.STATS, b"x"),
        (P.MsgType.PING, bytes(cap["max_payload"])),
        (0x55, b""),
        (P.MsgType.INFO, b""),
    ]
    sessions = {
        "session-1l8h": (session(1, 1, 8, 1, upload=True), True),
        "session-2l16h": (session(2, 5, 16, 2, upload=False), False),
        "session-4l16h": (session(4, 8, 16, 4, upload=False), False),
        "session-2l16h-governed": (session(2, 5, 16, 2, upload=False, governed=1), False),
        "session-1l8h-governed": (session(1, 1, 8, 1, upload=True, governed=1), True),
        "session-2l16h-worst": (session(2, 5, 16, 2, upload=False, governed=2), False),
        "session-1l8h-worst": (session(1, 1, 8, 1, upload=True, governed=2), True),
        "refusals": (refusals, True),
    }
    for t in P.REQUEST_TYPES:  # one frame of each type alone
        sessions[f"type{int(t):02x}"] = ([(int(t), b"")], True)
    written = []
    for name, (frames, wire_too) in sessions.items():
        records = bytearray()
        for k, f in enumerate(frames):
            if f is AUTO_LOAD:
                records.append(0)
                continue
            body = P.frame_bytes(f[0], k, f[1])[:-2]
            if len(body) <= 255:  # longer frames only in wire mode
                records += bytes((len(body),)) + body
        blobs = [("rec", b"\x01" + bytes(records))]
        if wire_too:
            blobs.append(
                ("wire", b"\x00" + b"".join(bytes(P.encode_frame(t, k, p)) for k, (t, p) in enumerate(frames)))
            )
        for mode, data in blobs:
            path = folder / f"{name}-{mode}"
            path.write_bytes(data)
            written.append(path)
    bad = bytearray(P.encode_frame(P.MsgType.HELLO, 1))
    bad[3] ^= 0x10  # a CRC error
    garbage = b"\x00\x13\x37garbage\x00" + bytes(bad) + bytes(P.encode_frame(P.MsgType.HELLO, 2))[:-3] + b"\x00"
    (folder / "garbage-wire").write_bytes(b"\x00" + garbage + b"\xff" * 600 + b"\x00")
    written.append(folder / "garbage-wire")
    return written
