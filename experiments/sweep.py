"""`legloop sweep`'s driver: run the tasks of a sweep file on an executor, resumably, and write DIR/sweep.json.

Executors run one task function (:func:`experiments.sweep_task.run_task`) and return a
:class:`concurrent.futures.Future` per task:

* :class:`PoolExecutor` — a local process pool (``spawn``: torch, numba and MuJoCo threads in the parent are not
  forked), one process per core by default;
* :class:`RayExecutor` — an existing Ray cluster (``--ray ADDRESS``) or a local Ray instance (``--ray``); Ray
  schedules, this module only submits. On a cluster of several machines DIR must be a path every node sees (a shared
  file system), as for the checkpoints the tasks read.

The driver submits every task that can run; an evaluation task whose network the sweep trains is submitted when that
training task has finished (or recorded as failed with it). A task whose ``DIR/tasks/<id>/metrics.json`` is complete
is not run again. Ctrl-C cancels what has not started, interrupts what runs (its directory gets no metrics.json;
files are written atomically) and writes sweep.json with what finished.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.progress import progress_bar
from experiments.sweep_config import CONDITION, PARAMS, TRAIN_PREFIX, SweepConfig, Task, applies
from experiments.sweep_task import (
    ERROR_FILE,
    METRICS,
    pool_task,
    pool_worker_init,
    read_record,
    run_task,
    warm_worker,
    write_json_atomic,
)
from experiments.tables import Column, count_of, table

SCHEMA = "legloop.sweep/1"
TASKS = "tasks"


# ------------------------------------------------------------------------------------------------------ executors
class PoolExecutor:
    """A local process pool (spawn context) of ``workers`` processes."""

    kind = "pool"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()  # set on Ctrl-C: a task the pool had already queued does not start
        self.pool = ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=pool_worker_init, initargs=(self.stop,)
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "workers": self.workers}

    def submit(self, task: Task, task_dir: str, sweep_dir: str) -> Future:
        return self.pool.submit(pool_task, task, task_dir, sweep_dir)

    def warm_up(self, tries: int = 5) -> None:
        """Start every worker and load what evaluation tasks import (for timing the tasks alone, as the benchmark
        does): warm-up calls until each worker process has answered one."""
        pids: set[int] = set()
        for _ in range(tries):
            pids |= {f.result() for f in [self.pool.submit(warm_worker) for _ in range(self.workers)]}
            if len(pids) >= self.workers:
                return

    def interrupt(self) -> None:
        """Stop queued tasks from starting and interrupt the running ones (SIGINT to this pool's workers, which only
        a running task listens to)."""
        self.stop.set()
        for child in multiprocessing.active_children():
            if child.pid is not None:
                try:
                    os.kill(child.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Ray: connect to ``address`` (a running cluster), or start a local instance of ``workers`` CPUs when None."""

    kind = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            raise RuntimeError(
                "--ray needs the Python package 'ray', which is not installed: pip install 'legloop[ray]'"
            ) from None
        self.ray = ray
        self.address = address
        self.started = not ray.is_initialized()
        if self.started:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address  # the cluster's nodes have legloop installed
            else:
                kwargs["num_cpus"] = workers or os.cpu_count() or 1
                # Local workers import legloop from where this process does (also a source tree, not installed).
                root = str(Path(__file__).resolve().parents[1])
                path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
            ray.init(**kwargs)
        self.workers = int(ray.cluster_resources().get("CPU", 0))
        self.remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
        self.refs: list[Any] = []

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "address": self.address or "local", "workers": self.workers}

    def submit(self, task: Task, task_dir: str, sweep_dir: str) -> Future:
        ref = self.remote.remote(task, task_dir, sweep_dir)
        self.refs.append(ref)
        return ref.future()

    def interrupt(self) -> None:
        for ref in self.refs:
            try:
                self.ray.cancel(ref)
            except Exception:  # finished already, or the cluster is going away: nothing to cancel
                pass

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(ray: str | None, workers: int | None) -> PoolExecutor | RayExecutor:
    """``ray``: None for the local pool, "" for a local Ray instance, else a cluster address."""
    if ray is None:
        return PoolExecutor(workers)
    return RayExecutor(ray or None, workers)


