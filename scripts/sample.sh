#!/usr/bin/env bash
# Ingest the sample media into a fresh SQLite database and reprocess it twice (the second run
# computes nothing). Usage: scripts/sample.sh MEDIA_DIR OUT_DIR OWNER_UUID
set -euo pipefail
media=${1:-../shared/data/real}
out=${2:-scenedex-sample}
owner=${3:-00000000-0000-4000-8000-000000000001}
bin=${SCENEDEX_BIN:-.venv/bin/scenedex}
python=${PYTHON:-.venv/bin/python}
[ -d "$media" ] || { echo "error: sample media folder $media not found" >&2; exit 2; }

rm -rf "$out"
export SCENEDEX_DATABASE_URL="sqlite:///$out/scenedex.db" SCENEDEX_STORAGE_URL="$out/media"
if [ -z "${SCENEDEX_CLIP__PRETRAINED:-}" ]; then
  echo "note: no pretrained CLIP weights are reachable offline; using untrained CLIP weights (model id says 'untrained')." >&2
  export SCENEDEX_CLIP__PRETRAINED=none
fi
mkdir -p "$out"
# A subtitle track for bikes.mp4, so its scenes get transcripts.
cat > "$out/bikes.srt" <<'SRT'
1
00:00:00,000 --> 00:00:02,500
Cyclists ride down a busy city street.

2
00:00:03,000 --> 00:00:06,000
A rider in a red jacket passes the camera.

3
00:00:06,500 --> 00:00:09,900
Traffic waits at the crossing while bikes go by.
SRT
"$python" - "$media/astronaut.png" "$out/astronaut-flipped.png" <<'PY' 2>/dev/null || cp "$media/astronaut.png" "$out/astronaut-flipped.png"
import sys
from PIL import Image, ImageOps
ImageOps.mirror(Image.open(sys.argv[1])).save(sys.argv[2])
PY

"$bin" db upgrade
"$bin" ingest "$media/bigbuckbunny.mp4" --owner-id "$owner" --title "Big Buck Bunny"
"$bin" ingest "$media/bikes.mp4" --owner-id "$owner" --title "Bikes" --subtitles "$out/bikes.srt"
"$bin" person add "$media/astronaut.png" "$out/astronaut-flipped.png" --owner-id "$owner" --name "Eileen Collins"
"$bin" reprocess --scope owner --owner-id "$owner"
echo "second run (everything current, nothing recomputed):" >&2
"$bin" reprocess --scope owner --owner-id "$owner"
