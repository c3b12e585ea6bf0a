#!/usr/bin/env bash
# Dry runs at scale: `send --dry-run` into .eml files and into one mbox (`--mbox`), on
# bench/gen-list.py's lists and the bundled example newsletter; messages per second and peak
# memory of the whole command (reading the lists, preflight, building and writing everything).
#
#   bench/dryrun.sh                        100,000 and 1,000,000 rows, 3 rounds each
#   SIZES="10000" ROUNDS=5 bench/dryrun.sh
#
# Each figure is the median round by time. The outputs are written into the work directory and
# emptied as soon as they are counted: at 1,000,000 rows each takes as much space as a million
# messages (about 20 GB for the example). A binary without --mbox (bulletin before it) is
# measured on .eml files only. BASELINE=/path/to/other/bulletin measures that binary too, in the
# same rounds (A/B, so both see the same load): its rows say "before".
#
# The .eml files are truncated, not deleted, until the end: ext4 without a journal (this
# machine's disk, for one) skips every inode freed in the last 60 seconds — 360 while its
# inode table block is dirty, which allocating its neighbours makes it — when it allocates a
# new one, so creating 100,000 files straight after deleting 100,000 cost several times the
# system time (perf: `recently_deleted` under `find_inode_bit`): the deletion's cost, not the
# run's. Truncating frees their space and keeps their inodes (one per message and run: 6
# million for the default sizes and rounds, of the 16 million a 250 GB ext4 has). Before each
# run the file system is synced (`sync -f`, not timed), so no run pays for writing back the
# one before.
#
# Environment: SIZES, ROUNDS (default 3), KEEP=1 keeps the work directory (not the outputs),
# BULLETIN=/path/to/bulletin measures that binary instead of building this checkout, BASELINE.
# Needs: cargo, python3, GNU time (/usr/bin/time; Debian package `time`).
set -euo pipefail

SIZES=${SIZES:-100000 1000000}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-dryrun.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT

bench_need python3 "install Python 3"
[[ -x /usr/bin/time ]] || { echo "$0: /usr/bin/time not found: install GNU time (apt-get install time)" >&2; exit 1; }
if [[ -z "${BULLETIN:-}" ]]; then
    echo "building (cargo build --release)…" >&2
    (cd "$ROOT" && cargo build --release --quiet)
    BULLETIN="$ROOT/target/release/bulletin"
fi
# Each run: label binary output.
RUNS=()
outputs() { # LABEL BINARY
    RUNS+=("$1 $2 eml")
    if "$2" send --help | grep -q -- '--mbox'; then RUNS+=("$1 $2 mbox"); fi
}
[[ -n "${BASELINE:-}" ]] && outputs before "$BASELINE"
outputs after "$BULLETIN"

RESULTS="$WORK/results"
: >"$RESULTS"
SPENT=0
for N in $SIZES; do
    dir="$WORK/n$N"
    echo "$N rows: generating the list…" >&2
    make_project "$dir" "$N"
    cd "$dir"
    for round in $(seq "$ROUNDS"); do
        for run in "${RUNS[@]}"; do
            read -r label binary output <<<"$run"
            send=("$binary" send newsletters/n.md --list lists/members.csv --dry-run --quiet)
            sync -f "$WORK"
            echo "$N rows, round $round/$ROUNDS: $label, --dry-run to $output…" >&2
            if [[ $output == eml ]]; then
                timed "$WORK/run" -- "${send[@]}" --out "$WORK/out"
                written=$(find "$WORK/out" -name '*.eml' | wc -l)
                bytes=$(du -sb "$WORK/out" | cut -f1)
                find "$WORK/out" -name '*.eml' -exec truncate -s 0 {} +
                SPENT=$((SPENT + 1))
                mv "$WORK/out" "$WORK/spent-$SPENT"
            else
                timed "$WORK/run" -- "${send[@]}" --mbox "$WORK/out.mbox"
                written=$(grep -c '^From ' "$WORK/out.mbox" || true)
                bytes=$(stat -c %s "$WORK/out.mbox")
                rm -f "$WORK/out.mbox"
            fi
            [[ $STATUS == 0 && $written == "$MEMBERS" ]] || { STATUS="$STATUS, $written written"; fail "--dry-run to $output" "$WORK/run"; }
            echo "$N $MEMBERS $label $output $SECS $CPU $RSS_MB $((bytes / MEMBERS))" >>"$RESULTS"
        done
    done
    cd "$WORK"
    rm -rf "$dir"
done

echo
echo "bench/dryrun.sh: $(nproc)-core $(uname -m), bulletin $("$BULLETIN" --version | awk '{print $2}'); lists from"
echo "bench/gen-list.py; median of $ROUNDS rounds (by time); whole commands timed by GNU time"
echo
python3 - "$RESULTS" <<'PY'
import sys
runs = {}
for line in open(sys.argv[1]):
    n, m, label, out, secs, cpu, rss, size = line.split()
    runs.setdefault((int(n), label, out), []).append((float(secs), float(cpu), float(rss), int(m), int(size)))
print(f"| {'rows':>9} | {'members':>9} | {'bulletin':<8} | {'output':<6} | {'bytes/msg':>9} | {'seconds':>7} | {'CPU s':>7} | {'msgs/s':>7} | {'msgs/CPU s':>10} | {'peak RSS MB':>11} |")
print(f"|{'-' * 10}:|{'-' * 10}:|{'-' * 10}|{'-' * 8}|{'-' * 10}:|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|{'-' * 11}:|{'-' * 12}:|")
for (n, label, out), rs in runs.items():
    rs.sort()
    secs, cpu, rss, m, size = rs[(len(rs) - 1) // 2]
    all_secs = ", ".join(f"{r[0]:.2f}" for r in rs)
    print(f"| {n:>9,} | {m:>9,} | {label:<8} | {out:<6} | {size:>9} | {secs:>7.2f} | {cpu:>7.2f} | {m / secs:>7.0f} | {m / cpu:>10.0f} | {rss:>11.1f} |   (rounds: {all_secs} s)")
print()
print("msgs/s = members written per wall-clock second; msgs/CPU s = per second of CPU (user + system),")
print("which another process's load on the same cores does not change")
PY
