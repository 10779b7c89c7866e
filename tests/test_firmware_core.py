"""The C reference firmware (firmware_bridge/firmware/), phase 1: the delta-GRU core and the ports, no protocol.

The C core must be bit-identical to the Python EdgeDRNN model (h, cycles, fired columns, non-zero deltas,
per-layer figures, and the int32 output-layer accumulators of ``backend_kernel``):
  (a) on the RTL test-bench vectors, on the host build and on the QEMU builds (Cortex-M3 image on the AN385 and
      the AN500 board, Cortex-M7 image on the AN500);
  (b) on random nets (sizes up to 2L-128H, random run-time Θ, resets, saturating inputs, wrapping and saturating
      arithmetic) on the AddressSanitizer + UBSan build, and a few on QEMU;
  (c) its σ/tanh LUTs equal the RTL's dumps.
Plus the C API's argument checks, and the HAL of each port over a pseudo-terminal (host process, QEMU board).

The firmware is built once per session into a temp folder. Tests skip with the reason when make, a C compiler,
arm-none-eabi-gcc or qemu-system-arm is missing (``make setup`` installs them as root on Debian), and the
conformance tests when LEGLOOP_CONFORMANCE_DIR is unset.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from firmware_bridge import c_firmware as cf
from firmware_bridge.bundle import Bundle
from firmware_bridge.rtl_hex import parse_hex_activations, read_lut_dump
from firmware_bridge.weight_image import LayerWeights, build_image, read_image
from hil.edgedrnn import EdgeDRNNBackend, EdgeDRNNModel
from hil.edgedrnn.synthetic import image_of, random_layers, smooth_inputs

TB_LAYERS, TB_INPUT, TB_HIDDEN = 2, 5, 16

# ------------------------------------------------------------------------------------------------ builds

_GROUPS = {"host": ("host", "host"), "asan": ("sanitize", "host"), "qemu": ("qemu", "qemu")}


class Builds:
    """Builds each target group at most once per session; a build failure fails every test that needs it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tools = cf.toolchain()
        self._done: dict[str, Exception | None] = {}

    def need(self, group: str) -> Path:
        make_target, needs = _GROUPS[group]
        reason = self.tools.missing(needs)
        if reason:
            pytest.skip(reason)
        if group not in self._done:
            try:
                cf.build(self.root, [make_target])
                self._done[group] = None
            except cf.FirmwareError as exc:
                self._done[group] = exc
        if self._done[group] is not None:
            pytest.fail(f"firmware build failed: {self._done[group]}")
        return self.root


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return Builds(tmp_path_factory.mktemp("firmware"))


# (build folder, QEMU board or None for the host)
TARGETS = {
    "host": ("host", None),
    "asan": ("asan", None),
    "m3@an385": ("qemu-m3", "mps2-an385"),
    "m3@an500": ("qemu-m3", "mps2-an500"),
    "m7@an500": ("qemu-m7", "mps2-an500"),
}
QEMU_TARGETS = ["m3@an385", "m3@an500", "m7@an500"]


def run_case(builds: Builds, target: str, case: bytes) -> tuple[int, bytes]:
    folder, machine = TARGETS[target]
    if machine is None:
        root = builds.need(folder)
        return cf.run_host(root / folder / "edgedrnn-runner", case)
    root = builds.need("qemu")
    return cf.run_qemu(root / folder / "edgedrnn-runner.elf", case, machine)


def run_ok(
    builds: Builds, target: str, case: bytes, layers: int, hidden: int, n_out: int, state_input: int | None = None
) -> cf.RunnerResults:
    rc, data = run_case(builds, target, case)
    res = cf.decode_results(data, layers, hidden, n_out, state_input=state_input)
    assert res.status == 0, f"runner status {res.status_name} after {res.steps} steps"
    assert rc == 0
    return res


# ---------------------------------------------------------------------------------------- (a) conformance


@pytest.fixture
def tb_dir(conformance_dir: Path) -> Path:
    d = conformance_dir / "edgedrnn"
    if not d.is_dir():
        pytest.skip(f"{d} does not exist")
    return d


