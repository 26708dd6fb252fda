"""Measures how much a shapes-world model reads an object's shape off its colour.

Two measures, both through the clipscope binary (nothing here imports torch):

1. Colourless shape words on the held-out split: for every description probe whose hard negative
   swaps the shape, the image is scored against "a <true shape>" and "a <wrong shape>" alone, and
   the errors are counted separately for objects of a held-out colour-shape pair (never drawn in
   training) and of a training pair. A model that reads outlines errs alike on both.
2. A round blob (four overlapping discs) in each object colour on white: the rank of "a circle"
   among the five shape words. A model that learnt "purple is never a circle" ranks it low for
   purple only.
3. Outlines alone: each of the five shapes drawn by Pillow on white in colours no object has
   (teal, chartreuse, pink; hues 30 degrees or more from every object colour), at two sizes and
   two rotations: how often its shape word is the top one of the five. Only the outline can
   answer; a model that reads shapes gets all 60.

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


def prompt_scores(binary, model, image, prompts, field="clip_cosine"):
    """`clipscope score --json`'s `field` of each prompt: the plain CLIP cosine unless told
    (`dcsm_score`: the DCSM scorer's, the prompts z-scored together)."""
    cmd = [binary, "score", "--image", image, "--json"]
    if model:
        cmd += ["--model", model]
    for p in prompts:
        cmd += ["--prompt", p]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [p[field] for p in json.loads(out)["prompts"]]


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
            right, other = prompt_scores(binary, model, image, [f"a {shape}", f"a {wrong[0]}"])
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
        scores = prompt_scores(binary, model, path, [f"a {s}" for s in SHAPES])
        rank = sorted(scores, reverse=True).index(scores[0]) + 1
        best = SHAPES[scores.index(max(scores))]
        print(f"round {name} blob: 'a circle' ranks {rank} of 5 (top: {best})")


OFF_PALETTE = {"teal": (20, 190, 170), "chartreuse": (150, 220, 30), "pink": (230, 40, 160)}


def outline(shape, cx, cy, r, angle):
    import math

    def at(points):
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]

    if shape == "square":
        return at([(-r, -r), (r, -r), (r, r), (-r, r)])
    if shape == "triangle":
        return at([(0, -r), (r * 0.866, r * 0.5), (-r * 0.866, r * 0.5)])
    if shape == "star":
        return at([(math.sin(k * math.pi / 5) * (r if k % 2 == 0 else r * 0.4),
                    -math.cos(k * math.pi / 5) * (r if k % 2 == 0 else r * 0.4))
                   for k in range(10)])
    if shape == "cross":
        a, b = r, r / 3
        return at([(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a),
                   (-b, b), (-a, b), (-a, -b), (-b, -b)])
    return None


def outlines(binary, model, folder):
    from PIL import Image, ImageDraw

    right, total, confusions = 0, 0, {}
    for name, rgb in OFF_PALETTE.items():
        for shape in SHAPES:
            for r in (28, 56):
                for angle in (0, 20):
                    image = Image.new("RGB", (224, 224), (255, 255, 255))
                    draw = ImageDraw.Draw(image)
                    points = outline(shape, 112, 112, r, angle)
                    if points is None:
                        draw.ellipse((112 - r, 112 - r, 112 + r, 112 + r), fill=rgb)
                    else:
                        draw.polygon(points, fill=rgb)
                    path = os.path.join(folder, f"outline-{name}-{shape}-{r}-{angle}.png")
                    image.save(path)
                    scores = prompt_scores(binary, model, path, [f"a {s}" for s in SHAPES])
                    best = SHAPES[scores.index(max(scores))]
                    total += 1
                    right += best == shape
                    if best != shape:
                        confusions[(shape, best)] = confusions.get((shape, best), 0) + 1
    print(f"outlines in colours no object has: shape word top {right}/{total}"
          f" ({right / total:.2f})")
    for (shape, best), n in sorted(confusions.items(), key=lambda kv: -kv[1]):
        print(f"  {shape} taken for {best}: {n}")


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
        outlines(args.binary, args.model, folder)


if __name__ == "__main__":
    main()
