#!/usr/bin/env bash
# Cost growth: time and peak memory of `bulletin check`, `send --dry-run`, preflight alone and
# a real `send` as the list grows, on bench/gen-list.py's lists and the bundled example
# newsletter; the real send goes to Postfix's smtp-sink on 127.0.0.1 with no rate limit, 4
# sessions and a fresh journal.
#
#   bench/scale.sh                       10,000, 100,000 and 1,000,000 rows
#   SIZES="10000 100000" bench/scale.sh  other sizes
#
# "send --yes, all sent" runs the same send again on the journal of the first: the resume state
# (every member already sent) at its largest, then preflight, and nothing to send.
#
# "preflight" is `send` without --yes and with stdin not a terminal: it reads the lists,
# personalises every member (and builds one message), opens the journal, prints its plan and
# refuses to go on — everything a send does before the first connection.
#
# A dry run writes one .eml per member (about 17 KB each: 17 GB for a million) into the work
# directory; they are deleted as soon as it is measured.
#
# Environment: SIZES, SESSIONS (default 4), KEEP=1 keeps the work directory (not the .eml
# files), BULLETIN=/path/to/bulletin measures that binary instead of building this checkout.
# Needs: cargo, python3, GNU time (/usr/bin/time; Debian package `time`) and Postfix's
# smtp-sink (Debian package `postfix`; it lives in /usr/sbin).
set -euo pipefail

SIZES=${SIZES:-10000 100000 1000000}
SESSIONS=${SESSIONS:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-scale.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT

bench_setup
start_sink
ROWS_FILE="$WORK/rows"
: >"$ROWS_FILE"
row() { echo "$N $MEMBERS $1 $SECS $CPU $RSS_MB" >>"$ROWS_FILE"; }

for N in $SIZES; do
    dir="$WORK/n$N"
    echo "$N rows: generating the list…" >&2
    make_project "$dir" "$N"
    cd "$dir"
    send=("$BULLETIN" send newsletters/n.md --list lists/members.csv)

    echo "$N rows: check…" >&2
    timed "$WORK/check" -- "$BULLETIN" check newsletters/n.md --list lists/members.csv
    [[ $STATUS == 0 ]] && grep -q ": $MEMBERS recipients," "$WORK/check.out" || fail check "$WORK/check"
    row check

    echo "$N rows: send --dry-run…" >&2
    timed "$WORK/dry" -- "${send[@]}" --dry-run --out "$WORK/dry-run" --quiet
    written=$(find "$WORK/dry-run" -name '*.eml' | wc -l)
    rm -rf "$WORK/dry-run"
    [[ $STATUS == 0 && $written == "$MEMBERS" ]] || fail "send --dry-run ($written .eml files)" "$WORK/dry"
    row "send --dry-run"

    echo "$N rows: preflight (send without --yes)…" >&2
    rm -rf .bulletin
    timed "$WORK/pre" -- "${send[@]}" --smtp "smtp://127.0.0.1:$PORT" --concurrency "$SESSIONS" </dev/null
    [[ $STATUS == 1 ]] && grep -q "recipients: $MEMBERS to send now" "$WORK/pre.err" \
        && grep -q "refusing to send without confirmation" "$WORK/pre.err" || fail preflight "$WORK/pre"
    row "send (preflight only)"

    echo "$N rows: send --yes to smtp-sink…" >&2
    rm -rf .bulletin
    timed "$WORK/send" -- "${send[@]}" --smtp "smtp://127.0.0.1:$PORT" --concurrency "$SESSIONS" --yes
    [[ $STATUS == 0 ]] && grep -q "$MEMBERS sent, 0 failed, 0 pending, 0 uncertain" "$WORK/send.out" \
        || fail send "$WORK/send"
    row "send --yes"

    echo "$N rows: send --yes again (everyone already sent)…" >&2
    timed "$WORK/again" -- "${send[@]}" --smtp "smtp://127.0.0.1:$PORT" --concurrency "$SESSIONS" --yes
    [[ $STATUS == 0 ]] && grep -q "nothing to send" "$WORK/again.out" || fail "send again" "$WORK/again"
    row "send --yes, all sent"
    rm -rf .bulletin
    cd "$WORK"
done

echo
echo "bench/scale.sh: $(nproc)-core $(uname -m), bulletin $("$BULLETIN" --version | awk '{print $2}'); lists from"
echo "bench/gen-list.py; send: $SESSIONS sessions, no rate limit, smtp-sink on 127.0.0.1, fresh journal"
echo
python3 - "$ROWS_FILE" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
rows = [(int(r[0]), int(r[1]), " ".join(r[2:-3]), float(r[-3]), float(r[-2]), float(r[-1])) for r in rows]
print(f"| {'rows':>9} | {'members':>9} | {'command':<21} | {'seconds':>7} | {'CPU s':>7} | {'msgs/s':>7} | {'peak RSS MB':>11} |")
print(f"|{'-' * 10}:|{'-' * 10}:|{'-' * 23}|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|{'-' * 12}:|")
for n, m, cmd, secs, cpu, rss in rows:
    rate = f"{m / secs:.0f}" if secs > 0 and "all sent" not in cmd else "-"
    print(f"| {n:>9,} | {m:>9,} | {cmd:<21} | {secs:>7.2f} | {cpu:>7.2f} | {rate:>7} | {rss:>11.1f} |")
sizes = sorted({r[0] for r in rows})
small, big = sizes[0], sizes[-1]
print()
print("msgs/s = members checked, written or sent per wall-clock second; CPU s = user + system")
if big > small:
    for cmd in dict.fromkeys(r[2] for r in rows):
        a = next(r[5] for r in rows if r[0] == small and r[2] == cmd)
        b = next(r[5] for r in rows if r[0] == big and r[2] == cmd)
        print(f"peak RSS, {cmd}: {a:.1f} MB at {small:,} rows → {b:.1f} MB at {big:,} "
              f"(×{b / a:.2f} for ×{big // small} the rows)")
worst = max(r[5] for r in rows if r[0] == big)
verdict = "met" if worst <= 200 else "MISSED"
print(f"target peak RSS ≤ 200 MB at {big:,} rows: {verdict} ({worst:.1f} MB)")
pre = next(r for r in rows if r[0] == big and r[2] == "send (preflight only)")
print(f"target preflight ≤ 60 s (at 1,000,000 rows): {pre[3]:.1f} s at {big:,} rows"
      + (f": {'met' if pre[3] <= 60 else 'MISSED'}" if big >= 1_000_000 else ""))
PY
