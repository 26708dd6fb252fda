"""Writes the small odd-format images the bad-input tests decode (tests/fixtures/odd/).

Run from the repository root: python tools/make_odd_images.py (needs Pillow and numpy).
Each file is one case a person may drag into the app: 16-bit PNG, CMYK JPEG, grey+alpha PNG,
an animated GIF (the first frame counts), a JPEG with an EXIF rotation, a 1x1 PNG and a very wide
10000x10 PNG.
"""
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path("tests/fixtures/odd")
OUT.mkdir(parents=True, exist_ok=True)

# 16-bit greyscale: a horizontal ramp over the full 16-bit range.
ramp = np.tile(np.linspace(0, 65535, 48, dtype=np.uint16), (32, 1))
Image.fromarray(ramp).save(OUT / "grey16.png")

# CMYK JPEG: a pure cyan field (C=255).
Image.new("CMYK", (40, 30), (255, 0, 0, 0)).save(OUT / "cmyk.jpg", quality=95)

# Grey + alpha.
la = Image.new("LA", (36, 36), (200, 128))
la.save(OUT / "grey_alpha.png")

# Animated GIF: a red first frame, then a blue one.
frames = [Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))]
frames[0].save(OUT / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)

# EXIF orientation 6 (rotate 90° clockwise to display): stored 60 wide × 20 high, shown 20 × 60.
# The stored image is red on its left half, so the displayed one is red on its top half.
stored = Image.new("RGB", (60, 20), (0, 0, 255))
stored.paste((255, 0, 0), (0, 0, 30, 20))
exif = Image.Exif()
exif[0x0112] = 6
stored.save(OUT / "exif_rotate90.jpg", exif=exif.tobytes(), quality=95)

Image.new("RGB", (1, 1), (10, 200, 30)).save(OUT / "one_pixel.png")
wide = np.zeros((10, 10000, 3), dtype=np.uint8)
wide[:, :, 1] = np.linspace(0, 255, 10000, dtype=np.uint8)
Image.fromarray(wide).save(OUT / "wide_10000x10.png")

for p in sorted(OUT.iterdir()):
    print(p, p.stat().st_size)
