#!/usr/bin/env bash
# Time from a fitted pipeline to its first served prediction, following the README's "Your own model":
# a fresh venv and `pip install ".[cpu,train]"`, `predictor export` of a joblib pipeline with CSV files,
# `predictor serve --model <bundle>` until ready, then the curl line the export printed.
# The user's pipeline (ColumnTransformer over ints, floats, a bool, categories and NaN, then gradient
# boosting) is made first, outside the timing. Prints seconds per step. Usage: benchmarks/time_to_first_prediction.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/journey.XXXX)
cd "$work"
python3 -m venv venv
trap 'kill "${server:-0}" 2>/dev/null || true' EXIT

# The user's side, not timed: a pipeline fitted on their own frame, saved with joblib, data as CSV.
venv/bin/pip install -q pandas scikit-learn joblib
venv/bin/python - <<'EOF'
import joblib, numpy as np, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

rng = np.random.default_rng(7)
n = 400
frame = pd.DataFrame({
    "age": rng.integers(18, 80, n), "visits": rng.integers(0, 30, n),
    "income": rng.normal(3000, 800, n).round(2),
    "rating": np.where(rng.random(n) < 0.1, np.nan, rng.normal(3.5, 1, n).round(1)),
    "newsletter": rng.random(n) < 0.3,
    "region": rng.choice(["north", "south", "east", "west"], n).astype(object),
})
frame.loc[rng.random(n) < 0.1, "region"] = np.nan
score = frame.visits / 10 - (frame.age - 45) / 30 + frame.rating.fillna(3.5) - 3.5 + rng.normal(0, 0.6, n)
frame["churned"] = np.where(score > score.median(), "yes", "no")
numbers, categories = ["age", "visits", "income", "rating"], ["newsletter", "region"]
pipeline = Pipeline([
    ("prepare", ColumnTransformer([
        ("numbers", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numbers),
        ("categories", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                 ("onehot", OneHotEncoder(handle_unknown="ignore"))]), categories),
    ])),
    ("model", GradientBoostingClassifier(random_state=0)),
]).fit(frame.iloc[:320].drop(columns="churned"), frame.churned.iloc[:320])
joblib.dump(pipeline, "model.joblib")
frame.iloc[:320].to_csv("train.csv", index=False)
frame.iloc[320:].to_csv("test.csv", index=False)
EOF

step() {  # step NAME COMMAND...: run it, print its seconds
  local name=$1 started
  shift
  started=$(date +%s.%N)
  "$@"
  printf '%-32s %6.1f s\n' "$name" "$(echo "$(date +%s.%N) - $started" | bc)" | tee -a times.txt
}
began=$(date +%s.%N)
step "pip install .[cpu,train]" venv/bin/pip install -q "$repo[cpu,train]"
step "predictor export" sh -c 'venv/bin/predictor export model.joblib --data train.csv --target churned \
  --name churn --version 1.0.0 --test-data test.csv > export.txt 2>&1'
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
serve_ready() {
  venv/bin/predictor serve --model models/churn/1.0.0 --port "$port" > serve.txt 2>&1 &
  server=$!
  until curl -sf "localhost:$port/health/ready" > /dev/null; do sleep 0.1; done
}
step "predictor serve until ready" serve_ready
# the export's report ends with a curl line holding a real record of the user's data
line=$(grep -E "^try: curl " export.txt | tail -1 | sed -e 's/^try: //' -e "s/localhost:8000/localhost:$port/")
step "first prediction (curl)" sh -c "$line > answer.json"
printf '%-32s %6.1f s\n' "total" "$(echo "$(date +%s.%N) - $began" | bc)"
echo "answer: $(cat answer.json)"
echo "work dir: $work"
