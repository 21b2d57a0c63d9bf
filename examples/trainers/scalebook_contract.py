"""The scalebook trainer contract (version 1), for Python trainers.

scalebook runs a trainer once per run. It passes the run's job file (`{spec}`, also
`$SCALEBOOK_SPEC`): model shape, optimizer, the learning rate of every step, seed, and
the paths of two token files it wrote (training sequences in training order, and the
fixed validation set). The trainer writes, into the job's `out` folder:

- `curve.jsonl`: one JSON line per logged step — step, tokens, train_loss, val_loss
  (null except on evaluation steps), lr, wall_seconds, and on evaluation steps the
  metrics the job asks for (`metrics`: name → number) — flushed as it goes;
- `result.json`: val_loss, wall_seconds, params (the count it built), device, the job's
  metrics at the end, and optionally train_seconds and peak_memory_bytes.

Anything missing or malformed fails the run with the reason; a NaN loss diverges it.
The full contract is the book's "Bring your own trainer" page. Copy this file next to
your own trainer; it needs numpy only.
"""
import json
import math
import os
import resource
import sys
import time

import numpy as np

CONTRACT = 1


def read_job(path=None):
    """The job of this run (from argv[1] after --spec, or $SCALEBOOK_SPEC)."""
    if path is None:
        args = sys.argv[1:]
        path = args[args.index("--spec") + 1] if "--spec" in args else os.environ["SCALEBOOK_SPEC"]
    with open(path) as f:
        job = json.load(f)
    if job.get("contract") != CONTRACT:
        sys.exit(f"{path}: trainer contract {job.get('contract')}, this trainer reads {CONTRACT}")
    return job


def require_parametrization(job, supported=("standard",)):
    """Refuse a job whose parametrisation this trainer does not implement (exit status 2):
    training it as another parametrisation would record numbers that are not the run's."""
    kind = job["model"].get("parametrization", {"kind": "standard"})["kind"]
    if kind not in supported:
        print(
            f"{job['name']}: model.parametrization is {kind}; this trainer implements "
            f"{', '.join(supported)} only",
            file=sys.stderr,
        )
        sys.exit(2)


def require_metrics(job, supported=()):
    """Refuse a job that asks for a metric this trainer does not measure (exit status 2):
    scalebook fails a run whose trainer leaves out a metric the study asks for."""
    missing = [m for m in job.get("metrics", []) if m not in supported]
    if missing:
        print(
            f"{job['name']}: the study asks for metric(s) {', '.join(missing)}; this trainer "
            f"measures {', '.join(supported) or 'none'}",
            file=sys.stderr,
        )
        sys.exit(2)


def sequences(job, which):
    """The `train` or `val` token file as an array of shape (sequences, context + 1)."""
    data = job["data"]
    dtype = {"u16": "<u2", "u32": "<u4"}[data["dtype"]]
    path = data[f"{which}_tokens"]
    # Read front to back (not np.fromfile, which seeks): the file may be a named pipe
    # (`trainer.tokens: stream`).
    with open(path, "rb") as f:
        tokens = np.frombuffer(f.read(), dtype=dtype).astype(np.int64)
    count = data[f"{which}_sequences"]
    width = data["sequence_tokens"]
    if tokens.size != count * width:
        sys.exit(f"{path}: {tokens.size} tokens, the job says {count} x {width}")
    return tokens.reshape(count, width)


def peak_memory_bytes():
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Curve:
    """Writes curve.jsonl, one flushed line per point."""

    def __init__(self, job):
        self.job = job
        self.file = open(job["curve"], "w")
        self.start = time.perf_counter()
        self.tokens_per_step = job["batch"] * job["model"]["context"]

    def elapsed(self):
        return time.perf_counter() - self.start

    def point(self, step, train_loss, lr, val_loss=None, metrics=None):
        line = {
            "step": step,
            "tokens": step * self.tokens_per_step,
            "train_loss": float(train_loss),
            "val_loss": None if val_loss is None else float(val_loss),
            "lr": lr,
            "wall_seconds": self.elapsed(),
        }
        if metrics:
            line["metrics"] = {k: float(v) for k, v in metrics.items()}
        self.file.write(json.dumps(line) + "\n")
        self.file.flush()

    def close(self):
        self.file.close()


def write_result(job, val_loss, wall_seconds, params, device, train_seconds=None, metrics=None):
    result = {
        "val_loss": None if val_loss is None else float(val_loss),
        "wall_seconds": wall_seconds,
        "train_seconds": train_seconds,
        "params": int(params),
        "device": device,
        "peak_memory_bytes": peak_memory_bytes(),
    }
    if metrics:
        result["metrics"] = {k: float(v) for k, v in metrics.items()}
    tmp = job["result"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, job["result"])


def finite(x):
    return math.isfinite(float(x))