# ------------------------------------------------------------------------------------------------------ running
@dataclass
class SweepResult:
    """What a sweep run left: per task id its record (status done / failed / interrupted / not run) and whether
    this run executed it, the sweep.json document, and whether the run was interrupted."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    executed: set[str] = field(default_factory=set)
    document: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


class _Progress:
    """tqdm bar of tasks with done / failed counts (ETA from tqdm); silent when disabled."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        self.done = self.failed = 0
        if enabled and total:
            self.bar = progress_bar(total, "sweep", "task")
            self.bar.set_postfix(done=0, failed=0)

    def update(self, ok: bool) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.set_postfix(done=self.done, failed=self.failed, refresh=False)  # update redraws
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _failed(task: Task, message: str, task_dir: Path, kind: str = "DependencyFailed") -> dict[str, Any]:
    rec = {"task": task.id, "kind": task.kind, "params": task.params, "needs": task.needs, "status": "failed",
           "error": {"type": kind, "message": message, "traceback": ""}}  # fmt: skip
    task_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(task_dir / ERROR_FILE, rec)
    return rec


def run_sweep(
    config: SweepConfig,
    out: str | os.PathLike,
    executor_factory: Callable[[], PoolExecutor | RayExecutor],
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
) -> SweepResult:
    """Run the tasks of ``config`` not finished in ``out``; write ``out/sweep.json``; return what happened.

    ``KeyboardInterrupt`` is handled: finished tasks stay, sweep.json says which did not run, and the result has
    ``interrupted`` set (the caller says how to resume)."""
    root = Path(out)
    tasks_dir = root / TASKS
    tasks_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    result = SweepResult()
    for t in config.tasks:
        rec = read_record(tasks_dir / t.id)
        if rec is not None:
            result.records[t.id] = rec
    todo = [t for t in config.tasks if t.id not in result.records]
    by_id = {t.id: t for t in config.tasks}
    bar = _Progress(len(todo), progress)
    executor = None
    pending: dict[Future, Task] = {}
    waiting: dict[str, list[Task]] = {}

    def finished(task: Task, rec: dict[str, Any]) -> None:
        result.records[task.id] = rec
        bar.update(rec["status"] == "done")
        if task.kind != "train":
            return
        for dep in waiting.pop(task.id, []):
            if rec["status"] == "done":
                submit(dep)
            else:
                finished(dep, _failed(dep, f"its training task {task.id} failed", tasks_dir / dep.id))

    def submit(task: Task) -> None:
        assert executor is not None
        pending[executor.submit(task, str(tasks_dir / task.id), str(root))] = task
        result.executed.add(task.id)

    try:
        if todo:
            executor = executor_factory()
            for t in todo:
                need = by_id.get(t.needs) if t.needs else None
                if need is not None and need.id not in result.records:
                    waiting.setdefault(need.id, []).append(t)
                elif need is not None and result.records[need.id]["status"] != "done":
                    finished(t, _failed(t, f"its training task {need.id} failed", tasks_dir / t.id))
                else:
                    submit(t)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    try:
                        rec = fut.result()
                    except KeyboardInterrupt:
                        raise
                    except BaseException as exc:  # the worker died (a crash in native code, a lost Ray node)
                        msg = f"the worker running this task failed: {type(exc).__name__}: {exc}"
                        rec = _failed(task, msg, tasks_dir / task.id, kind=type(exc).__name__)
                    finished(task, rec)
    except KeyboardInterrupt:
        result.interrupted = True
        for fut in pending:
            fut.cancel()
        if executor is not None:
            executor.interrupt()
    finally:
        bar.close()
        if executor is not None:
            try:
                executor.close()
            except KeyboardInterrupt:
                result.interrupted = True
    if result.interrupted:
        # Tasks that finished while the pool wound down keep their files; the others did not run.
        for t in config.tasks:
            rec = read_record(tasks_dir / t.id)
            if rec is not None:
                result.records[t.id] = rec
            elif t.id not in result.records or result.records[t.id].get("status") not in ("done", "failed"):
                result.records[t.id] = {"task": t.id, "status": "interrupted" if t.id in result.executed else "not_run"}
    result.document = sweep_document(config, result, root, executor, t_start, overrides or {})
    write_json_atomic(root / "sweep.json", result.document)
    return result


# ------------------------------------------------------------------------------------------------------ sweep.json
def _jsontype(tp: type) -> str:
    return {int: "int", float: "float", str: "str", bool: "bool"}[tp]


UNITS = (("_ms", "ms"), ("_us", "µs"), ("_deg", "deg"), ("_n", "N"), ("_mhz", "MHz"), ("speed", "m/s"),
         ("seconds", "s"))  # fmt: skip
PATHS = ("checkpoint", "train_config", "replay")


def _unit(name: str) -> str:
    return next((unit for suffix, unit in UNITS if name.endswith(suffix)), "")


