"""The split and worst threshold governors run ON the board (protocol 1.1 SET_GOVERNOR, ``docs/protocol.md`` §5.12).

Real board processes on real pseudo-terminals — the C firmware (host build, AddressSanitizer + UBSan for the
session test; the Cortex-M3 image under QEMU for one short case) and the Python emulator — against the in-process
``PredictiveGovernor(bound="split")`` / ``PredictiveGovernor(bound="worst")`` inside ``EdgeDRNNBackend``:
  - over a few hundred steps of a real walk's features (an in-process closed-loop episode's), the boards' outputs,
    cycles and per-layer Θ are bit-identical to the in-process governor's, every step fits the budget and the
    governor did raise Θ on some steps (not all);
  - a session that switches the governor on mid-run, changes the floor, resets and switches it off gives the same
    RESULT bytes on the C firmware and on the Python emulator, and the same ERRORs for bad SET_GOVERNORs;
  - an old-style session (no SET_GOVERNOR) is unchanged: no governor flags, no Θ tail, the 1.0 RESULT length;
  - a board without the governor (a 1.0 board) and a governor a board does not run are clear errors;
  - ``legloop eval --controller board --emulate c --governor predictive-split`` (and ``predictive-worst``) runs
    closed loop within budget.
Tests skip with the reason when a compiler or QEMU is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import main as cli_main
from firmware_bridge import c_firmware as cf
from firmware_bridge import protocol as P
from firmware_bridge.board_client import BoardClient, GovernorUnsupported
from firmware_bridge.bundle import Bundle
from firmware_bridge.export import bundle_from_model
from hil.board_backend import BoardLink, SerialBoardBackend, budget_cycles
from hil.board_emulator import InProcessBoard, _Refuse
from hil.board_process import start_board
from hil.edgedrnn import EdgeDRNNBackend
from hil.edgedrnn.predictive import (
    G_LAYER_TH,
    G_LAYER_TX,
    G_THETA_H,
    G_THETA_X,
    PredictiveGovernor,
    max_cycles_within,
)
from hil.firmware_process import CFirmwareLauncher, QemuLauncher, start_firmware

GOVERNOR_FLAGS = P.ResultFlags.GOVERNED | P.ResultFlags.THETA_RAISED | P.ResultFlags.OVER_BUDGET
STEPS = 400
# The board governors: governor name → SET_GOVERNOR policy name.
BOARD = {"predictive-split": "split", "predictive-worst": "worst"}
WORST_BUDGET_S = 21e-6  # worst: the documented hard deadline (the walk's budget below also fits, raising Θ on all)


def _need(what: str) -> None:
    reason = cf.toolchain().missing(what)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> dict:
    """A 2L-64H network with non-zero thresholds and the features of a real walk: the raw 'sensors' features the
    damper network was fed during an in-process closed-loop episode (seed 0, PD-like walking on MuJoCo)."""
    from conftest import CheckpointFactory

    from controllers.checkpoint import load_checkpoint
    from experiments.evaluate import EvalConfig, run_episode
    from hil.spec import ControllerSpec

    factory = CheckpointFactory(tmp_path_factory.mktemp("gov"))
    damper = factory.damper()
    feats: list[np.ndarray] = []
    made: list = []
    with ControllerSpec("edgedrnn", checkpoint=str(damper), policy="none").factory() as make_ctrl:

        def make(env):
            c = make_ctrl(env)
            made.append(c)
            return c

        def observe(k, obs, torque):
            feats.append(made[-1].features.copy())

        run_episode(make, 0, STEPS / 200.0, EvalConfig(seconds=2.0, seeds=[0]).env_kwargs(), False, observers=[observe])
    X = np.array(feats)
    assert X.shape == (STEPS, 7) and np.ptp(X, axis=0).min() > 0  # every feature moves: a real walk
    ckpt = factory("net.pt", feature_set="sensors", hidden=64, layers=2, theta_x=0.02, theta_h=0.06, seed=3)
    model, meta = load_checkpoint(ckpt)
    bundle = bundle_from_model(model, meta, source=str(ckpt))
    assert bundle.theta_x > 0 and bundle.theta_h > 0
    # A budget that the trained thresholds miss on a good share of the steps: the governor has work to do.
    plain = EdgeDRNNBackend(bundle)
    cycles = np.array([plain.step(x).cycles for x in X])
    budget_s = float(np.percentile(cycles, 60)) / plain.model.clock_hz
    return {"X": X, "bundle": bundle, "budget_s": budget_s, "plain_cycles": cycles}


def _budget_s(walk: dict, governor: str) -> float:
    return walk["budget_s"] if governor == "predictive-split" else WORST_BUDGET_S


def _in_process(
    bundle: Bundle, X: np.ndarray, budget_s: float, governor: str = "predictive-split"
) -> dict[str, np.ndarray]:
    be = EdgeDRNNBackend(bundle, budget_s=budget_s, governor=governor)
    pg = be.governor
    assert isinstance(pg, PredictiveGovernor) and pg.name == governor
    L = bundle.layers
    rows: dict[str, list] = {"out": [], "cycles": [], "thetas": [], "raised": []}
    raised0 = pg.counters()["raised_steps"]
    for x in X:
        r = be.step(x)
        rows["out"].append(r.outputs.copy())
        rows["cycles"].append(r.cycles)
        g = pg.buffer
        if governor == "predictive-split":  # a pair per layer
            rows["thetas"].append(np.stack([g[G_LAYER_TX : G_LAYER_TX + L], g[G_LAYER_TH : G_LAYER_TH + L]], axis=1))
        else:  # one pair for the whole step (one accelerator invocation)
            rows["thetas"].append(np.tile([g[G_THETA_X], g[G_THETA_H]], (L, 1)))
        raised = pg.counters()["raised_steps"]
        rows["raised"].append(raised != raised0)
        raised0 = raised
    out = {k: np.array(v) for k, v in rows.items()}
    out["max_cycles"] = np.array(pg.max_cycles)
    return out


@pytest.mark.parametrize("governor", list(BOARD))
@pytest.mark.parametrize("kind", ["c", "python"])
def test_the_board_governs_bit_identically_to_the_in_process_governor(walk: dict, kind: str, governor: str) -> None:
    if kind == "c":
        _need("host")
    b, X, budget_s = walk["bundle"], walk["X"], _budget_s(walk, governor)
    ref = _in_process(b, X, budget_s, governor)
    link = BoardLink(emulate=kind, step_timeout_s=2.0)
    be = SerialBoardBackend(b, link, budget_s=budget_s, governor=governor)
    try:
        assert be.governor_budget_cycles == int(ref["max_cycles"]) == budget_cycles(budget_s, 125e6)
        assert be.describe()["governor"] == governor and be.info.capabilities & P.Capability.GOVERNOR
        rows: dict[str, list] = {"out": [], "cycles": [], "thetas": []}
        for x in X:
            r = be.step(x)
            assert r.ok
            rows["out"].append(r.outputs.copy())
            rows["cycles"].append(r.cycles)
            rows["thetas"].append(be.governor_thetas)
        stats = be.episode_stats()
    finally:
        be.close()
    np.testing.assert_array_equal(np.array(rows["out"]), ref["out"])  # float64 torques, exactly
    np.testing.assert_array_equal(np.array(rows["cycles"]), ref["cycles"])
    np.testing.assert_array_equal(np.array(rows["thetas"]), ref["thetas"])  # every layer's Θ decision
    assert (ref["cycles"] <= ref["max_cycles"]).all()  # every step within the budget
    assert (walk["plain_cycles"] > ref["max_cycles"]).sum() > STEPS // 10  # … which the trained Θ miss often
    n_raised = int(ref["raised"].sum())
    assert 0 < n_raised < STEPS
    assert stats["governor"] == governor
    assert stats["governor_raised_steps"] == n_raised and stats["governor_over_budget_steps"] == 0
    assert stats["governor_actions"] > 0 and stats["link"]["steps_lost"] == 0


def _raw(c: BoardClient, msg_type: int, payload: bytes) -> P.Frame:
    frame = c.transport.request(msg_type, payload, timeout_s=5.0)
    assert frame is not None, f"no answer to 0x{msg_type:02X}"
    return frame


def _set_gov(policy: int, budget: int, options: int = 1, reserved: int = 0) -> bytes:
    return bytes([policy, options]) + reserved.to_bytes(2, "little") + budget.to_bytes(4, "little")


def _session(path: str, b: Bundle, X: np.ndarray, budget: int) -> list[tuple[int, bytes]]:
    """A scripted session over raw frames: every answer's (type, payload)."""
    image = P.build_model_image(b.image, b.out_weight, b.out_bias)
    q = np.clip(np.rint((X - b.input_mean) / b.input_std * 256.0), -32768, 32767).astype("<i2")
    out: list[tuple[int, bytes]] = []
    with BoardClient.open(path, margin_s=0.5, control_timeout_s=5.0) as c:

        def ask(msg_type: int, payload: bytes) -> None:
            f = _raw(c, msg_type, payload)
            out.append((f.msg_type, f.payload))

        c.hello()
        ask(P.MsgType.SET_GOVERNOR, _set_gov(1, budget))  # before CONFIGURE: not_configured
        c.configure(b.layers, b.input_size, b.hidden, b.n_outputs, b.theta_x, b.theta_h)
        ask(P.MsgType.SET_GOVERNOR, _set_gov(1, budget)[:7])  # bad_length
        ask(P.MsgType.SET_GOVERNOR, _set_gov(7, budget))  # an unknown policy: bad_value
        ask(P.MsgType.SET_GOVERNOR, _set_gov(1, budget, options=2))  # an undefined option bit
        ask(P.MsgType.SET_GOVERNOR, _set_gov(1, budget, reserved=1))
        ask(P.MsgType.SET_GOVERNOR, _set_gov(1, 0))  # a zero budget
        c.load_model(image)
        c.reset_state()
        for t, x in enumerate(q):
            if t in (20, 21):  # switched on mid-run (from the board's state), then a repeat (a lost ACK): no change
                ask(P.MsgType.SET_GOVERNOR, _set_gov(1, budget))
            if t == 60:  # a new floor while governed
                c.set_thresholds(b.theta_x + 3, b.theta_h // 2)
            if t == 90:
                c.reset_state()
            if t == 105:  # another policy while on: worst, from the board's state
                ask(P.MsgType.SET_GOVERNOR, _set_gov(2, budget))
            if t == 120:  # a tighter budget, no Θ tail
                ask(P.MsgType.SET_GOVERNOR, _set_gov(1, budget - 40, 0))
            if t == 150:  # off: the floor in force again, every step
                ask(P.MsgType.SET_GOVERNOR, _set_gov(0, 0, 0))
            f = _raw(c, P.MsgType.STEP, x.tobytes())
            assert f.msg_type == P.MsgType.RESULT
            p = bytearray(f.payload)
            p[4:8] = bytes(4)  # compute_ticks: the boards' own timers
            out.append((f.msg_type, bytes(p)))
    return out


def test_a_governed_session_is_the_same_on_the_c_firmware_and_the_python_emulator(walk: dict) -> None:
    _need("host")
    b, X = walk["bundle"], walk["X"][:180]
    budget = budget_cycles(walk["budget_s"], 125e6)
    fw = start_firmware(CFirmwareLauncher(sanitize=True))
    try:
        c_answers = _session(fw.path, b, X, budget)
    finally:
        code = fw.stop()
        tail = fw.output_tail(50)
        assert "Sanitizer" not in tail and "runtime error" not in tail, tail
        assert code in (0, -15), tail
    emu = start_board("python")
    try:
        py_answers = _session(emu.path, b, X, budget)
    finally:
        assert emu.stop() == 0
    assert len(c_answers) == len(py_answers)
    for i, (a, e) in enumerate(zip(c_answers, py_answers, strict=True)):
        if a[0] == P.MsgType.ERROR:  # the same code and request type; the texts are each board's own
            assert e[0] == P.MsgType.ERROR and a[1][:2] == e[1][:2], (i, a, e)
        else:
            assert a == e, (i, a, e)
    errors = [a[1][0] for a in c_answers if a[0] == P.MsgType.ERROR]
    E = P.ErrorCode
    assert errors == [E.NOT_CONFIGURED, E.BAD_LENGTH, E.BAD_VALUE, E.BAD_VALUE, E.BAD_VALUE, E.BAD_VALUE]
    results = [p for t, p in c_answers if t == P.MsgType.RESULT]
    flags = np.array([int.from_bytes(p[12:14], "little") for p in results])
    lengths = np.array([len(p) for p in results])
    O, L = b.n_outputs, b.layers
    assert (flags[:20] & GOVERNOR_FLAGS == 0).all() and (lengths[:20] == 14 + 4 * O).all()  # before: 1.0 frames
    assert (flags[20:150] & P.ResultFlags.GOVERNED).all()
    assert (lengths[20:120] == 14 + 4 * O + 4 * L).all() and (lengths[120:] == 14 + 4 * O).all()
    assert (flags[150:] & GOVERNOR_FLAGS == 0).all()  # off again
    assert (flags[20:150] & P.ResultFlags.THETA_RAISED).any()
    cycles = np.array([int.from_bytes(p[:4], "little") for p in results])
    assert (cycles[20:120] <= budget).all() and (cycles[120:150] <= budget - 40).all()
    # The Θ tail never goes below the floor in force (CONFIGURE's, then SET_THRESHOLDS' from step 60).
    for t in range(20, 120):
        th = np.frombuffer(results[t], "<u2", 2 * L, 14 + 4 * O).reshape(L, 2)
        floor = (b.theta_x, b.theta_h) if t < 60 else (b.theta_x + 3, b.theta_h // 2)
        assert (th[:, 0] >= floor[0]).all() and (th[:, 1] >= floor[1]).all(), t


@pytest.mark.parametrize("kind", ["c", "python"])
def test_an_old_style_session_is_unchanged(walk: dict, kind: str) -> None:
    if kind == "c":
        _need("host")
    b, X = walk["bundle"], walk["X"][:100]
    plain = EdgeDRNNBackend(b)
    be = SerialBoardBackend(b, BoardLink(emulate=kind, step_timeout_s=2.0))
    try:
        assert be.client is not None and be.client.governor is None
        for x in X:
            r = be.step(x)
            want = plain.step(x)
            assert r.ok and r.cycles == want.cycles
            np.testing.assert_array_equal(r.outputs, want.outputs)
            reply = be.client.step(be._q)  # the same features again: a raw look at the RESULT
            assert reply is not None and reply.flags & GOVERNOR_FLAGS == 0 and reply.thetas.shape == (0, 2)
            plain.step(x)
        assert "governor" not in be.episode_stats()
    finally:
        be.close()


def test_a_board_without_the_governor_is_a_clear_error(walk: dict) -> None:
    b = walk["bundle"]
    with InProcessBoard() as board:
        # A protocol 1.0 board: no GOVERNOR capability, no SET_GOVERNOR handler.
        board.board.capabilities &= ~int(P.Capability.GOVERNOR)
        del board.board._handlers[P.MsgType.SET_GOVERNOR]
        with BoardClient.open(board.url, control_timeout_s=5.0) as c:
            c.hello()
            c.configure(b.layers, b.input_size, b.hidden, b.n_outputs, b.theta_x, b.theta_h)
            with pytest.raises(GovernorUnsupported, match=r"no GOVERNOR capability.*protocol 1\.1"):
                c.set_governor("split", 2624)
            assert c.info is not None
            c.info.capabilities |= P.Capability.GOVERNOR  # a host that asks anyway: the board's unknown_type
            with pytest.raises(GovernorUnsupported, match=r"does not support SET_GOVERNOR.*unknown request type"):
                c.set_governor("split", 2624)
            with pytest.raises(GovernorUnsupported, match="unknown governor policy 'estimate'"):
                c.set_governor("estimate", 2624)
    # A 1.1 board that governs with split only (the firmware before policy WORST): bad_value, named clearly.
    with InProcessBoard() as board:
        emu = board.board
        set_governor = emu._handlers[P.MsgType.SET_GOVERNOR]

        def split_only(payload: bytes) -> tuple[int, bytes]:
            if payload[0] > P.GovernorPolicy.SPLIT:
                raise _Refuse(
                    P.ErrorCode.BAD_VALUE, f"governor policy {payload[0]} unsupported: this board has 0 off, 1 split"
                )
            return set_governor(payload)

        emu._handlers[P.MsgType.SET_GOVERNOR] = split_only
        with BoardClient.open(board.url, control_timeout_s=5.0) as c:
            c.hello()
            c.configure(b.layers, b.input_size, b.hidden, b.n_outputs, b.theta_x, b.theta_h)
            with pytest.raises(GovernorUnsupported, match=r"does not support governor policy 2: .*1 split$"):
                c.set_governor("worst", 2624)
            assert c.governor is None and c.set_governor("split", 2624).policy == P.GovernorPolicy.SPLIT
    # A policy this host does not know is refused before anything is sent (a 1.1 board answers bad_value: the
    # governed-session test above sends one raw).
    with InProcessBoard() as board, BoardClient.open(board.url, control_timeout_s=5.0) as c:
        c.hello()
        c.configure(b.layers, b.input_size, b.hidden, b.n_outputs, b.theta_x, b.theta_h)
        with pytest.raises(GovernorUnsupported, match="unknown governor policy 9"):
            c.set_governor(9, 2624)
        assert c.set_governor("split", 2624).policy == P.GovernorPolicy.SPLIT and c.governor is not None


@pytest.mark.parametrize("governor", list(BOARD))
def test_qemu_m3_governs_like_the_in_process_governor(walk: dict, governor: str) -> None:
    _need("qemu")
    b, X, budget_s = walk["bundle"], walk["X"][:60], _budget_s(walk, governor)
    ref = _in_process(b, X, budget_s, governor)
    image = P.build_model_image(b.image, b.out_weight, b.out_bias)
    board = start_firmware(QemuLauncher(cpu="m3", preload=image))
    try:
        with BoardClient.open(board.path, margin_s=0.5, control_timeout_s=5.0) as c:
            c.hello()
            c.configure(b.layers, b.input_size, b.hidden, b.n_outputs, b.theta_x, b.theta_h)
            c.set_governor(BOARD[governor], int(ref["max_cycles"]), report_theta=True)
            c.load_model(image, preloaded=True)
            c.reset_state()
            q = np.clip(np.rint((X - b.input_mean) / b.input_std * 256.0), -32768, 32767).astype(np.int16)
            for t, x in enumerate(q):
                r = c.step(x)
                assert r is not None, t
                assert r.cycles == ref["cycles"][t] <= ref["max_cycles"], t
                np.testing.assert_array_equal(r.thetas, ref["thetas"][t], err_msg=str(t))
                assert bool(r.flags & P.ResultFlags.THETA_RAISED) == ref["raised"][t], t
    finally:
        board.stop()


@pytest.mark.parametrize("governor", list(BOARD))
def test_eval_with_the_board_governor_closed_loop(tmp_path: Path, capsys, governor: str) -> None:
    _need("host")
    from conftest import CheckpointFactory

    damper = CheckpointFactory(tmp_path).damper()
    # The damper's 2L-16H costs ~120 cycles untouched: a 0.9 µs budget (112 cycles) makes the governor work.
    args = ["eval", "--no-pushes", "--seeds", "0", "--controller", "board", "--emulate", "c", "--checkpoint"]
    args += [str(damper), "--seconds", "3", "--budget-us", "0.9", "--step-timeout-ms", "2000", "--deadline-policy"]
    args += ["none", "--governor", governor, "--out", str(tmp_path / "run")]
    assert cli_main(args) == 0
    ep = json.loads((tmp_path / "run" / "metrics.json").read_text())["episodes"][0]
    assert ep["governor"] == governor and ep["governor_raised_steps"] > 0
    # (deadline_misses also counts round trips longer than the period: this machine's load, not the board's cycles)
    assert ep["governor_over_budget_steps"] == 0 and ep["lost_steps"] == 0
    assert ep["latency_us"]["max"] <= 0.9
    assert max_cycles_within(0.9e-6, 125e6, 0.0) == budget_cycles(0.9e-6, 125e6)
    # A governor that runs in process only: a clear error before anything starts.
    bad = [*args[:-4], "--governor", "predictive", "--out", str(tmp_path / "bad")]
    assert cli_main(bad) != 0
    err = capsys.readouterr().err
    assert "'predictive' runs in process only" in err and "predictive-worst" in err and "predictive-split" in err
    assert not (tmp_path / "bad").exists()


def test_the_spec_example_and_the_budget_arithmetic() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert "payload `01 01 00 00 40 0A 00 00`" in doc
    assert P.SetGovernor(1, 1, 0, 2624).encode() == bytes.fromhex("0101000040 0A0000".replace(" ", ""))
    assert "WORST with\nthe same: `02 01 00 00 40 0A 00 00`" in doc
    assert P.SetGovernor(P.GovernorPolicy.WORST, 1, 0, 2624).encode() == bytes.fromhex("02010000400A0000")
    # The host's budget in cycles is the in-process governor's (T_sys = 0), e.g. 2624 for 21 µs at 125 MHz.
    assert budget_cycles(21e-6, 125e6) == max_cycles_within(21e-6, 125e6, 0.0) == 2624
    for us in (0.9, 5.0, 21.0, 33.3):
        for mhz in (100.0, 125.0, 200.0):
            assert budget_cycles(us * 1e-6, mhz * 1e6) == max_cycles_within(us * 1e-6, mhz * 1e6, 0.0)
