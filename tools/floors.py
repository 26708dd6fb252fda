"""The compute floor of the benchmark's image encodes: FLOPs per encode and this machine's matmul peak.

A ratio goal such as "image encode <= 0.8 x PyTorch" can only be met where 0.8 x PyTorch's time
is above the time the encode's matrix products need at the best rate this CPU reaches. This
module counts an encode's FLOPs from the model's config.json and measures that rate (PyTorch's
f32 matmul of 2048 x 2048 by 2048 x 2048, the same thread count as the benchmark, median of 9),
so `tools/bench_pytorch.py` can say, per model, whether a goal is reachable on the machine.

Run alone (it prints one JSON object):

    python3 tools/floors.py --threads 2 [--config target/bench-models/vit-b16/config.json]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIDE = 2048
RUNS = 9
# The goal for image encodes: at most this fraction of PyTorch's time.
GOAL = 0.8


def matmul_peak_gflops(threads: int) -> dict:
    """Median and best GFLOP/s of a square f32 matmul with `threads` threads (imports torch)."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(SIDE, SIDE)
    b = torch.randn(SIDE, SIDE)
    for _ in range(2):
        a @ b
    rates = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        a @ b
        rates.append(2 * SIDE**3 / (time.perf_counter() - t0) / 1e9)
    return {
        "what": f"torch f32 matmul {SIDE}x{SIDE}x{SIDE}, {threads} threads, {RUNS} runs",
        "median_gflops": round(statistics.median(rates), 1),
        "best_gflops": round(max(rates), 1),
    }


def vision_products(config: dict) -> list[tuple[int, int, int, int]]:
    """(m, k, n, count) of one image's per-layer matrix products as PyTorch runs them: q, k,
    v and the output projection (four m x d x d), then the MLP's two."""
    v = config["vision_config"]
    patch = v.get("patch_size", 32)
    d = v.get("hidden_size", 768)
    mlp = v.get("intermediate_size", 4 * d)
    layers = v.get("num_hidden_layers", 12)
    t = (v.get("image_size", 224) // patch) ** 2 + 1
    return [(t, d, d, 4 * layers), (t, d, mlp, layers), (t, mlp, d, layers)]


def products_ms(products: list[tuple[int, int, int, int]], threads: int) -> float:
    """PyTorch's time for `products` alone (each the median of 15 runs, times its count): what its
    own kernels need for an encode's matrix products at the encode's shapes."""
    import torch

    torch.set_num_threads(threads)
    total = 0.0
    for m, k, n, count in products:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        total += statistics.median(times) * count
    return total * 1e3


def vision_gflop(config: dict, image_size: int | None = None) -> float:
    """FLOPs (as 2 x multiply-adds) of one image's vision pass: patch embedding, every layer's
    projections, MLP and attention, and the visual projection of every token."""
    v = config["vision_config"]
    side = image_size or v.get("image_size", 224)
    patch = v.get("patch_size", 32)
    d = v.get("hidden_size", 768)
    mlp = v.get("intermediate_size", 4 * d)
    layers = v.get("num_hidden_layers", 12)
    proj = config.get("projection_dim", 512)
    patches = (side // patch) ** 2
    t = patches + 1
    macs = patches * 3 * patch * patch * d
    macs += layers * (t * (4 * d * d + 2 * d * mlp) + 2 * t * t * d)
    macs += t * d * proj
    return 2 * macs / 1e9


def floor_ms(gflop: float, gflops: float) -> float:
    """The least time `gflop` of work takes at `gflops`."""
    return gflop / gflops * 1e3


def reach(gflop: float, peak_gflops: float, pytorch_ms: float, goal_ratio: float) -> dict:
    """Whether `goal_ratio` x PyTorch's time leaves room for the work at the measured peak."""
    floor = floor_ms(gflop, peak_gflops)
    goal = goal_ratio * pytorch_ms
    return {
        "gflop": round(gflop, 2),
        "floor_ms": round(floor, 1),
        "goal_ratio": goal_ratio,
        "goal_ms": round(goal, 1),
        "pytorch_gflops": round(gflop / pytorch_ms * 1e3, 1),
        "reachable": goal >= floor,
    }


def run(config: Path, threads: int, env: dict) -> tuple[dict | None, str | None, list[str]]:
    """This script in a fresh subprocess on `config` -> (its JSON or None, error or None, command)."""
    cmd = [sys.executable, __file__, "--threads", str(threads), "--config", str(config)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"floors subprocess exited with status {done.returncode}", cmd
        return json.loads(done.stdout), None, cmd
    except (OSError, json.JSONDecodeError) as e:
        return None, f"floors subprocess failed ({e})", cmd


def summarize(repeats: list[dict], summary: list[dict], goal_ratio: float = GOAL) -> dict:
    """Per model: the peak and the products' time (medians over the repeats) and whether
    `goal_ratio` x PyTorch's image encode (its median) is above the floor each sets."""
    out = {}
    for name in sorted({m for r in repeats for m in (r.get("floors") or {})}):
        runs = [r["floors"][name] for r in repeats if (r.get("floors") or {}).get(name)]
        if not runs:
            continue
        peak = statistics.median(x["matmul_peak"]["median_gflops"] for x in runs)
        products = statistics.median(x["image_encode_products_ms"] for x in runs)
        gflop = runs[0]["image_encode_gflop"]
        row = next((s for s in summary if s["model"] == name and s["measure"] == "image_encode"), None)
        entry = {"matmul_peak_gflops": peak, "image_encode_gflop": gflop,
                 "pytorch_products_ms": products}
        if row and row.get("pytorch_median"):
            torch_ms = row["pytorch_median"]
            entry["at_peak"] = reach(gflop, peak, torch_ms, goal_ratio)
            entry["goal_over_products"] = round(goal_ratio * torch_ms / products, 3)
        out[name] = entry
    return out


def describe(floors: dict) -> list[str]:
    """One line per model for the benchmark's report."""
    lines = []
    for name, f in floors.items():
        line = (f"{name} image encode: {f['image_encode_gflop']} GFLOP; matmul peak {f['matmul_peak_gflops']} "
                f"GFLOP/s; PyTorch's products alone {f['pytorch_products_ms']} ms")
        if "at_peak" in f:
            a = f["at_peak"]
            verdict = "room" if a["reachable"] else "BELOW the floor: not reachable in f32 on this machine"
            line += (f"; floor at peak {a['floor_ms']} ms; {a['goal_ratio']} x PyTorch = {a['goal_ms']} ms "
                     f"({verdict}); PyTorch runs the encode at {a['pytorch_gflops']} GFLOP/s")
        lines.append(line)
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", help="also print the image encode's GFLOP of this config.json")
    args = ap.parse_args(argv)
    out = {"matmul_peak": matmul_peak_gflops(args.threads)}
    if args.config:
        config = json.loads(Path(args.config).read_text())
        out["image_encode_gflop"] = round(vision_gflop(config), 2)
        out["image_encode_products_ms"] = round(products_ms(vision_products(config), args.threads), 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
