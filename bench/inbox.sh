#!/usr/bin/env bash
# `bulletin inbox` throughput and memory: a Maildir of N messages (bench/gen-inbox.py cycles
# through every fixture shape in tests/fixtures/inbox/: DSNs, text bounces, ARF, auto-replies,
# replies) answering a journal of 10,000 members. Each run classifies, matches against the
# journal, appends to the suppression file and records every message in the journal; a second
# run over the same Maildir (everything already processed) is timed too.
#
#   bench/inbox.sh                    5,000, 20,000 and 50,000 messages
#   SIZES="1000 5000" bench/inbox.sh  other sizes
#
# Environment: SIZES, MEMBERS (default 10000), KEEP=1 keeps the work directory,
# BULLETIN=/path/to/bulletin measures that binary instead of building this checkout.
# Needs: cargo, python3, GNU time (/usr/bin/time).
set -euo pipefail

SIZES=${SIZES:-5000 20000 50000}
MEMBERS=${MEMBERS:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-inbox.XXXXXX")
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

printf '%-10s %-22s %8s %8s %10s %8s\n' messages run seconds cpu msgs/s "RSS MB"
for n in $SIZES; do
    dir="$WORK/$n"
    mkdir -p "$dir/lists"
    python3 "$ROOT/bench/gen-inbox.py" "$dir" "$n" "$MEMBERS"
    printf 'from = "Bench <news@example.org>"\nsuppress = ["lists/unsubscribed.csv"]\n' >"$dir/bulletin.toml"
    for run in first "second (all seen)"; do
        out="$dir/run-${run%% *}"
        cd "$dir"
        timed "$out" -- "$BULLETIN" inbox --maildir Maildir --json --quiet
        cd "$ROOT"
        [[ $STATUS == 0 ]] || fail "inbox" "$out"
        rate=$(awk -v n="$n" -v s="$SECS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
        printf '%-10s %-22s %8s %8s %10s %8s\n' "$n" "$run" "$SECS" "$CPU" "$rate" "$RSS_MB"
    done
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print("           first run:", {k: d[k] for k in ("processed", "hard", "soft", "complaints", "auto_replies", "other", "unmatched")}, len(d["suppressed"]), "suppressed")' "$dir/run-first.out"
    rm -rf "$dir/Maildir"
done