def _header(name: str) -> str:
    """``actuation_delay_ms`` → ``actuation delay ms``: the name without its unit suffix, then the unit."""
    for suffix, unit in UNITS:
        if name.endswith(suffix) and suffix.startswith("_"):
            return f"{name.removesuffix(suffix).replace('_', ' ')} {unit}"
        if name.endswith(suffix):
            return f"{name.replace('_', ' ')} {unit}"
    return name.replace("_", " ")


def param_schema(config: SweepConfig) -> dict[str, dict[str, Any]]:
    """Every task parameter's type, unit, group, default and meaning (train.<key> ones typed by their values)."""
    schema = {
        n: {"type": _jsontype(p.type), "unit": _unit(n), "group": p.group, "default": p.default, "help": p.help}
        for n, p in PARAMS.items()
    }
    for t in config.tasks:
        for k, v in t.params.items():
            if k.startswith(TRAIN_PREFIX) and k not in schema:
                tp = type(v).__name__ if not isinstance(v, list) else "list"
                schema[k] = {"type": tp, "unit": "", "group": "train", "default": None, "help": "training override"}
    return schema


def _ratios(config: SweepConfig, records: dict[str, dict[str, Any]]) -> dict[str, tuple[float | None, str | None]]:
    """Knee RMSE / the baseline's on the same condition (scenario, seed, length), per closed-loop eval task."""
    if not config.baseline:
        return {}
    base: dict[tuple, tuple[float, str]] = {}
    evals = [t for t in config.eval_tasks if t.params["replay"] is None]
    for t in evals:
        rec = records.get(t.id, {})
        label = t.params["label"] or t.params["controller"]
        knee = (rec.get("metrics") or {}).get("knee_rmse_rad")
        if label == config.baseline and rec.get("status") == "done" and knee:
            base[tuple(t.params[k] for k in CONDITION)] = (knee, t.id)
    out: dict[str, tuple[float | None, str | None]] = {}
    for t in evals:
        knee = (records.get(t.id, {}).get("metrics") or {}).get("knee_rmse_rad")
        b = base.get(tuple(t.params[k] for k in CONDITION))
        out[t.id] = (knee / b[0], b[1]) if (b is not None and knee is not None) else (None, b[1] if b else None)
    return out


