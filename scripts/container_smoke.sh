#!/usr/bin/env bash
# End to end through a real container: build the bento from models/, `bentoml containerize` it, run it,
# check /readyz, /classify (a real cup photo and a text file), /metrics, the user and the contents,
# then stop and remove the container, also when a step fails.
# Uses Docker when a Docker engine answers; otherwise podman, set up by ../shared/tools/podman-offline.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${PORT:-3000}
IMAGE=${IMAGE:-kitchenware-classifier:smoke}
NAME=kitchenware-smoke-$$
PHOTOS=${PHOTOS:-$ROOT/../shared/data/kitchenware-photos}
PYTHON=$ROOT/.venv/bin/python
step() { printf '\n==> %s\n' "$*"; }

step "installing the project (.venv)"
bash scripts/setup.sh serve

step "building the bento from models/"
"$PYTHON" build_bento_from_saved_model.py | tee /tmp/kitchenware-build.log
BENTO=$(awk '/^built bento/ {print $3}' /tmp/kitchenware-build.log)

if docker info >/dev/null 2>&1; then
  ENGINE=docker
  BUILD_OPTIONS=()
  RUN_OPTIONS=(-p "$PORT:3000")
elif [ -f "$ROOT/../shared/tools/podman-offline.sh" ]; then
  step "no Docker engine: setting up podman (../shared/tools/podman-offline.sh)"
  # shellcheck disable=SC1091
  source "$ROOT/../shared/tools/podman-offline.sh"
  ENGINE=podman
  BUILD_OPTIONS=(--backend podman --opt network=host)
  RUN_OPTIONS=(--runtime /usr/sbin/runc --network=host -e "BENTOML_PORT=$PORT")
else
  echo "error: no Docker engine answers and podman-offline.sh is not there: start Docker and run again" >&2
  exit 2
fi

