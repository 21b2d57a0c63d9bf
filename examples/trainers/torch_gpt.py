#!/usr/bin/env python3
"""A PyTorch trainer for scalebook's trainer contract: the GPT of the built-in engine and of
PyTorch's throughput reference (token and learned position embeddings, pre-LayerNorm
blocks [LN -> causal multi-head attention with a fused QKV projection with bias and an
output projection with bias -> residual; LN -> Linear(d, 4d) -> GELU(tanh) -> Linear(4d, d)
-> residual], final LayerNorm, head without bias or tied to the token embedding; N(0, 0.02)
init, zero biases), AdamW with weight decay on matrices only, global gradient clipping and
the job's per-step learning rates. On the CPU, or on the GPU scalebook assigns
(`scalebook run --devices 0,1,...` sets CUDA_VISIBLE_DEVICES per run).

    trainer:
      command: python3 torch_gpt.py --spec {spec}
      version_file: torch_gpt.py
      workdir: examples/trainers

`--model-from FILE` trains the `GPT` class of another file instead — PyTorch's throughput
reference, `gpt_torch.py`, whose `GPT(layers, d, h, vocab, ctx)` returns logits (untied
head only); `scalebook bench study` uses it to time a whole grid against that model.
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import scalebook_contract as sc


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        shape = (b, t, self.heads, d // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, m):
        super().__init__()
        d = m["d_model"]
        self.wte = nn.Embedding(m["vocab"], d)
        self.wpe = nn.Embedding(m["context"], d)
        self.blocks = nn.ModuleList(Block(d, m["heads"]) for _ in range(m["layers"]))
        self.lnf = nn.LayerNorm(d)
        self.head = None if m["tie_embeddings"] else nn.Linear(d, m["vocab"], bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif not name.endswith(".weight"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        x = self.lnf(x)
        logits = self.head(x) if self.head is not None else x @ self.wte.weight.T
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class Reference(nn.Module):
    """The `GPT` of another file (`--model-from`), giving the loss like `GPT` above."""

    def __init__(self, path, m):
        super().__init__()
        import importlib.util

        spec = importlib.util.spec_from_file_location("reference_gpt", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if m["tie_embeddings"]:
            sys.exit(f"{path}: the reference model has an untied head; the job ties it")
        self.net = module.GPT(m["layers"], m["d_model"], m["heads"], m["vocab"], m["context"])

    def forward(self, idx, targets):
        logits = self.net(idx)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def build(job):
    args = sys.argv[1:]
    if "--model-from" in args:
        return Reference(args[args.index("--model-from") + 1], job["model"])
    return GPT(job["model"])


def device_of(job):
    if job["device"] != "cpu" and torch.cuda.is_available():
        return torch.device("cuda:0")  # CUDA_VISIBLE_DEVICES holds the assigned device
    return torch.device("cpu")


@torch.no_grad()
def evaluate(model, val, batch):
    total, count = 0.0, 0
    for first in range(0, val.shape[0], batch):
        chunk = val[first : first + batch]
        loss = model(chunk[:, :-1], chunk[:, 1:])
        total += loss.item() * chunk.shape[0]
        count += chunk.shape[0]
    return total / count


def main():
    job = sc.read_job()
    sc.require_parametrization(job)
    sc.require_metrics(job)
    torch.manual_seed(job["seed"])
    torch.set_num_threads(max(1, job["threads"]))
    device = device_of(job)
    model = build(job).to(device)
    count = sum(p.numel() for p in model.parameters())
    train = torch.from_numpy(sc.sequences(job, "train")).to(device)
    val = torch.from_numpy(sc.sequences(job, "val")).to(device)
    o = job["optimizer"]
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": matrices, "weight_decay": o["weight_decay"]},
            {"params": vectors, "weight_decay": 0.0},
        ],
        lr=o["lr"],
        betas=(o["beta1"], o["beta2"]),
        eps=1e-8,
    )
    curve = sc.Curve(job)
    batch, steps = job["batch"], job["steps"]
    train_seconds = 0.0
    val_loss = None
    name = (
        f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu (torch)"
    )
    for step in range(steps):
        lr = job["schedule"]["lr"][step]
        for group in opt.param_groups:
            group["lr"] = lr
        seqs = train[step * batch : (step + 1) * batch]
        t0 = time.perf_counter()
        loss = model(seqs[:, :-1], seqs[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if o["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o["grad_clip"])
        opt.step()
        value = loss.item()
        train_seconds += time.perf_counter() - t0
        if not sc.finite(value):
            curve.point(step + 1, value, lr)
            break
        done = step + 1
        evaluate_now = done % job["eval_every"] == 0 or done == steps
        val_loss = evaluate(model, val, batch) if evaluate_now else None
        curve.point(done, value, lr, val_loss)
    curve.close()
    sc.write_result(job, val_loss, curve.elapsed(), count, name, train_seconds)


if __name__ == "__main__":
    sys.exit(main())