@functools.cache
def _load_tb(d: Path) -> dict:
    """The test bench's vectors and the Python model's run over them (once per session)."""
    image = read_image(d / "edgedrnn_tb_params.txt")
    stim = parse_hex_activations((d / "edgedrnn_tb_stim.txt").read_text(), 8)
    gold = parse_hex_activations((d / "edgedrnn_tb_gold_rnn.txt").read_text(), TB_HIDDEN)
    rtl = np.loadtxt(d / "edgedrnn_tb_cycles_th0.csv", delimiter=",", skiprows=1, dtype=np.int64)
    model = EdgeDRNNModel(image, TB_LAYERS, TB_INPUT, TB_HIDDEN, 0, 0).run(stim)
    return {"image": image, "stim": stim, "gold": gold, "rtl": rtl, "model": model}


@pytest.fixture
def tb(tb_dir: Path) -> dict:
    return _load_tb(tb_dir)


@pytest.mark.parametrize("target", ["host", *QEMU_TARGETS])
def test_conformance_vectors_bit_identical(builds: Builds, tb: dict, target: str) -> None:
    case = cf.encode_case(tb["image"], TB_LAYERS, TB_INPUT, TB_HIDDEN, tb["stim"])  # stim is the padded width
    res = run_ok(builds, target, case, TB_LAYERS, TB_HIDDEN, 0)
    gold, model = tb["gold"], tb["model"]
    assert res.steps == len(gold) == 1000
    bad = np.argwhere(res.h != gold)
    assert bad.size == 0, f"{len(bad)} of {gold.size} h values differ from the RTL; first at (step, unit) {bad[0]}"
    np.testing.assert_array_equal(res.cycles, model.cycles, err_msg="cycles differ from the Python model")
    np.testing.assert_array_equal(res.fired_columns, tb["rtl"][:, 2], err_msg="fired columns differ from the RTL")
    np.testing.assert_array_equal(res.nonzero_deltas, model.nonzero_deltas)
    np.testing.assert_array_equal(res.layer_fired, model.layer_fired)
    np.testing.assert_array_equal(res.layer_mac_cycles, model.layer_mac_cycles)
    np.testing.assert_array_equal(res.layer_act_cycles, model.layer_act_cycles)


def test_conformance_vectors_with_the_unpadded_input(builds: Builds, tb: dict) -> None:
    case = cf.encode_case(tb["image"], TB_LAYERS, TB_INPUT, TB_HIDDEN, tb["stim"][:, :TB_INPUT])
    res = run_ok(builds, "asan", case, TB_LAYERS, TB_HIDDEN, 0)
    np.testing.assert_array_equal(res.h, tb["gold"])
    np.testing.assert_array_equal(res.cycles, tb["model"].cycles)


# ------------------------------------------------------------------------------------------------ (c) LUTs


@pytest.mark.parametrize("target", ["asan", "m3@an385"])
def test_luts_equal_the_rtl_dumps(builds: Builds, tb_dir: Path, target: str) -> None:
    rc, data = run_case(builds, target, cf.encode_lut_case())
    res = cf.decode_results(data, lut=True)
    assert rc == 0 and res.status == 0
    for name, ours, lo, hi in (("sigmoid_lut.txt", res.sig, -2048, 2047), ("tanh_lut.txt", res.tanh, -1024, 1023)):
        idx, val = read_lut_dump(str(tb_dir / name))
        assert idx[0] == lo and idx[-1] == hi
        np.testing.assert_array_equal(ours, val, err_msg=name)


def test_lut_source_is_what_the_generator_writes() -> None:
    gen = cf.FIRMWARE_DIR / "tools" / "gen_lut.py"
    proc = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------- (b) random nets


def _overflow_layers(rng: np.random.Generator, layers: int, inputs: int, hidden: int) -> list[LayerWeights]:
    """Full-range int8 weights: with saturating inputs the 24-bit accumulators and the 16-bit deltas overflow."""
    out = []
    for layer in range(layers):
        i_l = inputs if layer == 0 else hidden
        w = [rng.integers(-128, 128, shape, dtype=np.int8) for shape in ((3 * hidden, i_l), (3 * hidden, hidden))]
        out.append(LayerWeights(w[0], w[1], rng.integers(-128, 128, 3 * hidden, dtype=np.int8)))
    return out


