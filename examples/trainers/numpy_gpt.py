#!/usr/bin/env python3
"""A dependency-light trainer for scalebook's trainer contract: the GPT of the built-in
engine (pre-LayerNorm blocks, fused QKV attention with bias, GELU(tanh) MLP, learned
positions, final LayerNorm, head without bias, optionally tied) written in numpy with a
hand-written backward pass, trained with AdamW (decay on matrices only), global
gradient clipping and the job's per-step learning rates, in float32 on the CPU.

    trainer:
      command: python3 numpy_gpt.py --spec {spec}
      version_file: numpy_gpt.py
      workdir: examples/trainers

It is meant for small models (CI, laptops): it is not fast, but it is exact enough to
give the same law as the built-in engine on the same grid.
"""
import math
import sys
import time

import numpy as np

import scalebook_contract as sc

GELU_C = math.sqrt(2.0 / math.pi)
LN_EPS = 1e-5


def init(job, rng):
    m = job["model"]
    d, v, t, layers = m["d_model"], m["vocab"], m["context"], m["layers"]
    f32 = np.float32

    def normal(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(f32)

    p = {"wte": normal(v, d), "wpe": normal(t, d)}
    for i in range(layers):
        p[f"{i}.ln1_g"] = np.ones(d, f32)
        p[f"{i}.ln1_b"] = np.zeros(d, f32)
        p[f"{i}.qkv_w"] = normal(d, 3 * d)
        p[f"{i}.qkv_b"] = np.zeros(3 * d, f32)
        p[f"{i}.proj_w"] = normal(d, d)
        p[f"{i}.proj_b"] = np.zeros(d, f32)
        p[f"{i}.ln2_g"] = np.ones(d, f32)
        p[f"{i}.ln2_b"] = np.zeros(d, f32)
        p[f"{i}.fc_w"] = normal(d, 4 * d)
        p[f"{i}.fc_b"] = np.zeros(4 * d, f32)
        p[f"{i}.fc2_w"] = normal(4 * d, d)
        p[f"{i}.fc2_b"] = np.zeros(d, f32)
    p["lnf_g"] = np.ones(d, f32)
    p["lnf_b"] = np.zeros(d, f32)
    if not m["tie_embeddings"]:
        p["head_w"] = normal(d, v)
    return p


def ln_forward(x, g, b):
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    rstd = 1.0 / np.sqrt((xc * xc).mean(-1, keepdims=True) + LN_EPS)
    xhat = xc * rstd
    return xhat * g + b, (xhat, rstd, g)


def ln_backward(dy, cache):
    xhat, rstd, g = cache
    dg = (dy * xhat).reshape(-1, xhat.shape[-1]).sum(0)
    db = dy.reshape(-1, dy.shape[-1]).sum(0)
    dxhat = dy * g
    dx = rstd * (
        dxhat
        - dxhat.mean(-1, keepdims=True)
        - xhat * (dxhat * xhat).mean(-1, keepdims=True)
    )
    return dx, dg, db


def forward(p, job, inputs, targets, need_grad):
    """Mean cross-entropy (nats/token) and, with need_grad, the gradients."""
    m = job["model"]
    heads, layers = m["heads"], m["layers"]
    bsz, t = inputs.shape
    d = p["wte"].shape[1]
    hd = d // heads
    x = p["wte"][inputs] + p["wpe"][:t]
    mask = np.triu(np.ones((t, t), dtype=bool), 1)
    caches = []
    for i in range(layers):
        h, ln1 = ln_forward(x, p[f"{i}.ln1_g"], p[f"{i}.ln1_b"])
        qkv = h @ p[f"{i}.qkv_w"] + p[f"{i}.qkv_b"]
        q, k, v = np.split(qkv.reshape(bsz, t, 3, heads, hd).transpose(2, 0, 3, 1, 4), 3)
        q, k, v = q[0], k[0], v[0]
        s = (q @ k.transpose(0, 1, 3, 2)) / np.float32(math.sqrt(hd))
        s = np.where(mask, np.float32(-np.inf), s)
        s = s - s.max(-1, keepdims=True)
        e = np.exp(s)
        att = e / e.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(bsz, t, d)
        x = x + y @ p[f"{i}.proj_w"] + p[f"{i}.proj_b"]
        h2, ln2 = ln_forward(x, p[f"{i}.ln2_g"], p[f"{i}.ln2_b"])
        u = h2 @ p[f"{i}.fc_w"] + p[f"{i}.fc_b"]
        th = np.tanh(GELU_C * (u + 0.044715 * u * u * u))
        gl = 0.5 * u * (1.0 + th)
        x = x + gl @ p[f"{i}.fc2_w"] + p[f"{i}.fc2_b"]
        caches.append((h, ln1, q, k, v, att, y, h2, ln2, u, th, gl))
    xf, lnf = ln_forward(x, p["lnf_g"], p["lnf_b"])
    head = p["head_w"] if "head_w" in p else p["wte"].T
    logits = xf @ head
    logits = logits - logits.max(-1, keepdims=True)
    e = np.exp(logits)
    probs = e / e.sum(-1, keepdims=True)
    n = bsz * t
    flat = probs.reshape(n, -1)
    picked = flat[np.arange(n), targets.reshape(-1)]
    loss = float(-np.log(np.maximum(picked, 1e-30)).mean())
    if not need_grad:
        # Without gradients: the top-1 accuracy instead.
        return loss, float((flat.argmax(-1) == targets.reshape(-1)).mean())

    g = {name: None for name in p}
    dlogits = flat.copy()
    dlogits[np.arange(n), targets.reshape(-1)] -= 1.0
    dlogits = (dlogits / n).reshape(bsz, t, -1).astype(np.float32)
    dhead = xf.reshape(n, d).T @ dlogits.reshape(n, -1)
    if "head_w" in p:
        g["head_w"] = dhead
        g["wte"] = np.zeros_like(p["wte"])
    else:
        g["wte"] = dhead.T.copy()
    dx, g["lnf_g"], g["lnf_b"] = ln_backward(dlogits @ head.T, lnf)
    for i in reversed(range(layers)):
        h, ln1, q, k, v, att, y, h2, ln2, u, th, gl = caches[i]
        # MLP
        dm = dx.reshape(n, d)
        g[f"{i}.fc2_w"] = gl.reshape(n, -1).T @ dm
        g[f"{i}.fc2_b"] = dm.sum(0)
        dgl = dx @ p[f"{i}.fc2_w"].T
        du = dgl * (
            0.5 * (1.0 + th)
            + 0.5 * u * (1.0 - th * th) * GELU_C * (1.0 + 3 * 0.044715 * u * u)
        )
        g[f"{i}.fc_w"] = h2.reshape(n, d).T @ du.reshape(n, -1)
        g[f"{i}.fc_b"] = du.reshape(n, -1).sum(0)
        dh2 = du @ p[f"{i}.fc_w"].T
        dxl, g[f"{i}.ln2_g"], g[f"{i}.ln2_b"] = ln_backward(dh2, ln2)
        dx = dx + dxl
        # Attention
        da = dx.reshape(n, d)
        g[f"{i}.proj_w"] = y.reshape(n, d).T @ da
        g[f"{i}.proj_b"] = da.sum(0)
        dy = (dx @ p[f"{i}.proj_w"].T).reshape(bsz, t, heads, hd).transpose(0, 2, 1, 3)
        datt = dy @ v.transpose(0, 1, 3, 2)
        dv = att.transpose(0, 1, 3, 2) @ dy
        ds = att * (datt - (datt * att).sum(-1, keepdims=True))
        ds = ds / np.float32(math.sqrt(hd))
        dq = ds @ k
        dk = ds.transpose(0, 1, 3, 2) @ q
        dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(bsz, t, 3 * d)
        g[f"{i}.qkv_w"] = h.reshape(n, d).T @ dqkv.reshape(n, -1)
        g[f"{i}.qkv_b"] = dqkv.reshape(n, -1).sum(0)
        dh = dqkv @ p[f"{i}.qkv_w"].T
        dxl, g[f"{i}.ln1_g"], g[f"{i}.ln1_b"] = ln_backward(dh, ln1)
        dx = dx + dxl
    np.add.at(g["wte"], inputs.reshape(-1), dx.reshape(n, d))
    g["wpe"] = np.zeros_like(p["wpe"])
    g["wpe"][:t] = dx.sum(0)
    return loss, g


class AdamW:
    def __init__(self, params, opt):
        self.opt = opt
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params, grads, lr):
        o = self.opt
        if o["grad_clip"] > 0:
            norm = math.sqrt(sum(float((gr.astype(np.float64) ** 2).sum()) for gr in grads.values()))
            if norm > o["grad_clip"]:
                scale = np.float32(o["grad_clip"] / (norm + 1e-6))
                grads = {k: gr * scale for k, gr in grads.items()}
        self.t += 1
        b1, b2 = o["beta1"], o["beta2"]
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for k, p in params.items():
            gr = grads[k]
            self.m[k] = b1 * self.m[k] + (1 - b1) * gr
            self.v[k] = b2 * self.v[k] + (1 - b2) * gr * gr
            if p.ndim >= 2:
                p *= np.float32(1 - lr * o["weight_decay"])
            p -= (lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + 1e-8)).astype(np.float32)


