#!/usr/bin/env bash
# The Vesper benchmark: builds in release mode, starts Vesper over HTTPS on a fresh data
# folder (or on the PostgreSQL database given as the first argument), seeds it through
# the API, drives each workload with wrk over keep-alive connections, and prints
# requests per second, p50/p99 latency, the ratio to the trivial endpoint, and the
# server's peak resident memory.
#
#   bench/run.sh                                   # SQLite
#   bench/run.sh postgres://postgres@127.0.0.1/vesper_bench
#
# BENCH_DURATION (seconds per workload, default 10) and BENCH_CONNECTIONS (default 32)
# change the run; BENCH_SOAK=300 adds a five-minute mixed load with memory sampled every
# 30 s; BENCH_TASKS, BENCH_ACTIVITIES, BENCH_BIG_TASKS and BENCH_BIG_ACTIVITIES change
# the dataset (bench/seed.rs); BENCH_ONLY=api or BENCH_ONLY=web runs one part only;
# BENCH_ANALYZE=1 runs VACUUM ANALYZE on PostgreSQL after seeding.
#
# BENCH_BASE_DOMAIN=bench.test serves workspaces by host name and sends every request to
# workspace `default` at default.bench.test (resolved to this machine).
#
# BENCH_ONLY=instructions (or BENCH_INSTRUCTIONS=N beside the other parts) counts the
# server's user-space instructions per request with valgrind's callgrind, a figure the
# machine's drift does not move: after seeding, the server is started again under
# callgrind, and each API workload is sent 1 and then N+1 times (default N = 300) on one
# kept-alive connection; the difference over N is one request's cost, without the
# connection's handshake. /health's figure is the HTTP stack's own. Each workload's
# profile of its N+1 requests is kept in bench/out/profiles/, for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

DB_URL="${1:-}"
DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
PORT="${BENCH_PORT:-18443}"
OUT="bench/out"
PASSWORD="bench-admin-password"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

echo "== building (release)" >&2
cargo build --release --quiet --bin vesper --example seed
TARGET="${CARGO_TARGET_DIR:-target}"

rm -rf "$OUT" && mkdir -p "$OUT/scripts"
DATA="$OUT/data"
ARGS=(serve --listen "127.0.0.1:$PORT" --data-dir "$DATA")
HOST=127.0.0.1
CURL=(curl -sk)
if [ -n "${BENCH_BASE_DOMAIN:-}" ]; then
  ARGS+=(--base-domain "$BENCH_BASE_DOMAIN")
  HOST="default.$BENCH_BASE_DOMAIN"
  CURL+=(--resolve "$HOST:$PORT:127.0.0.1")
fi
if [ -n "$DB_URL" ]; then
  # A fresh database named by the URL's last path segment.
  DB_NAME="${DB_URL##*/}"
  psql "${DB_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME" >/dev/null
  ARGS+=(--database-url "$DB_URL")
fi
VESPER_ADMIN_PASSWORD="$PASSWORD" VESPER_LOG=warn,rustls=error "$TARGET/release/vesper" "${ARGS[@]}" >"$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
BASE="https://$HOST:$PORT"
# wrk connects to the address and names the host in a header.
CONNECT="https://127.0.0.1:$PORT"
for _ in $(seq 100); do "${CURL[@]}" "$BASE/health" >/dev/null && break; sleep 0.1; done

echo "== seeding: 100 users, 10 projects, ${BENCH_TASKS:-10000} tasks, ${BENCH_ACTIVITIES:-50000} activities, a 1 MiB file;" \
  "a big project of ${BENCH_BIG_TASKS:-10000} tasks, one of ${BENCH_BIG_ACTIVITIES:-5000} activities" >&2
