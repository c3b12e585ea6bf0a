#!/usr/bin/env bash
# Throughput and memory of `bulletin send` against Postfix's smtp-sink on 127.0.0.1, next to
# Postfix's own smtp-source sending as many messages of the same size over the same number of
# reused sessions. No rate limit; a fresh journal for every bulletin run.
#
#   bench/send.sh [N]        a list of N rows (default 20000) from bench/gen-list.py, of which
#                            about 98.4 % are members to mail; also runs bulletin at 4×N for memory
#
# Environment: ROUNDS (default 3: the median time is reported), SESSIONS (default 4),
# SCALE (default 4: the larger list is SCALE×N), KEEP=1 keeps the work directory,
# BULLETIN=/path/to/bulletin measures that binary instead of building this checkout.
# Needs: cargo, python3, GNU time (/usr/bin/time; Debian package `time`) and Postfix's
# smtp-sink and smtp-source (Debian package `postfix`; they live in /usr/sbin).
set -euo pipefail

N=${1:-20000}
ROUNDS=${ROUNDS:-3}
SESSIONS=${SESSIONS:-4}
SCALE=${SCALE:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-bench.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT

bench_setup
bench_need smtp-source "install Postfix (apt-get install postfix)"

# A project: the bundled example newsletter and settings, minus [smtp] (so no rate limit and no
# login), and the deterministic list of bench/gen-list.py with $2 rows (non-ASCII names, some
# names missing, a few invalid, duplicate and unsubscribed rows). DIR/count holds how many of
# them are members to mail.
make_project() {
    local dir=$1 count=$2
    mkdir -p "$dir/newsletters" "$dir/lists"
    cp "$ROOT/newsletters/2026-12-first-hundred-days.md" "$dir/newsletters/n.md"
    cp "$ROOT/lists/unsubscribed.csv" "$dir/lists/"
    python3 - "$ROOT/bulletin.toml" "$dir" <<'PY'
import sys
src, dir = sys.argv[1], sys.argv[2]
out, skip = [], False
for line in open(src, encoding="utf-8"):
    if line.startswith("["):
        skip = line.strip() == "[smtp]"
    if not skip:
        out.append(line)
open(f"{dir}/bulletin.toml", "w", encoding="utf-8").writelines(out)
PY
    python3 "$ROOT/bench/gen-list.py" "$count" >"$dir/lists/members.csv" 2>"$dir/gen-list.log"
    sed -n 's/.* rows, \([0-9]*\) members to mail.*/\1/p' "$dir/gen-list.log" >"$dir/count"
    [[ -s "$dir/count" ]] || { cat "$dir/gen-list.log" >&2; exit 1; }
}

run_bulletin() {
    local dir=$1 count
    count=$(cat "$dir/count")
    rm -rf "$dir/.bulletin"
    (cd "$dir" && /usr/bin/time -f '%e %M' -o "$WORK/time" "$BULLETIN" send newsletters/n.md \
        --list lists/members.csv --smtp "smtp://127.0.0.1:$PORT" --concurrency "$SESSIONS" --yes \
        >"$WORK/bulletin.out" 2>"$WORK/bulletin.err") || { cat "$WORK/bulletin.err" >&2; exit 1; }
    grep -q "$count sent, 0 failed, 0 pending, 0 uncertain" "$WORK/bulletin.out" \
        || { cat "$WORK/bulletin.out" "$WORK/bulletin.err" >&2; exit 1; }
    read -r SECS RSS_KB <"$WORK/time"
    RATE=$(sed -n "s|^progress: $count/$count done, .*, \([0-9.]*\)/s.*|\1|p" "$WORK/bulletin.err" | tail -1)
}

# load_rss DIR: peak RSS (KB) of reading the list and building one message, nothing sent.
load_rss() {
    (cd "$1" && /usr/bin/time -f '%M' -o "$WORK/time" "$BULLETIN" send newsletters/n.md \
        --list lists/members.csv --dry-run --limit 1 --out "$WORK/dry1" --quiet >/dev/null)
    cat "$WORK/time"
}

# run_source: M messages (as many as bulletin sends) of SIZE bytes over SESSIONS reused sessions; sets SECS and RSS_KB.
run_source() {
    /usr/bin/time -f '%e %M' -o "$WORK/time" smtp-source -s "$SESSIONS" -d -m "$M" -l "$SIZE" \
        -f news@example.org -t member@example.org "127.0.0.1:$PORT"
    read -r SECS RSS_KB <"$WORK/time"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
max() { printf '%s\n' "$@" | sort -g | tail -1; }

echo "generating lists of $N and $((SCALE * N)) rows…" >&2
make_project "$WORK/small" "$N"
make_project "$WORK/large" "$((SCALE * N))"
M=$(cat "$WORK/small/count")
LM=$(cat "$WORK/large/count")

# The average size of bulletin's messages for this list.
(cd "$WORK/small" && "$BULLETIN" send newsletters/n.md --list lists/members.csv --dry-run --limit 100 \
    --out "$WORK/dry" --quiet >/dev/null)
SIZE=$(python3 -c 'import os, sys; s = [e.stat().st_size for e in os.scandir(sys.argv[1])]; print(sum(s) // len(s))' "$WORK/dry")

start_sink
declare -a b_secs b_rss b_rate s_secs s_rss l_secs l_rss
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS…" >&2
    run_bulletin "$WORK/small"; b_secs+=("$SECS"); b_rss+=("$RSS_KB"); b_rate+=("${RATE:-0}")
    run_source; s_secs+=("$SECS"); s_rss+=("$RSS_KB")
done
echo "bulletin at $LM members ($((SCALE * N)) rows)…" >&2
run_bulletin "$WORK/large"; l_secs+=("$SECS"); l_rss+=("$RSS_KB")

B=$(median "${b_secs[@]}")
BR=$(median "${b_rate[@]}")
S=$(median "${s_secs[@]}")
L=$(median "${l_secs[@]}")
echo
echo "bench/send.sh $N: $M members to mail of $N rows; $SESSIONS sessions, no rate limit, ${SIZE}-byte messages, smtp-sink on 127.0.0.1;"
echo "median of $ROUNDS rounds (bulletin: $(printf '%s ' "${b_secs[@]}")s; smtp-source: $(printf '%s ' "${s_secs[@]}")s)"
echo
python3 - "$M" "$B" "$(max "${b_rss[@]}")" "$S" "$(max "${s_rss[@]}")" "$LM" "$L" "$(max "${l_rss[@]}")" \
    "$BR" "$(load_rss "$WORK/small")" "$(load_rss "$WORK/large")" <<'PY'
import sys
n, b, brss, s, srss, ln, l, lrss, brate, load_s, load_l = sys.argv[1:]
rows = [("bulletin", n, b, brss), ("smtp-source -d", n, s, srss), ("bulletin", ln, l, lrss)]
print(f"| {'tool':<14} | {'messages':>8} | {'seconds':>7} | {'msgs/s':>7} | {'peak RSS MB':>11} |")
print(f"|{'-' * 16}|{'-' * 9}:|{'-' * 8}:|{'-' * 8}:|{'-' * 12}:|")
for tool, count, secs, rss in rows:
    rate = int(count) / float(secs)
    print(f"| {tool:<14} | {int(count):>8} | {float(secs):>7.2f} | {rate:>7.0f} | {int(rss) / 1024:>11.1f} |")
source_rate = int(n) / float(s)
print(f"\nbulletin / smtp-source at {n} messages: {int(n) / float(b) / source_rate:.0%} for the whole command "
      f"(target ≥ 80%); the delivery phase alone ({float(brate):.0f} msgs/s, after every message was "
      f"built once in preflight): {float(brate) / source_rate:.0%}")
mb = lambda kb: int(kb) / 1024
print(f"peak RSS: {mb(brss):.1f} MB at {n} members, {mb(lrss):.1f} MB at {ln}; of which reading the list "
      f"(send --dry-run --limit 1): {mb(load_s):.1f} MB and {mb(load_l):.1f} MB, so delivery adds "
      f"{mb(brss) - mb(load_s):.1f} MB and {mb(lrss) - mb(load_l):.1f} MB")
PY
