#!/usr/bin/env bash
# Preflight with an audience: a million rows (bench/gen-list.py, a `lang` column added: every
# third member `es-MX`, the rest `en`), the bundled newsletter and its Spanish variant, and
# `--where 'city != "Salinas" and "volunteer" not in tags'`-style segmenting — against the same
# rows with no segment and one language, the way a send ran before audiences.
#
#   bench/audience.sh                 1,000,000 rows
#   ROWS=100000 bench/audience.sh     another size
#
# "preflight" is `send` without --yes and with stdin not a terminal (as in bench/scale.sh):
# read the lists, decide who is in the audience, personalise every member in their language,
# open the journal, print the plan, refuse to go on. Environment: ROWS, BULLETIN, KEEP=1.
# Needs: cargo, python3, GNU time (/usr/bin/time).
set -euo pipefail

ROWS=${ROWS:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-audience.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
SINK_PID=""
trap bench_cleanup EXIT
[[ -x /usr/bin/time ]] || { echo "$0: /usr/bin/time not found: install GNU time (apt-get install time)" >&2; exit 1; }
if [[ -z "${BULLETIN:-}" ]]; then
    echo "building (cargo build --release)…" >&2
    (cd "$ROOT" && cargo build --release --quiet)
    BULLETIN="$ROOT/target/release/bulletin"
fi

one="$WORK/one"
make_project "$one" "$ROWS"
two="$WORK/two"
mkdir -p "$two"
cp -r "$one/." "$two/"
cp "$ROOT/newsletters/2026-12-first-hundred-days.es.md" "$two/newsletters/n.es.md"
# A `lang` column and a `tags` column at the end of every row (gen-list.py writes CRLF and no
# multi-line fields).
awk '{ sub(/\r$/, "") }
     NR == 1 { print $0 ",lang,tags"; next }
     { print $0 "," (NR % 3 == 0 ? "es-MX" : "en") "," (NR % 5 == 0 ? "\"volunteer, donor\"" : "donor") }' \
    "$one/lists/members.csv" >"$two/lists/members.csv"

printf '%-44s %8s %8s %8s\n' "preflight of $ROWS rows" seconds "CPU s" "RSS MB"
run() {
    local label=$1 dir=$2
    shift 2
    cd "$dir"
    rm -rf .bulletin
    timed "$WORK/run" -- "$BULLETIN" send newsletters/n.md --list lists/members.csv \
        --smtp smtp://127.0.0.1:9 "$@" </dev/null
    grep -q "refusing to send without confirmation" "$WORK/run.err" || fail "$label" "$WORK/run"
    printf '%-44s %8s %8s %8s\n' "$label" "$SECS" "$CPU" "$RSS_MB"
    grep "^recipients:" "$WORK/run.err" >&2
}
run "one language, everyone" "$one"
run "two languages, everyone" "$two"
run "two languages, --where city" "$two" --where 'city != "Salinas"'
run "two languages, --where city or tag" "$two" --where 'city == "Salinas" or "volunteer" in tags'
