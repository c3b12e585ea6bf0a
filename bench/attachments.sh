#!/usr/bin/env bash
# Memory with per-member attachments: N members, each with their own SIZE_MB file of random
# bytes (list column `attachment`), through `send --dry-run` (.eml files) and a real `send` to
# an SMTP sink on 127.0.0.1 (Postfix's smtp-sink, else a Python one). Peak memory (GNU time's maximum
# resident set) at N/100, N/10 and N members: flat means it does not grow with N.
#
#   bench/attachments.sh            1,000 members with 2 MB each (2 GB of files in the work dir)
#   N=5000 SIZE_MB=1 bench/attachments.sh
#
# Environment: N, SIZE_MB, KEEP=1 keeps the work directory, BULLETIN=/path/to/bulletin measures
# that binary instead of building this checkout, BASELINE=/path/to/other/bulletin measures that
# one too (its rows say "before").
# Needs: cargo, python3, bc, GNU time (/usr/bin/time; Debian package `time`).
set -euo pipefail

N=${N:-1000}
SIZE_MB=${SIZE_MB:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-attach.XXXXXX")
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

P="$WORK/project"
mkdir -p "$P/newsletters" "$P/lists/certs"
cp "$ROOT/lists/unsubscribed.csv" "$P/lists/"
awk '/^\[/ { skip = ($0 ~ /^\[smtp\][[:space:]]*(#.*)?$/) } !skip' "$ROOT/bulletin.toml" >"$P/bulletin.toml"
printf -- '---\nsubject: "Your certificate, {{ first_name }}"\n---\nDear {{ first_name }}, your certificate is attached.\n' >"$P/newsletters/n.md"
python3 - "$P" "$N" "$SIZE_MB" <<'PY'
import os, sys
p, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for count in sorted({max(1, n // 100), max(1, n // 10), n}):
    with open(f"{p}/lists/m{count}.csv", "w") as f:
        f.write("email,first_name,attachment\n")
        for i in range(count):
            f.write(f"m{i}@example.org,M{i},certs/m{i}.pdf\n")
for i in range(n):
    with open(f"{p}/lists/certs/m{i}.pdf", "wb") as g:
        g.write(b"%PDF-1.4\n" + os.urandom(mb * 1024 * 1024 - 9))
PY

# Postfix's smtp-sink when installed, else a few lines of Python that accept and drop every
# message (no TLS, no AUTH: what this measurement needs).
if command -v smtp-sink >/dev/null 2>&1; then
    start_sink
else
    PORT=$(free_port)
    python3 - "$PORT" >"$WORK/sink.log" 2>&1 <<'PY' &
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        w = self.wfile
        w.write(b"220 sink ESMTP\r\n"); w.flush()
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                w.write(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                w.write(b"354 go\r\n"); w.flush()
                while (l := self.rfile.readline()) and l != b".\r\n":
                    pass
                w.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                w.write(b"221 bye\r\n"); w.flush(); return
            else:
                w.write(b"250 ok\r\n")
            w.flush()
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
    SINK_PID=$!
    for _ in $(seq 250); do
        python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).recv(9)' "$PORT" 2>/dev/null && break
        sleep 0.02
    done
fi

printf '%-8s %-8s %9s %14s %9s\n' binary path members peak_rss_MB seconds
measure() { # LABEL BINARY
    local label=$1 bin=$2 list count
    for list in $(ls "$P"/lists/m*.csv | sort -V); do
        count=$(basename "$list" .csv); count=${count#m}
        rm -rf "$P/out" "$P/.bulletin"
        (cd "$P" && /usr/bin/time -f '%M %e' -o "$WORK/time" "$bin" send newsletters/n.md \
            --list "lists/m$count.csv" --dry-run --out out >/dev/null 2>"$WORK/err") || { cat "$WORK/err" >&2; exit 1; }
        read -r rss secs <"$WORK/time"
        printf '%-8s %-8s %9d %14.1f %9s\n' "$label" dry-run "$count" "$(echo "$rss / 1024" | bc -l)" "$secs"
        rm -rf "$P/out"
        (cd "$P" && /usr/bin/time -f '%M %e' -o "$WORK/time" "$bin" send newsletters/n.md \
            --list "lists/m$count.csv" --smtp "smtp://127.0.0.1:$PORT" --yes >/dev/null 2>"$WORK/err") || { cat "$WORK/err" >&2; exit 1; }
        read -r rss secs <"$WORK/time"
        printf '%-8s %-8s %9d %14.1f %9s\n' "$label" send "$count" "$(echo "$rss / 1024" | bc -l)" "$secs"
    done
}
measure after "$BULLETIN"
if [[ -n "${BASELINE:-}" ]]; then measure before "$BASELINE"; fi
