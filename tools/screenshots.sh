#!/usr/bin/env bash
# Retakes the README's app screenshots of the embedded default model under Xvfb with no window
# manager: the five views (overlay, token grid, matrix, compare, masks) as the app opens on a first
# run, the overlay's raw map beside the same map from ClearCLIP's source (sources.png), and the
# Spatial lesson of the Starters menu (spatial.png).
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

# Points are window pixels (the window is 1360 × 860 at the screen's corner).
click() {
  xdotool mousemove --window "$window" "$1" "$2" click 1
}
save() {
  import -window root "$OUT/$1.png"
  echo "wrote $OUT/$1.png"
}

# The view tabs along the top bar.
for tab in grid:233 matrix:306 compare:376 masks:444 overlay:157; do
  click "${tab#*:}" 12
  sleep 2
  save "${tab%:*}"
done

# Raw beside ClearCLIP: the "maps:" box, its clearclip entry, the pointer moved off the map; the
# central panel of each shot cropped and the two put side by side.
click 228 72
sleep 1
click 217 168
xdotool mousemove --window "$window" 1000 820
sleep 2
import -window root "$home/clear.png"
convert "$OUT/overlay.png" -crop 707x800+124+30 +repage \( -size 20x800 xc:'#1b1b1b' \) \
  \( "$home/clear.png" -crop 707x800+124+30 +repage \) +append "$OUT/sources.png"
echo "wrote $OUT/sources.png"
# Back to raw maps (the box's first entry) for the next lesson.
click 228 72
sleep 1
click 205 98
sleep 1

# The Spatial lesson: Starters (under the prompts), then its menu entry.
click 1074 153
sleep 1
click 1072 244
sleep 4
save spatial