METRICS = ("top1", "perplexity")


def evaluate(p, job, val):
    """Validation loss, and the metrics the job asks for (of METRICS)."""
    batch = job["batch"]
    total, top1, count = 0.0, 0.0, 0
    for first in range(0, len(val), batch):
        chunk = val[first : first + batch]
        loss, accuracy = forward(p, job, chunk[:, :-1], chunk[:, 1:], False)
        total += loss * chunk.shape[0]
        top1 += accuracy * chunk.shape[0]
        count += chunk.shape[0]
    loss = total / count
    measured = {"top1": top1 / count, "perplexity": math.exp(loss)}
    return loss, {m: measured[m] for m in job.get("metrics", [])}


def main():
    job = sc.read_job()
    sc.require_parametrization(job)
    sc.require_metrics(job, METRICS)
    rng = np.random.default_rng(job["seed"])
    params = init(job, rng)
    count = sum(v.size for v in params.values())
    train = sc.sequences(job, "train")
    val = sc.sequences(job, "val")
    opt = AdamW(params, job["optimizer"])
    curve = sc.Curve(job)
    batch, steps = job["batch"], job["steps"]
    train_seconds = 0.0
    val_loss, metrics = None, {}
    for step in range(steps):
        lr = job["schedule"]["lr"][step]
        seqs = train[step * batch : (step + 1) * batch]
        t0 = time.perf_counter()
        loss, grads = forward(params, job, seqs[:, :-1], seqs[:, 1:], True)
        if not sc.finite(loss):
            curve.point(step + 1, loss, lr)
            break
        opt.step(params, grads, lr)
        train_seconds += time.perf_counter() - t0
        done = step + 1
        evaluate_now = done % job["eval_every"] == 0 or done == steps
        if evaluate_now:
            val_loss, metrics = evaluate(params, job, val)
        else:
            val_loss = None
        curve.point(done, loss, lr, val_loss, metrics if evaluate_now else None)
    curve.close()
    sc.write_result(job, val_loss, curve.elapsed(), count, "cpu (numpy)", train_seconds, metrics)


if __name__ == "__main__":
    sys.exit(main())