def sweep_document(
    config: SweepConfig,
    result: SweepResult,
    root: Path,
    executor: PoolExecutor | RayExecutor | None,
    t_start: float,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    from experiments.rundir import provenance

    ratios = _ratios(config, result.records)
    rows = []
    for t in config.tasks:
        rec = result.records.get(t.id, {"status": "not_run"})
        metrics = dict(rec.get("metrics") or {})
        if t.kind == "eval":
            metrics = {k: metrics.get(k) for k in METRICS}
            metrics["knee_rmse_ratio"], baseline_task = ratios.get(t.id, (None, None))
        else:
            baseline_task = None
        err = rec.get("error")
        rows.append({
            "id": t.id,
            "kind": t.kind,
            "status": rec["status"],
            "executed": t.id in result.executed,
            "dir": f"{TASKS}/{t.id}",
            "needs": t.needs,
            "baseline_task": baseline_task,
            "params": t.params,
            "metrics": metrics,
            "error": f"{err['type']}: {err['message']}" if err else None,
        })  # fmt: skip
    statuses = [r["status"] for r in rows]
    executed = [r for r in rows if r["executed"]]
    return {
        "schema": SCHEMA,
        "config": {
            "path": str(config.path),
            "description": config.description,
            "baseline": config.baseline,
            "overrides": overrides,
            "file": config.raw,
        },
        "executor": executor.describe() if executor is not None else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
        "wall_s": round(time.time() - t_start, 2),
        "interrupted": result.interrupted,
        "counts": {
            "tasks": len(rows),
            "done": statuses.count("done"),
            "failed": statuses.count("failed"),
            "interrupted": statuses.count("interrupted"),
            "not_run": statuses.count("not_run"),
            "executed": len(executed),
            "skipped": sum(1 for r in rows if not r["executed"] and r["status"] == "done"),
        },
        "params": param_schema(config),
        "metrics": {k: {"type": tp, "unit": unit, "help": h} for k, (tp, unit, h) in METRICS.items()},
        "tasks": rows,
        "groups": group_rows(rows),
        "provenance": provenance(),
    }


def varying(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Parameters whose value differs between the eval tasks (seed excluded): what a summary row stands for."""
    evals = [r for r in rows if r["kind"] == "eval"]
    keys: list[str] = []
    for k in evals[0]["params"] if evals else []:
        if k == "seed":
            continue
        # Among the tasks whose controller takes it (the PD's missing threshold is not a variation).
        values = {repr(r["params"].get(k)) for r in evals if applies(k, r["params"]["controller"])}
        if len(values) > 1:
            keys.append(k)
    return keys


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def group_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per combination of the varying parameters (seeds pooled): counts, falls, means and worst ratios."""
    keys = varying(rows)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r["kind"] == "eval":
            groups.setdefault(tuple(repr(r["params"].get(k)) for k in keys), []).append(r)
    out = []
    for members in groups.values():
        done = [r for r in members if r["status"] == "done"]
        ms = [r["metrics"] for r in done]
        closed = [m for m in ms if m.get("fell") is not None]
        ratios = [m["knee_rmse_ratio"] for m in ms if m.get("knee_rmse_ratio") is not None]
        row: dict[str, Any] = {k: members[0]["params"].get(k) for k in keys}
        row |= {
            "tasks": len(members),
            "done": len(done),
            "failed": sum(1 for r in members if r["status"] == "failed"),
            "falls": sum(1 for m in closed if m["fell"]) if closed else None,
            "episodes": len(closed) if closed else None,
            "knee_rmse_rad": _mean([m.get("knee_rmse_rad") for m in ms]),
            "knee_rmse_ratio_max": max(ratios) if ratios else None,
            "sparsity": _mean([m.get("sparsity") for m in ms]),
            "macs_per_step": _mean([m.get("macs_per_step") for m in ms]),
            "latency_p99_us": _mean([m.get("latency_p99_us") for m in ms]),
            "miss_fraction": _mean([m.get("miss_fraction") for m in ms]),
            "r2_knee": _mean([m.get("r2_knee") for m in ms]),
        }
        out.append(row)
    return out


def summary_table(document: dict[str, Any]) -> str:
    """The groups of sweep.json as a table with units (only columns some row has a value for)."""
    rows = document["groups"]
    keys = varying(document["tasks"])
    cols: list[Column] = []
    for k in keys:
        short = k in PATHS or k.startswith(TRAIN_PREFIX)
        cols.append(Column(k, _header(k), (lambda v: Path(str(v)).name) if k in PATHS else ""))
        if short and k.startswith(TRAIN_PREFIX):
            cols[-1] = Column(k, k.removeprefix(TRAIN_PREFIX))
    for r in rows:
        r["tasks_done"] = count_of(r["done"], r["tasks"], pct=False)
        r["falls_of"] = count_of(r["falls"], r["episodes"], pct=False)
        r["miss_pct"] = None if r["miss_fraction"] is None else 100.0 * r["miss_fraction"]
    metric_cols = [
        Column("tasks_done", "done"),
        Column("falls_of", "falls"),
        Column("knee_rmse_rad", "knee RMSE rad", ".3f"),
        Column("knee_rmse_ratio_max", f"max ×{document['config']['baseline'] or 'baseline'}", ".2f"),
        Column("sparsity", "sparsity", ".3f"),
        Column("macs_per_step", "MACs/step", ",.0f"),
        Column("latency_p99_us", "p99 µs", ".1f"),
        Column("miss_pct", "over budget %", ".1f"),
        Column("r2_knee", "R² knee", ".4f"),
    ]
    cols += [c for c in metric_cols if any(r.get(c.key) is not None for r in rows)]
    notes = [
        "means over seeds; falls and done with their denominators; RMSE against the PD's desired trajectory",
    ]
    if document["config"]["baseline"]:
        b = document["config"]["baseline"]
        notes.append(f"×{b}: knee RMSE / the {b}'s on the same scenario and seed (worst episode of the row)")
    if any(r.get("latency_p99_us") is not None for r in rows):
        notes.append("latency: CPU rows measured wall time, EdgeDRNN rows modelled; over budget: steps later than "
                     "the budget / steps")  # fmt: skip
    text = table(rows, cols, notes)
    trains = [t for t in document["tasks"] if t["kind"] == "train"]
    if trains:
        trows = [{"id": t["id"], "status": t["status"], **t["metrics"]} for t in trains]
        text += "\n\n" + table(
            trows,
            [
                Column("id", "training task"),
                Column("status", "status"),
                Column("train_s", "train s", ".0f"),
                Column("val_r2_knee", "val R² knee", ".4f"),
                Column("val_r2_ankle", "val R² ankle", ".4f"),
                Column("val_sparsity", "val sparsity", ".3f"),
            ],
        )
    return text
