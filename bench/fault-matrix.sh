#!/usr/bin/env bash
# Prints the SMTP fault matrix as a Markdown table (case, expected, observed) for the README.
#
# Each row is one run of the real binary against the in-process fault-injecting SMTP server
# (tests/fault_matrix.rs): three members, one session, `timeout = 1`, `attempts = 2`; the
# fault hits the second member. The test asserts every expected outcome against what the
# server accepted and what `report --json` says, so a table printed here is a passing one. The
# last row (STARTTLS not offered) needs a host name other than localhost that resolves to
# loopback, and fails without one.
#
#   bench/fault-matrix.sh            # the table on stdout
#   bench/fault-matrix.sh > m.md     # for the README
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! cargo test --quiet --test main fault_matrix:: -- --include-ignored --nocapture --test-threads 1 >"$out" 2>&1; then
    cat "$out" >&2
    echo "fault-matrix: the matrix test failed (see above)" >&2
    exit 1
fi
grep -E '^\|' "$out"