def _inputs(rng: np.random.Generator, steps: int, width: int) -> np.ndarray:
    """Smooth stretches, white noise, and extreme values (±32767, −32768, big jumps) so deltas wrap or clamp."""
    X = smooth_inputs(rng, steps, width, period=40.0, amplitude=2.0).astype(np.int64)
    noisy = rng.random(steps) < 0.2
    X[noisy] = rng.normal(0, 300, (int(noisy.sum()), width))
    extreme = rng.random((steps, width)) < 0.05
    X[extreme] = rng.choice([-32768, -32767, 32767, 20000, -20000], int(extreme.sum()))
    return np.clip(X, -32768, 32767).astype(np.int16)


def _schedule(rng: np.random.Generator, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Θx, Θh per step (piecewise constant, 0..511, often 0 or small) and a few resets."""
    tx, th = np.zeros(steps, np.int64), np.zeros(steps, np.int64)
    for start in range(0, steps, 40):
        tx[start:], th[start:] = (rng.choice([0, 1, 2, 4, 8, 16, 64, 511]) for _ in range(2))
    resets = np.zeros(steps, dtype=bool)
    resets[rng.choice(np.arange(1, steps), 2, replace=False)] = True
    return tx, th, resets


def _python_reference(bundle: Bundle, X, tx, th, resets, saturate: bool, lam: int) -> dict[str, np.ndarray]:
    """EdgeDRNNBackend (EdgeDRNNModel + backend_kernel's output layer) step by step. With mean 0, std 1, scale 1,
    offset 0 the float path is exact: features X/256 quantise back to X, outputs are the int32 accumulators/2^15."""
    be = EdgeDRNNBackend(bundle, saturate=saturate, burst_latency=lam)
    m = be.model
    rows: dict[str, list] = {k: [] for k in ("h", "out", "cycles", "fired", "deltas", "lf", "lm", "la", "state")}
    for t in range(len(X)):
        if resets[t]:
            be.reset()
        m.theta_x, m.theta_h = int(tx[t]), int(th[t])
        r = be.step(X[t] / 256.0)
        rows["h"].append(r.h.copy())
        rows["out"].append(np.rint(r.outputs * 32768.0).astype(np.int64))
        rows["cycles"].append(r.cycles)
        rows["fired"].append(m.fired_columns)
        rows["deltas"].append(m.nonzero_deltas)
        rows["lf"].append(m.layer_fired)
        rows["lm"].append(m.layer_mac_cycles)
        rows["la"].append(m.layer_act_cycles)
        rows["state"].append(m.state)
    out = {k: np.array(v) for k, v in rows.items() if k != "state"}
    out["state"] = rows["state"]
    return out


RANDOM_NETS = [
    # id, layers, inputs, hidden, outputs, steps, saturate, λ, weights
    ("1L-8H", 1, 3, 8, 1, 300, False, 0, "gru"),
    ("2L-64H", 2, 7, 64, 2, 300, False, 0, "gru"),
    ("2L-128H", 2, 13, 128, 4, 200, False, 2, "gru"),
    ("3L-32H-saturating", 3, 9, 32, 3, 300, True, 0, "gru"),
    ("4L-16H-overflow", 4, 16, 16, 8, 300, False, 1, "overflow"),
    ("2L-24H-overflow-saturating", 2, 5, 24, 2, 300, True, 0, "overflow"),
]


def _bundle_and_inputs(seed: int, layers, inputs, hidden, outputs, steps, weights="overflow"):
    rng = np.random.default_rng(seed)
    if weights == "gru":
        net = random_layers(rng, layers, inputs, hidden, 1.5)
    else:
        net = _overflow_layers(rng, layers, inputs, hidden)
    w_out = rng.integers(-128, 128, (outputs, hidden), dtype=np.int8)
    b_out = rng.integers(-(2**31), 2**31, outputs, dtype=np.int64)
    b_out[0] = 2**31 - 1 - int(rng.integers(0, 2**16))  # near INT32_MAX: the MAC wraps like the ARM's int32
    bundle = Bundle(
        image=image_of(net),
        layers=layers,
        input_size=inputs,
        hidden=hidden,
        theta_x=0,
        theta_h=0,
        out_weight=w_out,
        out_bias=b_out.astype(np.int32),
        input_mean=np.zeros(inputs, np.float32),
        input_std=np.ones(inputs, np.float32),
    )
    X = _inputs(rng, steps, inputs)
    tx, th, resets = _schedule(rng, steps)
    return bundle, X, tx, th, resets


def _random_case(seed: int, layers, inputs, hidden, outputs, steps, saturate, lam, weights):
    bundle, X, tx, th, resets = _bundle_and_inputs(seed, layers, inputs, hidden, outputs, steps, weights)
    case = cf.encode_case(
        bundle.image,
        layers,
        inputs,
        hidden,
        X,
        theta_x=tx,
        theta_h=th,
        resets=resets,
        out_weight=bundle.out_weight,
        out_bias=bundle.out_bias,
        saturate=saturate,
        burst_latency=lam,
        emit_state=True,
    )
    ref = _python_reference(bundle, X, tx, th, resets, saturate, lam)
    return case, ref


def _assert_matches(res: cf.RunnerResults, ref: dict) -> None:
    bad = np.argwhere(res.h != ref["h"])
    assert bad.size == 0, f"{len(bad)} h values differ; first at (step, unit) {tuple(bad[0])}"
    np.testing.assert_array_equal(res.out, ref["out"], err_msg="output-layer accumulators")
    np.testing.assert_array_equal(res.cycles, ref["cycles"], err_msg="cycles")
    np.testing.assert_array_equal(res.fired_columns, ref["fired"], err_msg="fired columns")
    np.testing.assert_array_equal(res.nonzero_deltas, ref["deltas"], err_msg="non-zero deltas")
    np.testing.assert_array_equal(res.layer_fired, ref["lf"])
    np.testing.assert_array_equal(res.layer_mac_cycles, ref["lm"])
    np.testing.assert_array_equal(res.layer_act_cycles, ref["la"])
    if res.state is not None:  # the carried state too: x̂, ĥ, h and the 24-bit accumulators of every layer
        for layer in range(res.layer_fired.shape[1]):
            width = res.state["x_hat"][layer].shape[1]
            for t, st in enumerate(ref["state"]):
                acc = np.stack([st["m_r"][layer], st["m_z"][layer], st["m_nx"][layer], st["m_nh"][layer]])
                where = f"layer {layer}, step {t}"
                np.testing.assert_array_equal(res.state["x_hat"][layer][t], st["x_hat"][layer, :width], where)
                np.testing.assert_array_equal(res.state["h_hat"][layer][t], st["h_hat"][layer], where)
                np.testing.assert_array_equal(res.state["h"][layer][t], st["h"][layer], where)
                np.testing.assert_array_equal(res.state["acc"][layer][t], acc, f"accumulators, {where}")


@pytest.mark.parametrize(
    ("name", "layers", "inputs", "hidden", "outputs", "steps", "saturate", "lam", "weights"),
    RANDOM_NETS,
    ids=[n[0] for n in RANDOM_NETS],
)
def test_random_nets_bit_identical_under_sanitizers(
    builds: Builds, name, layers, inputs, hidden, outputs, steps, saturate, lam, weights
) -> None:
    seed = RANDOM_NETS.index(next(n for n in RANDOM_NETS if n[0] == name))
    case, ref = _random_case(seed, layers, inputs, hidden, outputs, steps, saturate, lam, weights)
    res = run_ok(builds, "asan", case, layers, hidden, outputs, state_input=-(-inputs // 8) * 8)
    assert res.steps == steps
    if weights == "overflow":  # the case really reaches the overflow paths: wrapping and clamping part ways
        other = _python_reference(*_bundle_and_inputs(seed, layers, inputs, hidden, outputs, steps), not saturate, lam)
        assert not np.array_equal(other["h"], ref["h"])
    _assert_matches(res, ref)


@pytest.mark.parametrize("target", ["m3@an385", "m7@an500"])
@pytest.mark.parametrize("saturate", [False, True], ids=["wrap", "saturate"])
def test_random_net_bit_identical_on_qemu(builds: Builds, target: str, saturate: bool) -> None:
    case, ref = _random_case(42, 2, 7, 64, 2, 120, saturate, 0, "overflow")
    res = run_ok(builds, target, case, 2, 64, 2, state_input=8)
    _assert_matches(res, ref)


def test_padded_input_width_fires_the_padding_columns_like_the_model(builds: Builds) -> None:
    # Given the padded width, non-zero padding inputs fire (zero-weight) columns in the Python model: same here.
    rng = np.random.default_rng(7)
    net = random_layers(rng, 2, 5, 16)
    X = rng.integers(-600, 600, (100, 8)).astype(np.int16)
    ref = EdgeDRNNModel(image_of(net), 2, 5, 16, 3, 2).run(X)
    res = run_ok(builds, "asan", cf.encode_case(image_of(net), 2, 5, 16, X, theta_x=3, theta_h=2), 2, 16, 0)
    assert ref.layer_fired[:, 0].max() > 1 + 5  # some padding columns did fire
    np.testing.assert_array_equal(res.h, ref.h)
    np.testing.assert_array_equal(res.cycles, ref.cycles)
    np.testing.assert_array_equal(res.fired_columns, ref.fired_columns)


# --------------------------------------------------------------------------------------------- C API, errors


def test_c_api_checks(builds: Builds) -> None:
    root = builds.need("asan")
    proc = subprocess.run([root / "asan" / "test-api"], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    assert re.search(r"^\d+ passed, 0 failed$", proc.stdout, re.M), proc.stdout


def _small_case(**kw) -> bytes:
    img = build_image([np.ones((48, 5), np.int8)], [np.ones((48, 16), np.int8)], [np.zeros(48, np.int8)])
    args = {"image": img, "layers": 1, "input_size": 5, "hidden": 16, "X": np.ones((10, 5), np.int16)}
    args.update(kw)
    return cf.encode_case(args.pop("image"), args.pop("layers"), args.pop("input_size"), args.pop("hidden"), **args)


def _with_total(case: bytes) -> bytes:
    return case[:8] + len(case).to_bytes(4, "little") + case[12:]


@pytest.mark.parametrize(
    ("case", "status", "steps"),
    [
        (lambda: _small_case(theta_x=np.r_[np.zeros(4), 512, np.zeros(5)].astype(int)), "E_THETA", 4),
        (lambda: _small_case(image=bytes(100)), "E_IMAGE_SIZE", 0),
        (lambda: _small_case(hidden=12), "E_HIDDEN", 0),
        (lambda: _small_case(layers=5), "E_LAYERS", 0),
        (lambda: _small_case(X=np.ones((10, 6), np.int16)), "E_INPUT", 0),
        (lambda: _small_case()[:-7], "RUNNER_E_TRUNCATED", 0),  # shorter than its header says
        (lambda: _with_total(_small_case()[:-7]), "RUNNER_E_TRUNCATED", 9),  # last step record cut
        (lambda: b"LGTX" + _small_case()[4:], "RUNNER_E_FORMAT", 0),
    ],
    ids=["theta-512", "image-size", "hidden-12", "layers-5", "input-width", "short", "truncated", "bad-magic"],
)
def test_runner_reports_bad_cases(builds: Builds, case, status: str, steps: int) -> None:
    rc, data = run_case(builds, "asan", case())
    res = cf.decode_results(data, 1, 16, 0)
    assert (res.status_name, res.steps) == (status, steps)
    assert rc == res.status


def test_capacity_is_the_builds(builds: Builds) -> None:
    rc, data = run_case(builds, "host", _small_case())
    res = cf.decode_results(data, 1, 16, 0)
    assert rc == 0
    assert res.capacity == {
        "max_layers": 4,
        "max_hidden": 128,
        "max_input": 64,
        "max_outputs": 8,
        "tick_hz": 1_000_000_000,
    }


# ----------------------------------------------------------------------------------------------- the ports


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ping(s: serial.Serial, seq: int, data: bytes) -> None:
    """One PING → PONG exchange in protocol frames (the phase-2 app serves the board protocol)."""
    from firmware_bridge import protocol as P

    s.write(P.encode_frame(P.MsgType.PING, seq, data))
    dec = P.FrameDecoder()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for item in dec.feed(s.read(max(1, s.in_waiting))):
            assert isinstance(item, P.Frame), item
            assert (item.msg_type, item.seq, item.payload) == (P.MsgType.PONG, seq, data)
            return
    raise AssertionError("no PONG")


def _link_checks(dev: str, proc: subprocess.Popen) -> None:
    """The port carries whole frames both ways and survives a client reopening the device."""
    with serial.Serial(dev, 115200, timeout=5) as s:
        _ping(s, 1, b"")
        _ping(s, 2, bytes(range(256)))
    with serial.Serial(dev, 115200, timeout=5) as s:  # reopen
        _ping(s, 3, b"again")
    if Path(f"/proc/{proc.pid}/stat").exists():
        # Idle must cost nothing: the board waits in wfi, the host process in read(2).
        c0 = _cpu_seconds(proc.pid)
        time.sleep(0.5)
        assert _cpu_seconds(proc.pid) - c0 < 0.15, "the firmware burns CPU while idle"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_host_port_on_its_own_pty(builds: Builds) -> None:
    root = builds.need("asan")
    proc = subprocess.Popen([root / "asan" / "legloop-fw-host"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"device: (/dev/pts/\d+)\n", line)
        assert m, f"expected 'device: /dev/pts/N', got {line!r}"
        _link_checks(m.group(1), proc)
    finally:
        _stop(proc)


def test_host_port_on_a_given_device_exits_on_hang_up(builds: Builds) -> None:
    import pty

    root = builds.need("asan")
    master, slave = pty.openpty()
    slave_path = os.ttyname(slave)
    proc = subprocess.Popen(
        [root / "asan" / "legloop-fw-host", "-b", "921600", slave_path], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == f"device: {slave_path}\n"
        os.close(slave)  # the firmware holds its own handle
        from firmware_bridge import protocol as P

        os.write(master, P.encode_frame(P.MsgType.PING, 7, b"xyz"))
        want = bytes(P.encode_frame(P.MsgType.PONG, 7, b"xyz"))
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < len(want) and time.monotonic() < deadline:
            got += os.read(master, len(want) - len(got))
        assert got == want
        os.close(master)  # hang-up: hal_read_byte returns -1, app_run returns, the process exits 0
        assert proc.wait(timeout=5) == 0
    finally:
        _stop(proc)


@pytest.mark.parametrize(("folder", "machine"), [("qemu-m3", "mps2-an385"), ("qemu-m7", "mps2-an500")])
def test_qemu_port_over_a_pty(builds: Builds, folder: str, machine: str) -> None:
    root = builds.need("qemu")
    cmd = cf.qemu_command(root / folder / "legloop-fw.elf", machine, icount=False)
    proc = subprocess.Popen([*cmd, "-serial", "pty"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    keep = None
    try:
        line = proc.stdout.readline()
        m = re.search(r"(/dev/pts/\d+)", line)
        assert m, f"QEMU did not report its pty: {line!r}"
        # One extra handle for QEMU's lifetime: each reopen of the pty otherwise stalls ~1 s (facts/hil.md).
        keep = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY)
        _link_checks(m.group(1), proc)
    finally:
        _stop(proc)
        if keep is not None:
            os.close(keep)


def test_build_from_an_installed_copy_writes_only_the_cache(tmp_path, monkeypatch) -> None:
    """What a wheel ships (pyproject's package-data) is enough to build, and a build writes nothing next to the
    sources: an installed package's folder may be read-only."""
    import shutil
    import zipfile

    if cf.toolchain().missing("host"):
        pytest.skip(cf.toolchain().missing("host"))
    wheel_dir = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(Path(__file__).resolve().parents[1]), "--no-deps",
         "--no-build-isolation", "-q", "-w", str(wheel_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr[-300:]}")
    site = tmp_path / "site"
    with zipfile.ZipFile(next(wheel_dir.glob("*.whl"))) as z:
        z.extractall(site)
    fw = site / "firmware_bridge" / "firmware"
    before = sorted((str(p.relative_to(fw)), p.stat().st_mtime_ns) for p in fw.rglob("*"))
    monkeypatch.setattr(cf, "FIRMWARE_DIR", fw)
    monkeypatch.setenv("LEGLOOP_FIRMWARE_CACHE", str(tmp_path / "cache"))
    out = cf.cached_build(["host"], max_hidden=16)
    assert (out / "host" / "legloop-fw-host").is_file()
    assert out.parent == tmp_path / "cache"
    assert sorted((str(p.relative_to(fw)), p.stat().st_mtime_ns) for p in fw.rglob("*")) == before
    assert cf.cached_build(["host"], max_hidden=16) == out  # the second call finds the build
    shutil.rmtree(site)
