#!/usr/bin/env bash
# One-click unsubscribes per second through `bulletin serve` on 127.0.0.1: wrk with C
# concurrent connections POSTing `List-Unsubscribe=One-Click` to distinct members' links (each
# a new row in the suppression file, written and fsync'd before the 200), then the same links
# again (the first 1,000, already recorded: checked under the lock, nothing written). Reports requests/s, p50 and
# p99 latency, and the server's peak RSS.
#
#   bench/serve.sh [SECONDS]   each phase runs SECONDS (default 10)
#
# Environment: CONNECTIONS (default 50), THREADS (wrk threads, default 2), MEMBERS (distinct
# links, default 300000: more than the first phase sends), KEEP=1 keeps the work directory, BULLETIN=/path/to/bulletin measures
# that binary instead of building this checkout (release).
# Needs: cargo, wrk (Debian package `wrk`). The per-client rate limit is off (--per-client 0):
# every request comes from 127.0.0.1.
set -euo pipefail

SECONDS_EACH=${1:-10}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
MEMBERS=${MEMBERS:-300000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-bench-serve.XXXXXX")
SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [[ "${KEEP:-}" == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "$0: wrk not found: apt-get install wrk" >&2; exit 1; }
if [[ -z "${BULLETIN:-}" ]]; then
    echo "building (cargo build --release)…" >&2
    (cd "$ROOT" && cargo build --release --quiet)
    BULLETIN="$ROOT/target/release/bulletin"
fi

cd "$WORK"
cat >bulletin.toml <<'TOML'
from = "Example Network <news@example.org>"
list_id = "Members <members.example.org>"
suppress = ["lists/unsubscribed.csv"]
[organisation]
name = "Example Network"
[unsubscribe]
url = "https://news.example.org/unsubscribe/{{ token }}"
TOML
export BULLETIN_UNSUBSCRIBE_SECRET=bench-secret
seq 1 "$MEMBERS" | sed 's/.*/member&@example.org/' | xargs "$BULLETIN" unsubscribe-token make >tokens.txt

cat >post.lua <<'LUA'
-- Each wrk thread walks the token list from its own offset, so the threads do not repeat
-- each other: every request of the first pass is a new member.
local tokens = {}
for line in io.lines("tokens.txt") do tokens[#tokens + 1] = line end
local counter = 0
function setup(thread)
    thread:set("offset", counter * math.floor(#tokens / 16))
    counter = counter + 1
end
-- CYCLE=K: every thread cycles over the first K tokens only (members recorded earlier).
local cycle = tonumber(os.getenv("CYCLE") or "0")
local i = 0
function request()
    i = i + 1
    local t
    if cycle > 0 then t = tokens[i % cycle + 1] else t = tokens[((offset or 0) + i) % #tokens + 1] end
    return wrk.format("POST", "/unsubscribe/" .. t,
        { ["Content-Type"] = "application/x-www-form-urlencoded" }, "List-Unsubscribe=One-Click")
end
LUA

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BULLETIN" serve --listen "127.0.0.1:$PORT" --per-client 0 2>serve.log &
SERVER_PID=$!
for _ in $(seq 200); do grep -q listening serve.log && break; sleep 0.05; done

phase() {
    local name=$1
    CYCLE=${2:-0} wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s post.lua "http://127.0.0.1:$PORT" >"wrk-$name.txt"
    local rps p50 p99 errors
    rps=$(awk '/Requests\/sec/ { print $2 }' "wrk-$name.txt")
    p50=$(awk '$1 == "50%" { print $2 }' "wrk-$name.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "wrk-$name.txt")
    errors=$(grep -E 'Non-2xx|Socket errors' "wrk-$name.txt" || true)
    printf '%-28s %10s req/s   p50 %8s   p99 %8s   %s\n' "$name" "$rps" "$p50" "$p99" "${errors:-no errors}"
}
echo "bulletin serve, $CONNECTIONS connections, $THREADS wrk threads, ${SECONDS_EACH}s per phase, $(nproc) cores"
phase "new members (append+fsync)"
phase "already recorded" 1000
rows=$(($(wc -l <lists/unsubscribed.csv) - 1))
echo "suppression file: $rows rows, $(sort -u lists/unsubscribed.csv | wc -l | awk '{print $1 - 1}') distinct"
echo "server peak RSS: $(awk '/VmHWM/ { print $2 " " $3 }' "/proc/$SERVER_PID/status")"
