#!/usr/bin/env python3
# scripts/compare_frontiers.py DB RUN_A RUN_B (a development tool, not a test): per-generation hypervolume of two runs, and
# for each run's final frontier: Kendall tau of its stored val_bpb against the
# 1M-token retraining (the newest quality.fidelity event of that run), and the
# frontier's 2-D hypervolume (val_bpb, params) with each value as stored and at 1M.
import sqlite3, sys, json, itertools
db = sqlite3.connect(sys.argv[1]); runs = [int(sys.argv[2]), int(sys.argv[3])]
def tau(x, y):
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        a, b = x[i] - x[j], y[i] - y[j]
        if a == 0 and b == 0: continue
        if a == 0: tx += 1
        elif b == 0: ty += 1
        elif (a > 0) == (b > 0): c += 1
        else: d += 1
    den = ((c + d + tx) * (c + d + ty)) ** 0.5
    return (c - d) / den if den else float('nan')
def hv2(pts, ref):
    pts = sorted(p for p in pts if p[0] < ref[0] and p[1] < ref[1])
    h, best = 0.0, ref[1]
    for x, y in pts:
        if y < best: h += (ref[0] - x) * (best - y); best = y
    return h
for r in runs:
    gens = db.execute("SELECT generation, hypervolume, frontier_size FROM generations WHERE run_id=? ORDER BY generation", (r,)).fetchall()
    print(f"run {r}: hypervolume per generation:", " ".join(f"{h:.4f}" for _, h, _ in gens))
    tok = db.execute("SELECT sum(json_extract(settings,'$.tokens')) FROM quality WHERE run_id=? AND metric='val_bpb'", (r,)).fetchone()[0]
    last = db.execute("SELECT max(generation) FROM candidates WHERE run_id=? AND rank IS NOT NULL", (r,)).fetchone()[0]
    fr = db.execute("SELECT genome_hash, objectives FROM candidates WHERE run_id=? AND generation=? AND rank=0 AND feasible=1", (r, last)).fetchall()
    ev = db.execute("SELECT data FROM events WHERE run_id=? AND kind='quality.fidelity' ORDER BY id DESC LIMIT 1", (r,)).fetchone()
    if not ev: print("  no 1M study"); continue
    st = json.loads(ev[0]); hi = {g["hash"]: g["val_bpb"][-1] for g in st["genomes"]}
    xs, ys, pts_s, pts_h = [], [], [], []
    for h, o in fr:
        o = json.loads(o)
        if h not in hi: continue
        xs.append(o["val_bpb"]); ys.append(hi[h])
        pts_s.append((o["val_bpb"], o["params"] / 1e6)); pts_h.append((hi[h], o["params"] / 1e6))
    print(f"  frontier {len(fr)} genomes ({len(xs)} retrained at {st['budgets'][-1]} tokens); tau(stored, 1M) = {tau(xs, ys):.2f}")
    print(f"  frontier val_bpb stored {min(xs):.3f}..{max(xs):.3f}, at 1M {min(ys):.3f}..{max(ys):.3f}")
    ref = (6.0, 20.0)
    print(f"  frontier 2-D hypervolume (val_bpb, params M; ref {ref}): stored {hv2(pts_s, ref):.3f}, at 1M {hv2(pts_h, ref):.3f}")
