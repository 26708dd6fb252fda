#!/usr/bin/env bash
# Retakes the README's five app screenshots (overlay, token grid, matrix, compare, masks) of the
# embedded default model as the app opens on a first run, and the Spatial lesson of the Starters
# menu (spatial.png), under Xvfb with no window manager; sources.png puts the overlay's raw map
# beside the same map from ClearCLIP's source.
#
#   apt-get install -y xvfb libgl1-mesa-dri libegl1 imagemagick xdotool
#   cargo build --release && bash tools/screenshots.sh
#
# A fresh HOME, so no saved state is restored: what a new user sees. OUT (default screenshots/)
# receives overlay.png, grid.png, matrix.png, compare.png, masks.png, sources.png and spatial.png.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/clipscope}
OUT=${OUT:-screenshots}
SCREEN=${SCREEN:-:99}
SETTLE=${SETTLE:-8}

home=$(mktemp -d)
Xvfb "$SCREEN" -screen 0 1360x860x24 -nolisten tcp &
xvfb=$!
app=
cleanup() {
  [ -n "$app" ] && kill "$app" 2>/dev/null
  kill "$xvfb" 2>/dev/null
  rm -rf "$home"
}
trap cleanup EXIT
export DISPLAY=$SCREEN
sleep 1
HOME=$home XDG_DATA_HOME=$home/data XDG_CONFIG_HOME=$home/config "$BIN" &
app=$!
window=$(xdotool search --sync --name '^clipscope$' | head -n 1)
# The first maps come within 2 s; the rest of the wait lets the follow-up verdicts land.
sleep "$SETTLE"
xdotool windowfocus --sync "$window" || true

# The view tabs along the top bar (the window is 1360 × 860 at the screen's corner).
shot() {
  local name=$1 x=$2
  xdotool mousemove --window "$window" "$x" 12 click 1
  sleep 2
  import -window root "$OUT/$name.png"
  echo "wrote $OUT/$name.png"
}
shot grid 233
shot matrix 306
shot compare 376
shot masks 444
shot overlay 157

# Raw beside ClearCLIP: the "maps:" box, its clearclip entry, the pointer moved off the map; the
# central panel of each shot cropped and the two put side by side.
xdotool mousemove --window "$window" 228 72 click 1
sleep 1
xdotool mousemove --window "$window" 217 168 click 1
xdotool mousemove --window "$window" 1000 820
sleep 2
clear=$(mktemp --suffix .png)
import -window root "$clear"
convert "$OUT/overlay.png" -crop 707x800+124+30 +repage \( -size 20x800 xc:'#1b1b1b' \) \
  \( "$clear" -crop 707x800+124+30 +repage \) +append "$OUT/sources.png"
rm -f "$clear"
echo "wrote $OUT/sources.png"
# Back to raw maps (the box's first entry) for the next lesson.
xdotool mousemove --window "$window" 228 72 click 1
sleep 1
xdotool mousemove --window "$window" 205 98 click 1
sleep 1

# The Spatial lesson: Starters (under the prompts), then its menu entry.
xdotool mousemove --window "$window" 1074 153 click 1
sleep 1
xdotool mousemove --window "$window" 1072 244 click 1
sleep 4
import -window root "$OUT/spatial.png"
echo "wrote $OUT/spatial.png"
