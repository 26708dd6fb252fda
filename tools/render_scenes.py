"""Independent renderer of shapes-world scenes (a second code path, not ours).

`clipscope synth` draws scenes with our Rust tiny-skia renderer and writes
`scenes.jsonl`. This script re-draws the *described* scenes with Pillow's
ImageDraw so the model can be checked on images made by another program:
same shapes, colour names, positions, sizes, rotations, relations, image size
and kind of background (so every caption and probe stays true), but different
pixels:

- drawn at 4x with polygons/ellipses and downsampled with Image.LANCZOS
  (supersampled anti-aliasing, not tiny-skia's coverage AA);
- its own colour per colour name (the per-object ``rgb`` in the JSON is ignored);
- a faint darker outline (~1.25 px) on every shape;
- its own variant of the scene's background: the gradient's ``from`` and
  ``to`` colours each shifted by up to +-6 levels per channel (so a plain
  background becomes a faint gradient), and its own noise (numpy RandomState
  seeded by the crc32 of the file name; same amplitude, another pattern).

Scene format (the ``scene`` object of a scenes.jsonl line):

- ``background``: ``{"from":[r,g,b],"to":[r,g,b],"angle":deg,"noise":n}``, a
  linear gradient across the whole image (not just the scene square) from
  ``from`` to ``to`` in direction ``angle`` (0: left to right, 90: top to
  bottom; y down): at pixel centre (u, v), each in -0.5..0.5 of the width and
  height, t = clamp((u cos a + v sin a) / sqrt(2) + 0.5, 0, 1); plain when
  from == to; plus uniform per-pixel noise of +-``noise`` levels (the same on
  the three channels). ``angle`` and ``noise`` default to 0. An old-format
  integer background is a plain grey of that level.
- ``aspect``: width / height of the image (default 1). The scene square of
  224x224 px sits in the centre of a W x H image, W = 224 + e(aspect),
  H = 224 + e(1/aspect), e(r) = ((round(224 max(r, 1)) - 224) // 2) * 2 (an
  even extra, so a centre crop of 224 takes exactly the square; rounding and
  arithmetic as Rust's f32). left = (W-224)/2, top = (H-224)/2.
- ``objects``: shape, colour, rgb, x, y, size (fractions of the scene
  square; size 1/12..1/2), rotation (degrees, -45..45).

Geometry: object centred at (left + x*224, top + y*224); r = size*224/2;
circle radius r; square half-side 0.88r; triangle equilateral pointing up,
vertices at radius r at -90/30/150 degrees, shifted down by 0.15r; star 5
points, outer r, inner 0.45r, first point up; cross = plus sign, arm
half-length 0.95r, half-width 0.32r; rotation clockwise on screen (y down),
about the centre. Objects drawn in list order.

The background is drawn at 4x under the shapes and, after the downsampling,
replaced by its exact output-resolution value (with the noise) away from the
shapes (blended by the downsampled shape coverage), so gradients and noise are
not smoothed by the supersampling.

Check of the geometry: ``render(scene, key, palette=None, outline=False,
gradient=False)`` is as close to the Rust renderer as this script gets (JSON
rgb, no outline, the scene's exact background colours without perturbation
or noise); it gives the Rust image sizes exactly and, on noise-free scenes,
differs from the Rust PNGs only within ~3 px of object edges (LANCZOS vs
tiny-skia anti-aliasing; on the 32 noise-free scenes of the fixture command
below: mean |diff| ~0.1 levels, max < 90).

Output: ``OUT/<file>`` for every line and ``OUT/scenes.jsonl`` with the input
lines unchanged except for an added ``"renderer":"pil"`` field. Deterministic:
re-running gives byte-identical files.

Command (from the repository root; the committed fixture
tests/fixtures/independent/ was made this way):

    ./target/release/clipscope synth --out /tmp/indep_src --n 48 --seed 777 --split validation
    python tools/render_scenes.py --scenes /tmp/indep_src/scenes.jsonl \
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

CANVAS = 224  # side of the scene square in output pixels
SIZE = CANVAS  # old name, kept for callers
SS = 4  # supersampling factor

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
BACKGROUND_SHIFT = 6  # +- levels per channel of the background's from / to colours


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
    """Output-pixel coordinates (continuous; pixel i spans [i, i+1)) to the 4x canvas."""
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


def image_size(aspect):
    """(W, H) of the image for a scene of this aspect, computed like Rust's `Scene::image_size`
    (f32 arithmetic, round half away from zero)."""
    a = np.float32(aspect)
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"bad aspect {aspect!r}")
    one = np.float32(1.0)

    def grow(ratio):
        v = np.float32(CANVAS) * max(ratio, one)  # f32 product
        extra = max(int(math.floor(float(v) + 0.5)) - CANVAS, 0)
        return CANVAS + extra // 2 * 2

    return grow(a), grow(one / a)


def parse_background(bg):
    """(from, to, angle, noise) of a scene's background; an int is a plain grey (old format)."""
    if isinstance(bg, bool):
        raise ValueError(f"bad background {bg!r}")
    if isinstance(bg, (int, float)):
        level = int(bg)
        return (level,) * 3, (level,) * 3, 0.0, 0
    if isinstance(bg, dict):
        frm = tuple(int(v) for v in bg["from"])
        to = tuple(int(v) for v in bg.get("to", frm))
        if len(frm) != 3 or len(to) != 3:
            raise ValueError(f"bad background {bg!r}")
        return frm, to, float(bg.get("angle", 0.0)), int(bg.get("noise", 0))
    raise ValueError(f"bad background {bg!r}")