SEED_START=$(date +%s)
"$TARGET/release/examples/seed" "$BASE" admin@example.com "$PASSWORD" >"$OUT/seed.json"
rss() { awk '/VmRSS/ {print int($2 / 1024)}' /proc/$PID/status; }
echo "   seeded in $(( $(date +%s) - SEED_START )) s; server resident memory $(rss) MiB" >&2
if [ -n "${BENCH_ANALYZE:-}" ] && [ -n "$DB_URL" ]; then
  # What autovacuum does some minutes after a bulk load: planner statistics and the
  # visibility map. Right after seeding, plans differ (docs/performance.md, issue 12).
  psql "$DB_URL" -qc "VACUUM ANALYZE" >/dev/null
  echo "   VACUUM ANALYZE done" >&2
fi
field() { python3 -c "import json,sys; print(json.load(open('$OUT/seed.json'))['$1'])"; }
ADMIN=$(field admin); CLIENT=$(field client); TASK=$(field task)
PROJECT=$(field project); FILE=$(field file); LOGIN=$(field login); USERPW=$(field password)
EXTERNAL=$(field external); BIG_PROJECT=$(field big_project); BIG_TASK=$(field big_task)
BIG_TASK_PAGES=$(field big_task_pages)
USER_SESSION=$(field user); CLIENT_PROJECT=$(field client_project); LISTED_TASK=$(field listed_task)
ONLY="${BENCH_ONLY:-}"

S=/api/v2/service
# name|method|path|body
WORKLOADS=(
  "health|GET|/health|"
  "task getById (XML)|GET|$S/get/tasks/getById?id=$TASK&sessionId=$ADMIN|"
  "task getById (JSON)|GET|$S/get/tasks/getById?id=$TASK&retType=json&sessionId=$ADMIN|"
  # A task read by the roles whose rules need its project: a user outside the team of
  # the listed project (not hidden), a client in the team of the (hidden) project of $TASK.
  "task getById as a user|GET|$S/get/tasks/getById?id=$LISTED_TASK&sessionId=$USER_SESSION|"
  "task getById as a client|GET|$S/get/tasks/getById?id=$TASK&sessionId=$CLIENT|"
  "tasks getList, 25, filtered|GET|$S/get/tasks/getList?count=25&filter%5BprojectId%5D=$PROJECT&filter%5Bactive%5D=1&sessionId=$ADMIN|"
  # The same list for the other roles (issue 15: every role's list fast at 1,000,000
  # tasks): a user and an external user outside the project's team, the external seeing
  # only the tasks whose team it is in; a client in its project's team.
  "tasks getList as a user|GET|$S/get/tasks/getList?count=25&filter%5BprojectId%5D=$PROJECT&filter%5Bactive%5D=1&sessionId=$USER_SESSION|"
  "tasks getList as an external|GET|$S/get/tasks/getList?count=25&filter%5BprojectId%5D=$PROJECT&filter%5Bactive%5D=1&sessionId=$EXTERNAL|"
  "tasks getList as a client|GET|$S/get/tasks/getList?count=25&filter%5BprojectId%5D=$CLIENT_PROJECT&filter%5Bactive%5D=1&sessionId=$CLIENT|"
  "projects getList as a client|GET|$S/get/projects/getList?sessionId=$CLIENT|"
  "activity add (durable write)|POST|$S/post/activity/add|sessionId=$ADMIN&activity%5BtaskId%5D=$TASK&activity%5Btext%5D=bench&activity%5BhoursDone%5D=0.1"
  "activity add, many tasks|POST|$S/post/activity/add|sessionId=$ADMIN&activity%5BtaskId%5D=@TASK@&activity%5Btext%5D=bench&activity%5BhoursDone%5D=0.1"
  "downloadFile 1 MiB|GET|$S/get/activity/downloadFile?id=$FILE&sessionId=$ADMIN|"
  "signIn|POST|$S/post/authentication/signIn|login=$LOGIN&password=$USERPW"
)

