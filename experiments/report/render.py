"""The walk, rendered offscreen with MuJoCo from the logged joint positions and the run log's own MJCF.

A run log's header carries the walker's MJCF text (the episode's randomised body) and every row its ``qpos_*``
columns, so any logged step can be drawn again: ``mujoco.MjModel.from_xml_string`` → set ``qpos`` → ``mj_forward``
→ ``mujoco.Renderer``. Slopes are drawn level: the env tilts gravity, and the floor stays the model's x axis.

Rendering runs in a child process (this file run as a script): MuJoCo reads ``MUJOCO_GL`` once, at import, and a
missing or broken GL stack can abort a process, so the report's own process never loads a GL context. Headless
Linux gets ``MUJOCO_GL=osmesa`` unless the caller chose a backend. When no context can be made the figure is left
out with the child's reason on the page.

Outputs: a filmstrip (one row per controller, frames evenly over one steady stride from prosthetic heel strike to
the next) and, when ``gif_frames`` > 0, an animated GIF (Pillow, which matplotlib already needs) of all controllers
side by side on the same clock.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

WIDTH, HEIGHT = 240, 200  # per frame; small: software rendering costs ~50 ms a frame and the page stays small
TIMEOUT_S = 240.0


# ------------------------------------------------------------------------------------------------ child side
def _render_item(mujoco: Any, item: dict[str, Any], width: int, height: int) -> np.ndarray:
    """The frames of one run log's rows, uint8 [frames, height, width, 3]."""
    header = json.loads(Path(item["json"]).read_text())
    data = np.load(item["npy"], mmap_mode="r")
    cols = header["columns"]
    qcols = [cols.index(c) for c in cols if c.startswith("qpos_")]
    model = mujoco.MjModel.from_xml_string(header["mjcf"])
    if len(qcols) != model.nq:
        raise ValueError(f"{len(qcols)} qpos columns in the log for a model with nq = {model.nq}")
    # Software GL: no multisampling and coarser capsules make a frame ~3x cheaper (~20 ms at this size).
    model.vis.quality.offsamples = 0
    model.vis.quality.numslices, model.vis.quality.numstacks = 16, 8
    d = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, height, width)
    try:
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.azimuth, cam.elevation, cam.distance = 90.0, -6.0, 2.3
        frames = []
        for row in item["rows"]:
            d.qpos[:] = np.asarray(data[row, qcols], dtype=float)
            mujoco.mj_forward(model, d)
            cam.lookat[:] = (d.qpos[0] + 0.15, 0.0, 0.72)  # follow the trunk, the walker a little left of centre
            renderer.update_scene(d, camera=cam)
            # Shadows and reflections double the software-rendering time and add nothing to a gait picture.
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            frames.append(renderer.render().copy())
    finally:
        renderer.close()
    return np.stack(frames)


def _render_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Render every item (runs in the child process): {"frames": {key: .npy file}, "errors": {key: reason}}."""
    import mujoco  # imported here, in the child, for MUJOCO_GL

    out_dir = Path(spec["out_dir"])
    frames: dict[str, str] = {}
    errors: dict[str, str] = {}
    for i, item in enumerate(spec["items"]):
        try:
            path = out_dir / f"frames_{i}.npy"
            np.save(path, _render_item(mujoco, item, spec["width"], spec["height"]))
            frames[item["key"]] = str(path)
        except Exception as exc:  # one bad log (or no GL context) is a note on the page, not a lost report
            errors[item["key"]] = f"{type(exc).__name__}: {exc}".strip()
    return {"frames": frames, "errors": errors}


def _child_main(spec_path: str) -> int:
    try:
        spec = json.loads(Path(spec_path).read_text())
        print(json.dumps(_render_child(spec)))
        return 0
    except Exception as exc:  # the parent shows the reason on the page; a traceback helps no reader there
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}".strip()}))
        return 1


# ------------------------------------------------------------------------------------------------ parent side
def _gl_env() -> dict[str, str]:
    env = dict(os.environ)
    if sys.platform.startswith("linux") and not env.get("MUJOCO_GL") and not env.get("DISPLAY"):
        env["MUJOCO_GL"] = "osmesa"
    if env.get("MUJOCO_GL") in ("osmesa", "egl"):
        env.setdefault("PYOPENGL_PLATFORM", env["MUJOCO_GL"])
    return env


class RenderJob:
    """A child process rendering frames while the parent draws the other figures (the machine may have 2 cores)."""

    def __init__(self, items: list[dict[str, Any]], timeout_s: float = TIMEOUT_S) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="legloop-report-render-")
        work = Path(self._tmp.name)
        spec = {"items": items, "out_dir": str(work), "width": WIDTH, "height": HEIGHT}
        spec_path = work / "render.json"
        spec_path.write_text(json.dumps(spec))
        self.timeout_s = timeout_s
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(spec_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_gl_env(),
        )

    def result(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """({key: uint8 [frames, H, W, 3]}, {key: why it has no frames}); raises ``RuntimeError`` with the child's
        reason when no item rendered (no GL context, a time-out)."""
        try:
            try:
                stdout, stderr = self._proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.communicate()
                raise RuntimeError(f"rendering took longer than {self.timeout_s:.0f} s") from None
            last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
            try:
                answer = json.loads(last)
            except json.JSONDecodeError:
                err = stderr.strip().splitlines()
                why = err[-1] if err else f"exit code {self._proc.returncode}"
                raise RuntimeError(f"the renderer failed ({why})") from None
            gl = _gl_env().get("MUJOCO_GL", "default")
            if "error" in answer:
                raise RuntimeError(f"no frames from MuJoCo (MUJOCO_GL={gl}): {answer['error']}")
            if not answer["frames"]:
                why = next(iter(answer["errors"].values()), "nothing to render")
                raise RuntimeError(f"no frames from MuJoCo (MUJOCO_GL={gl}): {why}")
            return {k: np.load(v) for k, v in answer["frames"].items()}, answer["errors"]
        finally:
            self._tmp.cleanup()


def filmstrip_png(strips: list[tuple[str, str, np.ndarray, list[str]]], dpi: int) -> bytes:
    """One row per controller: (label, colour, frames, per-frame captions) → PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows, n_cols = len(strips), max(len(s[2]) for s in strips)
    fig = Figure(figsize=(1.2 * n_cols, 1.15 * n_rows + 0.1), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    for r, (label, colour, frames, captions) in enumerate(strips):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < len(frames):
                ax.imshow(frames[c])
                ax.set_title(captions[c], fontsize=7, pad=2)
        axes[r, 0].text(-0.05, 0.5, label, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=8, color=colour, fontweight="bold")  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def walk_gif(panels: list[tuple[str, np.ndarray]], fps: float) -> bytes:
    """All controllers side by side on the same clock, labelled, as an animated GIF (Pillow)."""
    from PIL import Image, ImageDraw

    n = min(len(f) for _, f in panels)
    frames = []
    for k in range(n):
        row = np.concatenate([f[k] for _, f in panels], axis=1)
        img = Image.fromarray(row)
        draw = ImageDraw.Draw(img)
        for i, (label, _) in enumerate(panels):
            draw.text((i * WIDTH + 6, 4), label, fill=(0, 0, 0))
        # One shared palette quantisation per frame keeps the file small (the scene has few colours).
        frames.append(img.quantize(colors=64, method=Image.Quantize.MEDIANCUT))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0,
                   optimize=True)  # fmt: skip
    return buf.getvalue()


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
