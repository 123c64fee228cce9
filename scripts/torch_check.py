#!/usr/bin/python3
"""scripts/torch_check.py: development cross-check of tailor's CPU trainer
(quality/) against PyTorch.

For each model below, tools/qual_dump builds the trainer's model, runs one
forward and backward on a random batch and writes the weights
(tailor-weights/1), the batch, the loss and every gradient. This script builds
the same model in plain PyTorch (torch.nn.functional: conv1d for the gated
short conv, softmax attention with repeat_interleave for GQA, rotate-half
RoPE, RMSNorm, SwiGLU, tied head), recomputes loss and gradients with
autograd, and checks that they agree to 1e-4 relative (max |diff| / max |ref|
per tensor). It also runs PyTorch in float64, so the report shows how far
each f32 implementation is from exact.

Models: LFM2's gated short conv + SwiGLU, GQA (RoPE, per-head QK-norm) +
SwiGLU, and an LFM2-like hybrid of both.

Usage: scripts/torch_check.py --dump build/tests/qual_dump [--bench]
  --bench also times a training step (forward, backward, AdamW) of a model of
  width 128, depth 8 (4 conv + 4 GQA mixers... see BENCH below) at sequence
  256 on 2 threads, for the comparison with `tailor train`.
Runs with Debian's python3-torch (/usr/bin/python3); exits 77 (skipped) when
torch is missing, 1 when a check fails.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch_check: python3-torch is not installed: skipped")
    sys.exit(77)

HEAD = "tailor-genome/1 name={name} d=32 vocab=13 ffn_multiple=1 rope_theta=10000 tied=1"
SWIGLU = "op=3.0.0.2.0 ffn=96 C=0.2.1.1 V=0.2.1.1"
CONV = "op=1.3.0.0.0 len=3 C=0.2.1.1 B=0.2.1.1 V=0.2.1.1"
GQA = "op=0.4.0.1.1 h=4 kv=2 hd=8 qkn=1 rope=1 C=0.2.1.1 B=0.2.1.2 V=0.2.1.2"
MODELS = {
    "lfm2-conv+swiglu": HEAD.format(name="conv") + f" | 1.0.0.0.0 0.0.0.0.0 | c0 {SWIGLU} | c1 {CONV}",
    "gqa-rope-qknorm+swiglu": HEAD.format(name="gqa") + f" | 1.0.0.0.0 0.0.0.0.0 | c0 {SWIGLU} | c1 {GQA}",
    "lfm2-like-hybrid": HEAD.format(name="hybrid")
    + f" | 1.0.0.0.0 0.0.0.0.0 2.0.0.0.0 0.0.0.0.0 | c0 {SWIGLU} | c1 {CONV} | c2 {GQA}",
}
GROUPS = "CBVA"


def parse_arch(text):
    lines = [l for l in text.splitlines() if l.strip()]
    head = dict(kv.split("=") for kv in lines[0].split()[1:])
    arch = {"d": int(head["d"]), "vocab": int(head["vocab"]),
            "theta": float(head.get("rope_theta", 10000)), "layers": []}
    for line in lines[1:]:
        tok = line.split()
        feat, struct_, mask, nonlin, chmix = tok[1].split(".")
        L = {"feat": feat, "struct": struct_, "mask": mask, "nonlin": nonlin, "groups": {}}
        for kv in tok[2:]:
            k, v = kv.split("=", 1)
            if k in GROUPS:
                if v.startswith("from"):
                    raise SystemExit("torch_check: feature sharing is not modelled here")
                w, ch, conv, own = v.split("/")
                if ch != "dense" or conv != "conv0" or own != "w" + tok[0][1:]:
                    raise SystemExit("torch_check: only dense, conv-free, unshared projections")
                L["groups"][k] = int(w)
            else:
                L[k] = int(v)
        arch["layers"].append(L)
    return arch


def read_weights(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"TLWEIGHT", "not a tailor weights file"
    version, n = struct.unpack_from("<II", data, 8)
    assert version == 1
    off = 8 + 8 + 32
    tensors = []
    for _ in range(n):
        dtype, _pad, rows, cols = struct.unpack_from("<IIqq", data, off)
        off += 24
        assert dtype == 0, "f32 weights only"
        t = torch.frombuffer(bytearray(data[off:off + 4 * rows * cols]), dtype=torch.float32)
        tensors.append(t.reshape(rows, cols).clone())
        off += 4 * rows * cols
    assert off == len(data)
    return tensors


def build_params(arch, tensors):
    """Name the tensors in the runtime's order (operators/model.c)."""
    it = iter(tensors)
    P = {"embed": next(it), "fnorm": next(it)}
    for i, L in enumerate(arch["layers"]):
        P[f"{i}.norm"] = next(it)
        for g in GROUPS:
            if g in L["groups"]:
                P[f"{i}.proj.{g}"] = next(it)
        for g in GROUPS:
            if g in L["groups"] and L.get("qkn") and g in "CB":
                P[f"{i}.qkn.{g}"] = next(it)
        if L["struct"] == "toeplitz" and L["len"] > 1:
            P[f"{i}.kernel"] = next(it)
        P[f"{i}.out"] = next(it)
    assert next(it, None) is None, "more tensors than the arch has"
    return P