run() { # name method path body [duration] [session cookie] [connections] -> "rps p50_ms p99_ms errors"
  local script="$OUT/scripts/w.lua" connections="${7:-$CONNECTIONS}"
  {
    echo "wrk.method = \"$2\""
    if [ -n "$4" ]; then
      echo "wrk.body = \"$4\""
      echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
    fi
    echo "wrk.headers[\"Host\"] = \"$HOST:$PORT\""
    if [[ "$4" == *@TASK@* ]]; then
      # Each request to one of the seeded tasks (ids 1 to BENCH_TASKS), at random.
      echo "math.randomseed(os.time())"
      echo 'request = function()'
      echo "  return wrk.format(nil, nil, nil, (string.gsub(wrk.body, \"@TASK@\", tostring(math.random(1, ${BENCH_TASKS:-10000})))))"
      echo 'end'
    fi
    if [ -n "${6:-}" ]; then
      echo "wrk.headers[\"Cookie\"] = \"__Host-vesper-session=$6\""
    fi
  } >"$script"
  wrk -t"$(( connections < 2 ? 1 : 2 ))" -c"$connections" -d"${5:-$DURATION}s" --latency -s "$script" "$CONNECT$3" >"$OUT/wrk.txt" 2>&1 || true
  python3 - "$OUT/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
    if not m: return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(rps.group(1) if rps else "0", ms("50"), ms("99"), errors.group(1) if errors else "0")
PY
}

