#!/usr/bin/env bash
# Screenshots of a running server's documentation pages for the slides (slides/images/*.png).
#
#   bash slides/capture.sh [BASE_URL]      (default http://127.0.0.1:8000; start `predictor serve` first)
#
# The server's /docs page loads Swagger UI from a CDN, which machines without internet cannot reach: the
# page is fetched from the server as it is and its assets are pointed at the same swagger-ui-dist
# version, installed by npm beside this script. Needs Chromium (Debian: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")"
base=${1:-http://127.0.0.1:8000}
chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
[ -d node_modules/swagger-ui-dist ] || npm ci --no-audit --no-fund
work=$(mktemp -d)
ln -s "$PWD/node_modules/swagger-ui-dist" "$work/swagger-ui-dist"
curl -fsS "$base/docs" | sed -E "s#https://cdn\.jsdelivr\.net/npm/swagger-ui-dist@[^/]+/#/swagger-ui-dist/#g" >"$work/swagger.html"
# served over HTTP on loopback (Swagger UI cannot resolve $refs in a file:// page)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work" "$port" >/dev/null 2>&1 &
server=$!
trap 'kill "$server"; rm -rf "$work"' EXIT
sleep 1
shot() { # shot NAME URL WIDTH HEIGHT
  "$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking --hide-scrollbars \
    --virtual-time-budget=8000 --window-size="$3,$4" \
    --screenshot="images/$1.png" "$2" 2>/dev/null
  echo "images/$1.png"
}
shot swagger "http://127.0.0.1:$port/swagger.html" 1280 900
shot swagger-predict "http://127.0.0.1:$port/swagger.html#/predict/PredictPredictDefault" 1280 1300
