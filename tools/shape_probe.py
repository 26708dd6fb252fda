"""How fast does a small model learn the shapes world's shapes? A diagnostic for the model card.

Two measures on scenes written by ``clipscope synth`` (centre square, resized to 112 px):

* ``probe MODEL_DIR``: a linear probe (logistic regression, L-BFGS) on a trained model's frozen
  vision features (the pooled CLS token and the mean patch token), for the presence of each
  shape and each colour. Which of them can be read off the features at all?
* ``train``: the same vision tower as the default model (transformers' ``CLIPVisionModel``:
  width 128, 4 layers, 4 heads, quick-GELU), trained from scratch in PyTorch directly on
  shape and colour presence (binary cross-entropy, AdamW), or a small CNN for comparison.
  Does a plain supervised objective learn shapes faster than our contrastive training does?

Usage (from the repository root, with tools/requirements.txt installed)::

    ./target/release/clipscope synth --out /tmp/shapes-train --n 12000 --split train --seed 11
    ./target/release/clipscope synth --out /tmp/shapes-val --n 2000 --split validation --seed 12
    python tools/shape_probe.py probe runs/clip-112e
    python tools/shape_probe.py train --steps 500
    python tools/shape_probe.py train --steps 300 --patch 8 --size 56
    python tools/shape_probe.py train --steps 300 --sincos
    python tools/shape_probe.py train --steps 300 --cnn

Accuracy is per label (a shape is present or not); predicting "absent" everywhere scores about
0.65 on shapes, because a scene holds one to three of the five.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPModel, CLIPVisionConfig, CLIPVisionModel

SHAPES = ["circle", "square", "triangle", "star", "cross"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def load(folder: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, size, size, 3) uint8 and labels (N, 41) of what is present: 5 shapes, 6 colours,
    then the 30 colour-shape pairs."""
    images, labels = [], []
    for line in (folder / "scenes.jsonl").read_text().splitlines():
        row = json.loads(line)
        im = Image.open(folder / row["file"]).convert("RGB")
        w, h = im.size
        c = min(w, h)
        left, top = (w - c) // 2, (h - c) // 2
        im = im.crop((left, top, left + c, top + c)).resize((size, size), Image.BICUBIC)
        images.append(np.asarray(im))
        y = np.zeros(41, np.float32)
        for o in row["scene"]["objects"]:
            s, k = SHAPES.index(o["shape"]), COLOURS.index(o["colour"])
            y[s] = y[5 + k] = y[11 + 5 * k + s] = 1
        labels.append(y)
    return torch.tensor(np.stack(images)), torch.tensor(np.stack(labels))


def pixels(x: torch.Tensor) -> torch.Tensor:
    return (x.permute(0, 3, 1, 2).float() / 255 - MEAN) / STD


def accuracy(logits: torch.Tensor, y: torch.Tensor, cols: slice) -> float:
    return ((logits[:, cols] > 0).float() == y[:, cols]).float().mean().item()


def probe(args, xa, ya, xv, yv) -> None:
    model = CLIPModel.from_pretrained(args.model, dtype=torch.float32).eval()

    def features(x):
        out = []
        with torch.no_grad():
            for i in range(0, len(x), 250):
                o = model.vision_model(pixel_values=pixels(x[i : i + 250]))
                out.append(torch.cat([o.pooler_output, o.last_hidden_state[:, 1:].mean(1)], 1))
        return torch.cat(out)

    fa, fv = features(xa[:6000]), features(xv)
    ya = ya[:6000]
    mu, sd = fa.mean(0), fa.std(0) + 1e-6
    a, v = (fa - mu) / sd, (fv - mu) / sd
    w = torch.zeros(a.shape[1], 41, requires_grad=True)
    b = torch.zeros(41, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a @ w + b, ya)
        loss = loss + 1e-4 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        lv, la = v @ w + b, a @ w + b
    print(
        f"linear probe: shape {accuracy(lv, yv, slice(0, 5)):.3f} (train {accuracy(la, ya, slice(0, 5)):.3f}),"
        f" colour {accuracy(lv, yv, slice(5, 11)):.3f}; shape base rate"
        f" {1 - yv[:, :5].mean().item():.3f}"
    )


def cnn() -> torch.nn.Module:
    def block(i, o):
        return [torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.GELU(), torch.nn.MaxPool2d(2)]

    return torch.nn.Sequential(
        *block(3, 32), *block(32, 64), *block(64, 96), *block(96, 128),
        torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(128, 41),
    )


def train(args, xa, ya, xv, yv) -> None:
    if args.cnn:
        net = cnn()
        forward = lambda x: net((x.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25)  # noqa: E731
        params = list(net.parameters())
    else:
        cfg = CLIPVisionConfig(
            hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
            image_size=args.size, patch_size=args.patch, hidden_act="quick_gelu",
        )
        tower, head = CLIPVisionModel(cfg), torch.nn.Linear(128, 41)
        if args.sincos:
            # 2-D sine-cosine position table (MAE's), amplitude 1, instead of N(0, 0.02).
            n, q = args.size // args.patch, 128 // 4
            omega = 1.0 / 10000 ** (torch.arange(q) / q)
            ys, xs = torch.meshgrid(torch.arange(n).float(), torch.arange(n).float(), indexing="ij")
            enc = lambda p: torch.cat([(p.reshape(-1, 1) * omega).sin(), (p.reshape(-1, 1) * omega).cos()], 1)  # noqa: E731
            table = [p for k, p in tower.named_parameters() if "position_embedding" in k][0]
            with torch.no_grad():
                table[1:] = torch.cat([enc(ys), enc(xs)], 1)
                table[0] = 0
        forward = lambda x: head(tower(pixel_values=pixels(x)).pooler_output)  # noqa: E731
        params = list(tower.parameters()) + list(head.parameters())
    # The ViT: weight decay 0.05, 30 warm-up steps, random horizontal flips; the CNN: AdamW's
    # defaults and no augmentation.
    opt = torch.optim.AdamW(params, lr=args.lr, **({} if args.cnn else {"weight_decay": 0.05}))
    warmup = 1 if args.cnn else 30
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    start = time.time()
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(xa), (args.batch,))
        x = xa[idx]
        if not args.cnn and torch.rand(1) < 0.5:
            x = x.flip(2)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(forward(x), ya[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            with torch.no_grad():
                lv = forward(xv[:1000])
            print(
                f"step {step}: loss {loss.item():.3f}, validation shape"
                f" {accuracy(lv, yv[:1000], slice(0, 5)):.3f}, colour"
                f" {accuracy(lv, yv[:1000], slice(5, 11)):.3f} ({time.time() - start:.0f} s)",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["probe", "train"])
    p.add_argument("model", nargs="?", help="model folder (probe)")
    p.add_argument("--train-dir", type=Path, default=Path("/tmp/shapes-train"))
    p.add_argument("--val-dir", type=Path, default=Path("/tmp/shapes-val"))
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--sincos", action="store_true", help="2-D sine-cosine position init")
    p.add_argument("--cnn", action="store_true", help="a 4-layer CNN instead of the ViT")
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    size = 112 if args.mode == "probe" else args.size
    xa, ya = load(args.train_dir, size)
    xv, yv = load(args.val_dir, size)
    (probe if args.mode == "probe" else train)(args, xa, ya, xv, yv)


if __name__ == "__main__":
    main()
