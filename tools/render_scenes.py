"""Independent renderer of shapes-world scenes (a second code path, not ours).

`clipscope synth` draws scenes with our Rust tiny-skia renderer and writes
`scenes.jsonl`. This script re-draws the *described* scenes with Pillow's
ImageDraw so the model can be checked on images made by another program:
same shapes, colour names, positions, sizes, rotations and relations (so every
caption and probe stays true), but different pixels:

- drawn at 4x (896 px) with polygons/ellipses and downsampled with
  Image.LANCZOS (supersampled anti-aliasing, not tiny-skia's coverage AA);
- its own colour per colour name (the per-object ``rgb`` in the JSON is ignored);
- a faint darker outline (~1.25 px) on every shape;
- a slight linear background gradient (+-6 grey levels around ``background``,
  in a direction chosen per scene from its file name) instead of a flat fill.

Geometry (from the description of the format): canvas 224x224; object centred
at (x*224, y*224); r = size*224/2; circle radius r; square half-side 0.88r;
triangle equilateral pointing up, vertices at radius r at -90/30/150 degrees,
shifted down by 0.15r; star 5 points, outer r, inner 0.45r, first point up;
cross = plus sign, arm half-length 0.95r, half-width 0.32r; rotation in degrees,
clockwise on screen (y down), about the centre. Objects drawn in list order.
Check of the geometry: ``render(scene, key, palette=None, outline=False,
gradient=False)`` (JSON rgb, no outline, flat background) differs from the Rust
PNGs only along anti-aliased edges (mean |diff| ~0.17 grey levels, max < 60).

Output: ``OUT/<file>`` for every line and ``OUT/scenes.jsonl`` with the input
lines unchanged except for an added ``"renderer":"pil"`` field. Deterministic:
re-running gives byte-identical files.

Command (from the repository root; the committed fixture
tests/fixtures/independent/ was made this way):

    ./target/release/clipscope synth --out /tmp/indep_src --n 48 --seed 777 --split validation
    /work/pyenv/bin/python tools/render_scenes.py --scenes /tmp/indep_src/scenes.jsonl \
        --out tests/fixtures/independent

Needs only Pillow and numpy (both listed in tools/requirements.txt).
"""

import argparse
import json
import math
import os
import sys
import zlib

import numpy as np
from PIL import Image, ImageDraw

SIZE = 224
SS = 4  # supersampling factor
BIG = SIZE * SS

# Our own palette, one colour per name (close to the usual named colours, not
# the jittered per-object rgb the Rust renderer uses).
PALETTE = {
    "red": (228, 42, 40),
    "green": (36, 168, 62),
    "blue": (38, 78, 222),
    "yellow": (246, 212, 36),
    "purple": (138, 44, 184),
    "orange": (246, 128, 22),
}
OUTLINE_DARKEN = 0.8  # outline colour = fill * this
OUTLINE_WIDTH = 5  # at 4x, i.e. ~1.25 output pixels
GRADIENT = 6.0  # +- grey levels


def shape_points(shape, r):
    """Outline of a shape in local coordinates (centre at 0,0; y down), unrotated."""
    if shape == "square":
        h = 0.88 * r
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if shape == "triangle":
        pts = []
        for deg in (-90.0, 30.0, 150.0):
            a = math.radians(deg)
            pts.append((r * math.cos(a), r * math.sin(a) + 0.15 * r))
        return pts
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = math.radians(-90.0 + 36.0 * k)
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return pts
    if shape == "cross":
        a, w = 0.95 * r, 0.32 * r
        return [
            (-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w),
            (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w),
        ]
    raise ValueError(f"unknown shape {shape!r}")


def to_big(px, py):
    """Output-pixel coordinates (continuous, 0..224; pixel i spans [i, i+1)) to 4x canvas."""
    return (px * SS, py * SS)


# Pillow fills every big pixel whose index lies between the floored vertex
# coordinates, both ends included: a shape comes out about half a big pixel
# fatter on every side. Shapes are inset by this much so sizes stay exact.
PILLOW_GROWTH = 0.5


