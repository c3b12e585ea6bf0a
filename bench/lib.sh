# Shared by bench/send.sh, bench/scale.sh and bench/compare.sh (sourced, not run). The caller sets
# `set -euo pipefail`, ROOT (the checkout) and WORK (its work directory, removed on exit), and
# installs `trap bench_cleanup EXIT`.

export PATH="$PATH:/usr/sbin"
SINK_PID=

bench_need() { command -v "$1" >/dev/null 2>&1 || { echo "$0: $1 not found: $2" >&2; exit 1; }; }

# Checks the tools every bench needs and sets BULLETIN (building this checkout unless given).
bench_setup() {
    bench_need python3 "install Python 3"
    bench_need smtp-sink "install Postfix (apt-get install postfix)"
    [[ -x /usr/bin/time ]] || { echo "$0: /usr/bin/time not found: install GNU time (apt-get install time)" >&2; exit 1; }
    if [[ -z "${BULLETIN:-}" ]]; then
        echo "building (cargo build --release)…" >&2
        (cd "$ROOT" && cargo build --release --quiet)
        BULLETIN="$ROOT/target/release/bulletin"
    fi
}

bench_cleanup() {
    if [[ -n "$SINK_PID" ]]; then
        kill "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP:-}" == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts Postfix's smtp-sink on a free 127.0.0.1 port; sets PORT and SINK_PID.
start_sink() {
    local user=()
    [[ $(id -u) == 0 ]] && user=(-u nobody)
    PORT=$(free_port)
    smtp-sink "${user[@]}" "127.0.0.1:$PORT" 256 2>"$WORK/smtp-sink.log" &
    SINK_PID=$!
    for _ in $(seq 500); do
        if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).recv(100)' "$PORT" 2>/dev/null; then
            return
        fi
        kill -0 "$SINK_PID" 2>/dev/null || { cat "$WORK/smtp-sink.log" >&2; exit 1; }
        sleep 0.02
    done
    echo "$0: smtp-sink did not start" >&2
    exit 1
}

# make_project DIR ROWS: the bundled example newsletter and settings minus [smtp] (no rate
# limit, no login) and bench/gen-list.py's list of ROWS rows in DIR/lists/members.csv. Sets
# MEMBERS, how many of the rows are members to mail.
make_project() {
    local dir=$1 rows=$2
    mkdir -p "$dir/newsletters" "$dir/lists"
    cp "$ROOT/newsletters/2026-12-first-hundred-days.md" "$dir/newsletters/n.md"
    cp "$ROOT/lists/unsubscribed.csv" "$dir/lists/"
    awk '/^\[/ { skip = ($0 ~ /^\[smtp\][[:space:]]*(#.*)?$/) } !skip' "$ROOT/bulletin.toml" >"$dir/bulletin.toml"
    python3 "$ROOT/bench/gen-list.py" "$rows" >"$dir/lists/members.csv" 2>"$dir/gen-list.log"
    MEMBERS=$(sed -n 's/.* rows, \([0-9]*\) members to mail.*/\1/p' "$dir/gen-list.log")
    [[ -n "$MEMBERS" ]] || { cat "$dir/gen-list.log" >&2; exit 1; }
}

# timed OUT -- COMMAND…: runs COMMAND under GNU time -v (its stdout and stderr in OUT.out and
# OUT.err), and sets SECS (wall clock, from the child's start to its end, in 10 ms steps), CPU
# (user + system seconds), RSS_MB (peak resident set) and STATUS (exit code). Never fails
# itself: the caller judges STATUS. (Timing from the shell instead would add two process
# start-ups, tens of milliseconds on a small virtual machine.)
timed() {
    local out=$1
    shift 2
    STATUS=0
    /usr/bin/time -v -o "$out.time" "$@" >"$out.out" 2>"$out.err" || STATUS=$?
    read -r SECS CPU RSS_MB < <(awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
        /User time/ { cpu += $2 }
        /System time/ { cpu += $2 }
        /Maximum resident set size/ { rss = $2 / 1024 }
        END { printf "%.2f %.2f %.1f\n", s, cpu, rss }' "$out.time")
}

# fail WHAT OUT: says which command failed and shows the end of its output, then exits.
fail() {
    echo "$0: $1 failed (exit $STATUS):" >&2
    tail -20 "$2.out" "$2.err" >&2
    exit 1
}
