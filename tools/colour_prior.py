"""Measures how much a shapes-world model reads an object's shape off its colour.

Two measures, both through the clipscope binary (nothing here imports torch):

1. Colourless shape words on the held-out split: for every description probe whose hard negative
   swaps the shape, the image is scored against "a <true shape>" and "a <wrong shape>" alone, and
   the errors are counted separately for objects of a held-out colour-shape pair (never drawn in
   training) and of a training pair. A model that reads outlines errs alike on both.
2. A round blob (four overlapping discs) in each object colour on white: the rank of "a circle"
   among the five shape words. A model that learnt "purple is never a circle" ranks it low for
   purple only.

    cargo build --release
    python tools/colour_prior.py --model runs/clip-224s --n 150

Needs Pillow (`pip install pillow`) for the blobs.
"""

import argparse
import json
import os
import subprocess
import tempfile

HELD_OUT = {("red", "star"), ("green", "triangle"), ("blue", "cross"),
            ("yellow", "square"), ("purple", "circle")}
SHAPES = ["circle", "square", "triangle", "star", "cross"]
COLOURS = {"red": (220, 30, 35), "green": (30, 170, 50), "blue": (35, 70, 220),
           "yellow": (240, 210, 30), "purple": (140, 40, 180), "orange": (245, 130, 20)}


def cosines(binary, model, image, prompts):
    cmd = [binary, "score", "--image", image, "--json"]
    if model:
        cmd += ["--model", model]
    for p in prompts:
        cmd += ["--prompt", p]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [p["clip_cosine"] for p in json.loads(out)["prompts"]]


def colourless(binary, model, n, seed, folder):
    subprocess.run([binary, "synth", "--out", folder, "--n", str(n), "--seed", str(seed),
                    "--split", "heldout"], check=True, capture_output=True)
    counts = {"held-out pair": [0, 0], "training pair": [0, 0]}
    for line in open(os.path.join(folder, "scenes.jsonl")):
        scene = json.loads(line)
        present = {o["shape"] for o in scene["scene"]["objects"]}
        for probe in scene["probes"]:
            if probe["family"] != "description":
                continue
            colour, shape = probe["truth"].split()[-2:]
            wrong = [w.split()[-1] for w in probe["negatives"] if w.split()[-1] != shape]
            if not wrong or wrong[0] in present:
                continue
            image = os.path.join(folder, scene["file"])
            right, other = cosines(binary, model, image, [f"a {shape}", f"a {wrong[0]}"])
            kind = "held-out pair" if (colour, shape) in HELD_OUT else "training pair"
            counts[kind][1] += 1
            counts[kind][0] += other >= right
    for kind, (errors, total) in counts.items():
        print(f"colourless shape word, {kind}: wrong {errors}/{total}"
              f" ({errors / max(total, 1):.2f})")


def blobs(binary, model, folder):
    from PIL import Image, ImageDraw

    for name, rgb in COLOURS.items():
        image = Image.new("RGB", (224, 224), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        for x, y, r in [(100, 110, 40), (130, 100, 35), (115, 135, 30), (90, 90, 25)]:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=rgb)
        path = os.path.join(folder, f"blob-{name}.png")
        image.save(path)
        scores = cosines(binary, model, path, [f"a {s}" for s in SHAPES])
        rank = sorted(scores, reverse=True).index(scores[0]) + 1
        best = SHAPES[scores.index(max(scores))]
        print(f"round {name} blob: 'a circle' ranks {rank} of 5 (top: {best})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/clipscope")
    parser.add_argument("--model", default=None, help="model folder (default: embedded)")
    parser.add_argument("--n", type=int, default=150, help="held-out scenes")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        colourless(args.binary, args.model, args.n, args.seed, folder)
        blobs(args.binary, args.model, folder)


if __name__ == "__main__":
    main()