def inset(pts, d):
    """Move every edge of a simple polygon inward by d (mitred corners)."""
    n = len(pts)
    area2 = sum(pts[i][0] * pts[(i + 1) % n][1] - pts[(i + 1) % n][0] * pts[i][1] for i in range(n))
    sign = 1.0 if area2 > 0 else -1.0
    lines = []
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        ex, ey = x1 - x0, y1 - y0
        length = math.hypot(ex, ey)
        nx, ny = -sign * ey / length, sign * ex / length  # inward unit normal
        lines.append(((x0 + d * nx, y0 + d * ny), (ex, ey)))
    out = []
    for i in range(n):
        (px, py), (ax, ay) = lines[i - 1]
        (qx, qy), (bx, by) = lines[i]
        den = ax * by - ay * bx
        t = ((qx - px) * by - (qy - py) * bx) / den
        out.append((px + t * ax, py + t * ay))
    return out


def background(level, key):
    """Slight linear gradient around `level`, direction fixed by `key`."""
    h = zlib.crc32(key.encode("utf-8"))
    angle = (h % 3600) / 10.0
    a = math.radians(angle)
    c = (np.arange(BIG, dtype=np.float64) + 0.5) / BIG - 0.5  # -0.5..0.5
    xx, yy = np.meshgrid(c, c)
    proj = xx * math.cos(a) + yy * math.sin(a)
    t = proj / (0.5 * (abs(math.cos(a)) + abs(math.sin(a))))  # -1..1 corner to corner
    grey = np.clip(np.rint(level + GRADIENT * t), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), "RGB")


def render(scene, key, palette=PALETTE, outline=True, gradient=True):
    """Render one scene dict (the JSON ``scene`` object) to a 224x224 RGB image."""
    level = int(scene["background"])
    if gradient:
        im = background(level, key)
    else:
        im = Image.new("RGB", (BIG, BIG), (level, level, level))
    draw = ImageDraw.Draw(im)
    for obj in scene["objects"]:
        fill = tuple(palette[obj["colour"]]) if palette else tuple(obj["rgb"])
        edge = tuple(int(round(v * OUTLINE_DARKEN)) for v in fill) if outline else None
        width = OUTLINE_WIDTH if outline else 0
        cx, cy = obj["x"] * SIZE, obj["y"] * SIZE
        r = obj["size"] * SIZE / 2.0
        if obj["shape"] == "circle":
            x0, y0 = to_big(cx - r, cy - r)
            x1, y1 = to_big(cx + r, cy + r)
            g = PILLOW_GROWTH
            draw.ellipse([x0 + g, y0 + g, x1 - g, y1 - g], fill=fill, outline=edge, width=width)
            continue
        th = math.radians(obj["rotation"])
        c, s = math.cos(th), math.sin(th)
        # Screen coordinates have y down, so this matrix turns clockwise on screen.
        pts = [to_big(cx + px * c - py * s, cy + px * s + py * c)
               for px, py in shape_points(obj["shape"], r)]
        draw.polygon(inset(pts, PILLOW_GROWTH), fill=fill, outline=edge, width=width)
    return im.resize((SIZE, SIZE), Image.LANCZOS)


def with_renderer(line):
    """The input line, byte-identical, with ``"renderer":"pil"`` added at the end."""
    text = line.rstrip("\r\n").rstrip()
    if not text.endswith("}"):
        raise ValueError("scenes.jsonl line is not a JSON object")
    out = text[:-1].rstrip() + ',"renderer":"pil"}'
    want = json.loads(text)
    want["renderer"] = "pil"
    assert json.loads(out) == want
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", required=True, help="input scenes.jsonl (from clipscope synth)")
    ap.add_argument("--out", required=True, help="output folder for PNGs and scenes.jsonl")
    args = ap.parse_args(argv)

    with open(args.scenes, encoding="utf-8") as f:
        lines = [l for l in f if l.strip()]
    os.makedirs(args.out, exist_ok=True)
    out_lines = []
    for line in lines:
        rec = json.loads(line)
        name = rec["file"]
        if os.path.basename(name) != name:
            raise ValueError(f"unexpected file name {name!r}")
        img = render(rec["scene"], name)
        img.save(os.path.join(args.out, name), optimize=True)
        out_lines.append(with_renderer(line))
    tmp = os.path.join(args.out, "scenes.jsonl.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(out_lines) + "\n")
    os.replace(tmp, os.path.join(args.out, "scenes.jsonl"))
    print(f"rendered {len(out_lines)} scenes into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
