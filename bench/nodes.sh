#!/usr/bin/env bash
# One node against two: after `bench/run.sh postgres://...` has seeded a PostgreSQL
# database, starts two release nodes on it (sharing bench/out/data/files), and measures
# task getById and tasks getList on node A alone, then on A and B at once (a wrk per
# node, half the connections each), printing both totals.
#
#   bench/nodes.sh postgres://postgres@127.0.0.1:5432/vesper_bench
set -euo pipefail
cd "$(dirname "$0")/.."
DB_URL="$1"
DURATION="${BENCH_DURATION:-10}"
TARGET="${CARGO_TARGET_DIR:-target}"
OUT=bench/out
FILES="file://$(pwd)/$OUT/data/files"
field() { python3 -c "import json; print(json.load(open('$OUT/seed.json'))['$1'])"; }
ADMIN=$(field admin); TASK=$(field task); PROJECT=$(field project)

PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
for node in a b; do
  port=$([ $node = a ] && echo 18444 || echo 18445)
  VESPER_LOG=warn,rustls=error "$TARGET/release/vesper" serve --listen "127.0.0.1:$port" \
    --data-dir "$OUT/node-$node" --database-url "$DB_URL" --files-url "$FILES" \
    >"$OUT/node-$node.log" 2>&1 &
  PIDS+=($!)
done
for port in 18444 18445; do
  for _ in $(seq 100); do curl -sk "https://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done

rps() { wrk -t"$2" -c"$3" -d"${DURATION}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
S=/api/v2/service
for w in "task getById|$S/get/tasks/getById?id=$TASK&sessionId=$ADMIN" \
         "tasks getList, 25, filtered|$S/get/tasks/getList?count=25&filter%5BprojectId%5D=$PROJECT&sessionId=$ADMIN"; do
  IFS='|' read -r name path <<<"$w"
  one=$(rps "https://127.0.0.1:18444$path" 2 32)
  rps "https://127.0.0.1:18444$path" 1 16 >"$OUT/a.rps" &
  first=$!
  rps "https://127.0.0.1:18445$path" 1 16 >"$OUT/b.rps"
  wait "$first"
  two=$(python3 -c "print(round(float(open('$OUT/a.rps').read()) + float(open('$OUT/b.rps').read())))")
  printf '%-30s one node: %8.0f req/s   two nodes: %8s req/s\n' "$name" "$one" "$two"
done
echo "PostgreSQL $(psql "$DB_URL" -Atc 'SHOW server_version'), both nodes and wrk on the same $(nproc) cores"