def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):
    # x (B, T, H, hd); HF rotate_half; angles in float64 as op_rope
    B, T, H, hd = x.shape
    half = hd // 2
    inv = theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos = torch.cos(ang).to(x.dtype)[None, :, None, :]
    sin = torch.sin(ang).to(x.dtype)[None, :, None, :]
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def forward(arch, P, tok, tgt):
    d = arch["d"]
    E = P["embed"]
    x = E[tok]
    B, T, _ = x.shape
    for i, L in enumerate(arch["layers"]):
        xn = rmsnorm(x, P[f"{i}.norm"][0])
        f = {g: xn @ P[f"{i}.proj.{g}"].T for g in L["groups"]}
        if L["struct"] == "dense":
            H, KV, hd = L["h"], L["kv"], L["hd"]
            q = f["C"].view(B, T, H, hd)
            k = f["B"].view(B, T, KV, hd)
            v = f["V"].view(B, T, KV, hd)
            if L.get("qkn"):
                q = rmsnorm(q, P[f"{i}.qkn.C"][0])
                k = rmsnorm(k, P[f"{i}.qkn.B"][0])
            if L.get("rope"):
                q, k = rope(q, arch["theta"]), rope(k, arch["theta"])
            k = k.repeat_interleave(H // KV, dim=2)
            v = v.repeat_interleave(H // KV, dim=2)
            s = torch.einsum("bihc,bjhc->bhij", q, k) / (hd ** 0.5)
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            s = s.masked_fill(~mask, float("-inf"))
            p = torch.softmax(s, dim=-1)
            y = torch.einsum("bhij,bjhc->bihc", p, v).reshape(B, T, H * hd)
        elif L["struct"] == "toeplitz":
            E_ = L["inner"]
            u = f["B"] * f["V"]
            if L["len"] > 1:
                Lk = L["len"]
                z = F.conv1d(u.transpose(1, 2), P[f"{i}.kernel"].unsqueeze(1), groups=E_,
                             padding=Lk - 1)[..., :T].transpose(1, 2)
            else:
                z = u
            y = f["C"] * z
        elif L["struct"] == "diagonal":
            assert L["nonlin"] == "silu"
            y = F.silu(f["C"]) * f["V"]
        else:
            raise SystemExit(f"torch_check: structure {L['struct']} not modelled")
        x = x + y @ P[f"{i}.out"].T
    xn = rmsnorm(x, P["fnorm"][0])
    logits = xn @ E.T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                           ignore_index=-1)


def check(name, text, dump, tmp):
    gpath = os.path.join(tmp, name + ".txt")
    with open(gpath, "w") as f:
        f.write(text + "\n")
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    subprocess.run([dump, gpath, d, "7", "2", "16"], check=True, stdout=subprocess.DEVNULL)
    arch = parse_arch(open(os.path.join(d, "arch.txt")).read())
    tensors = read_weights(os.path.join(d, "weights.bin"))
    raw = open(os.path.join(d, "batch.bin"), "rb").read()
    B, T = struct.unpack_from("<ii", raw, 0)
    ids = torch.frombuffer(bytearray(raw[8:]), dtype=torch.int32).long()
    tok, tgt = ids[:B * T].view(B, T), ids[B * T:].view(B, T)
    res = open(os.path.join(d, "result.bin"), "rb").read()
    c_loss = struct.unpack_from("<d", res, 0)[0]
    c_grad = torch.frombuffer(bytearray(res[8:]), dtype=torch.float32)
    ok = True
    out = {}
    for dtype in (torch.float32, torch.float64):
        P = build_params(arch, [t.detach().clone().to(dtype).requires_grad_() for t in tensors])
        loss = forward(arch, P, tok, tgt)
        loss.backward()
        grads = torch.cat([t.grad.reshape(-1) for t in P.values()])
        worst, worst_name = 0.0, ""
        off = 0
        for key, t in P.items():
            n = t.numel()
            ref = t.grad.reshape(-1).double()
            got = c_grad[off:off + n].double()
            e = ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
            if e > worst:
                worst, worst_name = e, key
            off += n
        assert off == grads.numel() == c_grad.numel()
        lrel = abs(c_loss - loss.item()) / abs(loss.item())
        out[dtype] = (loss.item(), lrel, worst, worst_name)
    l32, lrel32, g32, n32 = out[torch.float32]
    l64, lrel64, g64, n64 = out[torch.float64]
    status = "ok" if max(lrel32, g32) <= 1e-4 else "FAIL"
    ok = status == "ok"
    print(f"{name:24s} loss C {c_loss:.8f} torch-f32 {l32:.8f} (rel {lrel32:.1e}) "
          f"f64 {l64:.8f} (rel {lrel64:.1e}); grads max rel vs f32 {g32:.1e} ({n32}), "
          f"vs f64 {g64:.1e} ({n64}) {status}")
    return ok


# The benchmark model: width 128, 8 layers (an LFM2-like hybrid: shortconv,
# SwiGLU, GQA, SwiGLU, ...), vocab 256, sequence 256, batch 8.
BENCH = ("tailor-genome/1 name=bench d=128 vocab=256 ffn_multiple=1 rope_theta=10000 tied=1 | "
         "1.0.0.0.0 0.0.0.0.0 2.0.0.0.0 0.0.0.0.0 1.0.0.0.0 0.0.0.0.0 2.0.0.0.0 0.0.0.0.0 | "
         "c0 op=3.0.0.2.0 ffn=192 C=0.2.1.1 V=0.2.1.1 | c1 " + CONV +
         " | c2 op=0.4.0.1.1 h=2 kv=1 hd=64 qkn=1 rope=1 C=0.2.1.1 B=0.2.1.2 V=0.2.1.2")


def bench(dump, tmp, steps=10):
    torch.set_num_threads(2)
    gpath = os.path.join(tmp, "bench.txt")
    with open(gpath, "w") as f:
        f.write(BENCH + "\n")
    d = os.path.join(tmp, "bench")
    os.makedirs(d, exist_ok=True)
    subprocess.run([dump, gpath, d, "1", "1", "4"], check=True, stdout=subprocess.DEVNULL)
    arch = parse_arch(open(os.path.join(d, "arch.txt")).read())
    P = build_params(arch, [t.requires_grad_() for t in read_weights(os.path.join(d, "weights.bin"))])
    opt = torch.optim.AdamW(P.values(), lr=1e-3, weight_decay=0.1)
    B, T = 8, 256
    g = torch.Generator().manual_seed(0)
    tok = torch.randint(0, 256, (B, T), generator=g)
    tgt = torch.randint(0, 256, (B, T), generator=g)
    for s in range(steps + 2):
        if s == 2:
            t0 = time.perf_counter()
        opt.zero_grad()
        loss = forward(arch, P, tok, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(P.values(), 1.0)
        opt.step()
    dt = time.perf_counter() - t0
    print(f"pytorch {torch.__version__}, 2 threads: width 128, depth 8, sequence 256, batch 8: "
          f"{dt / steps * 1000:.0f} ms/step, {B * T * steps / dt:.0f} training tokens/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True, help="path of tools/qual_dump")
    ap.add_argument("--bench", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ok = all([check(n, t, a.dump, tmp) for n, t in MODELS.items()])
        if a.bench:
            bench(a.dump, tmp)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