# The machine's speed drifts under sustained load (the same workload measured 35,000
# req/s right after a pause and 29,600 right after 10 s of /health), so each workload's
# ratio is taken against /health measured just before it, not once at the start.
CEILING_DURATION=$(( DURATION / 2 > 3 ? DURATION / 2 : 3 ))
API_WORKLOADS=("${WORKLOADS[@]}")
[ "$ONLY" = web ] || [ "$ONLY" = instructions ] && WORKLOADS=()
[ ${#WORKLOADS[@]} -gt 0 ] && printf '\n%-32s %10s %9s %9s %9s %8s %8s %8s\n' workload "req/s" "p50 ms" "p99 ms" "health" ratio errors "RSS MiB"
for w in ${WORKLOADS[@]+"${WORKLOADS[@]}"}; do
  IFS='|' read -r name method path body <<<"$w"
  if [ "$name" = health ]; then
    read -r rps p50 p99 errs < <(run "$name" "$method" "$path" "$body")
    ceiling=$rps
  else
    read -r ceiling _ < <(run health GET /health "" "$CEILING_DURATION")
    read -r rps p50 p99 errs < <(run "$name" "$method" "$path" "$body")
  fi
  ratio=$(python3 -c "print(f'{$rps / $ceiling:.2f}')")
  printf '%-32s %10.0f %9.2f %9.2f %9.0f %8s %8s %8s\n' "$name" "$rps" "$p50" "$p99" "$ceiling" "$ratio" "$errs" "$(rss)"
done

# The web pages (issue 12), signed in by the session cookie. Target: server time per page
# under 10 ms at the 99th percentile. wrk runs with one connection (-t1 -c1), so that a
# request's latency is the server's time for it plus the loopback, not time spent queued
# behind the other connections; its p50/p99 are over every request of the run. The
# server does not log a duration for web pages (the API's dispatcher logs `micros`; the
# pages' routes do not), so the nearest figure to the server's own is curl's time to
# first byte on a kept-alive connection (request sent to first byte of the answer,
# without the body's transfer): the ttfb columns, over BENCH_WEB_SAMPLES requests.
# name|path|session
WEB=(
  "project, 10,000 tasks|/projects/$BIG_PROJECT|$ADMIN"
  "project, page 50|/projects/$BIG_PROJECT?page=50|$ADMIN"
  "project as a client|/projects/$BIG_PROJECT|$CLIENT"
  "project as an external|/projects/$BIG_PROJECT|$EXTERNAL"
  "task, 5,000 activities|/tasks/$BIG_TASK|$ADMIN"
  "task, last page|/tasks/$BIG_TASK?page=$BIG_TASK_PAGES|$ADMIN"
  "projects list|/projects|$ADMIN"
  "my work|/|$ADMIN"
)
SAMPLES_WEB="${BENCH_WEB_SAMPLES:-300}"
ttfb() { # path session -> "p50_ms p99_ms" of time to first byte over SAMPLES_WEB requests
  local config="$OUT/scripts/curl.cfg"
  : >"$config"
  for _ in $(seq "$SAMPLES_WEB"); do
    printf 'url = "%s"\noutput = "/dev/null"\n' "$BASE$1" >>"$config"
  done
  "${CURL[@]}" -K "$config" -H "Cookie: __Host-vesper-session=$2" \
    -w '%{http_code} %{time_pretransfer} %{time_starttransfer}\n' >"$OUT/ttfb.txt"
  python3 - "$OUT/ttfb.txt" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
# The first request carries the TLS handshake; leave it out.
ms = sorted((float(b) - float(a)) * 1000 for _, a, b in rows[1:])
bad = sum(1 for c, _, _ in rows if not c.startswith("2"))
pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan")
print(f"{pick(0.5):.2f} {pick(0.99):.2f} {bad}")
PY
}
if [ "$ONLY" != api ] && [ "$ONLY" != instructions ]; then
  printf '\n%-28s %8s %9s %9s %9s %9s %7s %8s %8s\n' "web page (wrk -c1)" "req/s" "p50 ms" "p99 ms" "ttfb p50" "ttfb p99" errors "KiB" "RSS MiB"
  for w in "${WEB[@]}"; do
    IFS='|' read -r name path session <<<"$w"
    size=$("${CURL[@]}" -o /dev/null -w '%{size_download}' -H "Cookie: __Host-vesper-session=$session" "$BASE$path")
    read -r rps p50 p99 errs < <(run "$name" GET "$path" "" "$DURATION" "$session" 1)
    cp "$OUT/wrk.txt" "$OUT/wrk-web-$(echo "$name" | tr -c 'a-z0-9\n' '-').txt"
    read -r t50 t99 terrs < <(ttfb "$path" "$session")
    printf '%-28s %8.0f %9.2f %9.2f %9.2f %9.2f %7s %8.0f %8s\n' "$name" "$rps" "$p50" "$p99" "$t50" "$t99" "$((errs + terrs))" "$(python3 -c "print($size / 1024)")" "$(rss)"
  done
fi

if [ -n "${BENCH_SOAK:-}" ]; then
  # A mixed load (reads in XML and JSON, a filtered list, a client's list, durable
  # writes) for BENCH_SOAK seconds, with the server's resident memory read every 30 s:
  # memory must stay flat.
  cat >"$OUT/scripts/soak.lua" <<LUA
wrk.headers["Host"] = "$HOST:$PORT"
local form = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Host"] = "$HOST:$PORT" }
local reqs = {
  wrk.format("GET", "$S/get/tasks/getById?id=$TASK&sessionId=$ADMIN"),
  wrk.format("GET", "$S/get/tasks/getById?id=$TASK&retType=json&sessionId=$ADMIN"),
  wrk.format("GET", "$S/get/tasks/getList?count=25&filter%5BprojectId%5D=$PROJECT&filter%5Bactive%5D=1&sessionId=$ADMIN"),
  wrk.format("GET", "$S/get/projects/getList?sessionId=$CLIENT"),
  wrk.format("POST", "$S/post/activity/add", form, "sessionId=$ADMIN&activity%5BtaskId%5D=$TASK&activity%5Btext%5D=soak&activity%5BhoursDone%5D=0.1"),
}
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
LUA
  echo >&2
  echo "== soak: mixed load for ${BENCH_SOAK} s, resident memory every 30 s" >&2
  wrk -t2 -c"$CONNECTIONS" -d"${BENCH_SOAK}s" --latency -s "$OUT/scripts/soak.lua" "$CONNECT" >"$OUT/soak.txt" 2>&1 &
  WRK=$!
  SAMPLES=""
  while kill -0 $WRK 2>/dev/null; do
    sleep 30
    SAMPLES="$SAMPLES $(rss)"
  done
  wait $WRK || true
  echo "soak: $(grep -E 'Requests/sec' "$OUT/soak.txt" | tr -s ' '), p99 $(awk '$1 == "99%" {print $2}' "$OUT/soak.txt"), non-2xx $(awk -F': ' '/Non-2xx/ {print $2}' "$OUT/soak.txt" | grep . || echo 0)"
  echo "soak: resident memory every 30 s (MiB):$SAMPLES"
fi

PEAK=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
RSS=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
printf '\nserver peak resident memory: %d MiB (now %d MiB)\n' $((PEAK / 1024)) $((RSS / 1024))
BACKEND=SQLite; [ -n "$DB_URL" ] && BACKEND=PostgreSQL
echo "backend: $BACKEND; $(nproc) cores; wrk -t2 -c$CONNECTIONS -d${DURATION}s on the same machine"

if [ "$ONLY" = instructions ] || [ -n "${BENCH_INSTRUCTIONS:-}" ]; then
  command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
  N="${BENCH_INSTRUCTIONS:-300}"
  kill $PID && wait $PID 2>/dev/null || true
  # The same data folder (or database): the seeded sessions are still valid.
  VESPER_LOG=warn,rustls=error valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    "$TARGET/release/vesper" "${ARGS[@]}" >"$OUT/server-callgrind.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do "${CURL[@]}" "$BASE/health" >/dev/null && break; sleep 0.2; done
  count() { # method path body requests -> the server's instructions over them
    local config="$OUT/scripts/count.cfg"
    : >"$config"
    # One body, if any, goes with every URL: curl POSTs it to each.
    [ -n "$3" ] && printf 'data = "%s"\n' "$3" >>"$config"
    for _ in $(seq "$4"); do
      printf 'url = "%s"\noutput = "/dev/null"\n' "$BASE$2" >>"$config"
    done
    callgrind_control -z "$PID" >/dev/null 2>&1
    "${CURL[@]}" -K "$config" >/dev/null
    rm -f "$OUT"/callgrind.out.*
    callgrind_control -d "$PID" >/dev/null 2>&1
    awk '/^summary:/ {print $2}' "$OUT"/callgrind.out.*
  }
  printf '\n%-32s %14s %8s\n' "workload (callgrind)" "instr/request" ratio
  HEALTH_IR=""
  for w in "${API_WORKLOADS[@]}"; do
    IFS='|' read -r name method path body <<<"$w"
    [ "$name" = signIn ] && continue # Argon2 by design: millions of instructions
    [[ "$body" == *@TASK@* ]] && continue # curl sends one body: the same as the line above
    # A workload is counted as it is meant to be answered, not as a refusal.
    status=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X "$method" ${body:+--data "$body"} "$BASE$path")
    if [[ "$status" != 2* ]]; then
      echo "$name: answered $status, not counted" >&2
      continue
    fi
    count "$method" "$path" "$body" 10 >/dev/null # warm-up: caches, prepared statements
    one=$(count "$method" "$path" "$body" 1)
    many=$(count "$method" "$path" "$body" $((N + 1)))
    # The N+1 requests' profile, for callgrind_annotate: where this workload's instructions go.
    mkdir -p "$OUT/profiles"
    mv "$OUT"/callgrind.out.* "$OUT/profiles/$(tr -c 'a-zA-Z0-9\n' '_' <<<"$name").callgrind"
    per=$(( (many - one) / N ))
    [ "$name" = health ] && HEALTH_IR=$per
    printf '%-32s %14d %8s\n' "$name" "$per" "$(python3 -c "print(f'{$per / $HEALTH_IR:.1f}')")"
  done
  echo "instructions: user space, every thread of the server; $N requests on one connection (curl, HTTP/2)"
fi