def gradient_field(frm, to, angle, width, height, noise=None):
    """Float32 (height, width, 3) gradient at pixel centres, computed like Rust's
    `Background::at` (f32), plus an optional (height, width) noise added to every channel;
    not yet rounded."""
    f32 = np.float32
    a = f32(angle) * (f32(math.pi) / f32(180.0))
    sin, cos = np.sin(a), np.cos(a)
    u = (np.arange(width, dtype=f32) + f32(0.5)) / f32(width) - f32(0.5)
    v = (np.arange(height, dtype=f32) + f32(0.5)) / f32(height) - f32(0.5)
    proj = u[None, :] * cos + v[:, None] * sin
    t = np.clip(proj / f32(math.sqrt(2.0)) + f32(0.5), f32(0.0), f32(1.0))[:, :, None]
    frm = np.asarray(frm, dtype=f32)[None, None, :]
    to = np.asarray(to, dtype=f32)[None, None, :]
    c = frm * (f32(1.0) - t) + to * t
    if noise is not None:
        c = c + noise.astype(f32)[:, :, None]
    return c


def to_uint8(c):
    """Round half away from zero (as Rust's f32::round for these non-negative values), clamp."""
    return np.clip(np.floor(c + 0.5), 0, 255).astype(np.uint8)


def own_background(frm, to, angle, noise, key, width, height):
    """Our variant of the scene's background: from / to shifted by up to +-BACKGROUND_SHIFT per
    channel and our own uniform noise of +-noise, all chosen by the crc32 of `key`."""
    rs = np.random.RandomState(zlib.crc32(key.encode("utf-8")))
    shift = rs.randint(-BACKGROUND_SHIFT, BACKGROUND_SHIFT + 1, size=(2, 3))
    frm = tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(frm, shift[0]))
    to = tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(to, shift[1]))
    field = rs.randint(-noise, noise + 1, size=(height, width)) if noise > 0 else None
    return frm, to, field


def render(scene, key, palette=PALETTE, outline=True, gradient=True):
    """Render one scene dict (the JSON ``scene`` object) to a W x H RGB image.

    ``gradient=True`` uses our own variant of the background (shifted colours, own noise);
    ``gradient=False`` the scene's exact from / to / angle without noise."""
    width, height = image_size(scene.get("aspect", 1.0))
    left, top = (width - CANVAS) // 2, (height - CANVAS) // 2
    frm, to, angle, noise = parse_background(scene["background"])
    field = None
    if gradient:
        frm, to, field = own_background(frm, to, angle, noise, key, width, height)
    # Exact background at output resolution, and the same gradient sampled at 4x.
    exact = gradient_field(frm, to, angle, width, height, field)
    bg_big = Image.fromarray(to_uint8(gradient_field(frm, to, angle, width * SS, height * SS)), "RGB")

    im = bg_big.copy()
    mask = Image.new("L", im.size, 0)
    draw, mdraw = ImageDraw.Draw(im), ImageDraw.Draw(mask)
    for obj in scene["objects"]:
        fill = tuple(palette[obj["colour"]]) if palette else tuple(obj["rgb"])
        edge = tuple(int(round(v * OUTLINE_DARKEN)) for v in fill) if outline else None
        width_px = OUTLINE_WIDTH if outline else 0
        cx, cy = left + obj["x"] * CANVAS, top + obj["y"] * CANVAS
        r = obj["size"] * CANVAS / 2.0
        if obj["shape"] == "circle":
            x0, y0 = to_big(cx - r, cy - r)
            x1, y1 = to_big(cx + r, cy + r)
            g = PILLOW_GROWTH
            box = [x0 + g, y0 + g, x1 - g, y1 - g]
            draw.ellipse(box, fill=fill, outline=edge, width=width_px)
            mdraw.ellipse(box, fill=255)
            continue
        th = math.radians(obj["rotation"])
        c, s = math.cos(th), math.sin(th)
        # Screen coordinates have y down, so this matrix turns clockwise on screen.
        pts = [to_big(cx + px * c - py * s, cy + px * s + py * c)
               for px, py in shape_points(obj["shape"], r)]
        poly = inset(pts, PILLOW_GROWTH)
        draw.polygon(poly, fill=fill, outline=edge, width=width_px)
        mdraw.polygon(poly, fill=255)

    size = (width, height)
    down = np.asarray(im.resize(size, Image.LANCZOS), dtype=np.float32)
    bg_down = np.asarray(bg_big.resize(size, Image.LANCZOS), dtype=np.float32)
    cover = np.clip(np.asarray(mask.resize(size, Image.LANCZOS), dtype=np.float32) / 255.0, 0.0, 1.0)
    # Away from the shapes (cover 0, where down == bg_down) this is exactly the output-resolution
    # background; on them (cover 1) the supersampled drawing; in between a blend.
    out = down + (exact - bg_down) * (1.0 - cover)[:, :, None]
    return Image.fromarray(to_uint8(out), "RGB")


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