cleanup() {
  step "stopping and removing the container"
  "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "containerizing $BENTO with $ENGINE as $IMAGE"
started=$(date +%s)
"$ROOT/.venv/bin/bentoml" containerize "$BENTO" "${BUILD_OPTIONS[@]}" -t "$IMAGE"
echo "containerized in $(( $(date +%s) - started )) s"

step "running the container"
"$ENGINE" run -d --name "$NAME" "${RUN_OPTIONS[@]}" "$IMAGE" serve >/dev/null
started=$(date +%s)
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do
  if [ $(( $(date +%s) - started )) -gt 300 ]; then
    "$ENGINE" logs "$NAME" | tail -40
    echo "error: /readyz not 200 after 300 s" >&2
    exit 1
  fi
  if [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$NAME")" != "true" ]; then
    "$ENGINE" logs "$NAME" | tail -40
    echo "error: the container stopped" >&2
    exit 1
  fi
  sleep 1
done
echo "ready after $(( $(date +%s) - started )) s"

step "checking the image: user, contents, size"
user=$("$ENGINE" exec "$NAME" id -un)
[ "$user" != root ] || { echo "error: the container runs as root" >&2; exit 1; }
echo "runs as: $user"
packages=$("$ENGINE" exec "$NAME" python -c \
  'import importlib.metadata as m; print("\n".join(d.name.lower() + "==" + d.version for d in m.distributions()))')
echo "$(wc -l <<<"$packages") Python packages; runtime: $(grep -iE '^(onnxruntime|tensorflow)' <<<"$packages" | tr '\n' ' ')"
# The default bento serves with ONNX Runtime: TensorFlow and Keras must not be installed.
for unwanted in tensorflow tensorflow-cpu tensorflow_cpu keras matplotlib tensorboard pytest ruff; do
  if grep -qi "^$unwanted==" <<<"$packages"; then echo "error: $unwanted is in the image" >&2; exit 1; fi
done
files=$("$ENGINE" exec "$NAME" sh -c 'cd /home/bentoml/bento/src && find . -type f | sort')
echo "$files"
if grep -qE '^\./(tests|models|runs|benchmarks)/|\.jpg$' <<<"$files"; then echo "error: tests or data in the image" >&2; exit 1; fi
echo "image size: $("$ENGINE" image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

step "POST /classify with a real cup photo"
# awk reads the file itself: a pipe into an `exit`ing awk would end in SIGPIPE under pipefail.
cup_id=$(awk -F, '{sub(/\r$/, "")} $2 == "cup" {print $1; exit}' "$PHOTOS/train.csv")
answer=$(curl -sf -F "image=@$PHOTOS/images/$cup_id.jpg" "http://127.0.0.1:$PORT/classify")
echo "$answer"
"$PYTHON" -c '
import json, sys
answer = json.loads(sys.argv[1])
fields = {"label", "confidence", "decision", "ood_score", "probabilities", "model", "photo_id", "feedback_token"}
assert set(answer) == fields, answer
# feedback storage is off unless KITCHENWARE_FEEDBACK_DB is set: no photo kept, no token to label it
assert answer["photo_id"] is None and answer["feedback_token"] is None, answer
assert answer["decision"] == "confident", answer
assert answer["label"] == "cup", answer
assert list(answer["probabilities"])[0] == "cup" and len(answer["probabilities"]) == 6, answer
' "$answer"

step "POST /model_info (the shipped model has model-int8.onnx: the int8 cascade serves it by default)"
runtime=$(curl -sf -X POST "http://127.0.0.1:$PORT/model_info" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["runtime"])')
echo "runtime: $runtime"
[ "$runtime" = onnx-int8-cascade ] || { echo "error: expected the onnx-int8-cascade runtime, got $runtime" >&2; exit 1; }

step "POST /classify with a text file (expect 400)"
status=$(curl -s -o /tmp/kitchenware-400.json -w '%{http_code}' -F "image=@README.md" "http://127.0.0.1:$PORT/classify")
cat /tmp/kitchenware-400.json; echo
[ "$status" = 400 ] || { echo "error: expected 400, got $status" >&2; exit 1; }

step "GET /ui (the page, offline from the image) and POST /explain (the heat map PNG)"
# Each body is read whole before it is searched: `curl | grep -q` fails at random under pipefail (grep stops at
# the first match, and curl's next write then gets SIGPIPE).
page=$(curl -sf "http://127.0.0.1:$PORT/ui/") || { echo "error: GET /ui/ failed" >&2; exit 1; }
grep -q '<title>Kitchenware classifier</title>' <<<"$page" || { echo "error: /ui/ is not the page" >&2; exit 1; }
script=$(curl -sf "http://127.0.0.1:$PORT/ui/page.js") || { echo "error: GET /ui/page.js failed" >&2; exit 1; }
grep -q 'explain' <<<"$script" || { echo "error: /ui/page.js is not the page's script" >&2; exit 1; }
curl -sf -o /tmp/kitchenware-explain.png -F "image=@$PHOTOS/images/$cup_id.jpg" "http://127.0.0.1:$PORT/explain"
head -c 8 /tmp/kitchenware-explain.png | od -An -c | grep -q 'P   N   G' || { echo "error: /explain gave no PNG" >&2; exit 1; }
echo "page served; heat map PNG of $(stat -c %s /tmp/kitchenware-explain.png) bytes"

step "GET /metrics"
metrics=$(curl -sf "http://127.0.0.1:$PORT/metrics")
grep -m 3 'endpoint="/classify"' <<<"$metrics"
grep -E '^kitchenware_(answers|float_fallbacks)_total' <<<"$metrics" || true  # the cascade's counters, once counted

step "the purge CronJob's command, in the image (deploy/kubernetes.yaml)"
purged=$("$ENGINE" run --rm --workdir /home/bentoml/bento/src -e KITCHENWARE_FEEDBACK_DB=sqlite:////tmp/feedback.db \
  "$IMAGE" python -m kitchenware.feedback purge)
echo "$purged"
grep -q '^deleted 0 photos' <<<"$purged" || { echo "error: the image cannot run the purge CronJob's command" >&2; exit 1; }

step "the container's answer for a real cup photo ($cup_id.jpg) and its memory"
echo "$answer"
"$ENGINE" stats --no-stream --format '{{.MemUsage}}' "$NAME" || echo "(memory: $ENGINE stats is not available here)"
