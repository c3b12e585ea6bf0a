#!/usr/bin/env bash
# bulletin next to its peer and its physical limit, on one list and one smtp-sink:
#
#   - bulletin send: the bundled example newsletter, personalised for every member, real SMTP
#     to Postfix's smtp-sink on 127.0.0.1, no rate limit, SESSIONS sessions, fresh journal;
#   - Postfix's smtp-source: as many messages of the same size over the same number of reused
#     sessions (-d): what the SMTP server and loopback allow a C client with no per-message
#     work at all;
#   - the dry runs: bulletin `send --dry-run` (every message built and written as an .eml
#     file), bulletin `send --dry-run --mbox` (the same into one mbox file) and mailmerge
#     `--dry-run` (every message rendered and printed), nothing sent;
#   - awdeorio's mailmerge (PyPI, installed into a venv in the work directory): the same
#     members and a template holding bulletin's rendered text and HTML with the same merge
#     fields, trimmed so its messages are as large as bulletin's; real sends to the same sink.
#
#   bench/compare.sh [N]     a list of N rows from bench/gen-list.py (default 2000)
#
# The ratios compare messages per second of the whole command (reading the list, building and
# sending everything; for bulletin also preflight, which personalises every member before the
# first connection). mailmerge cannot skip invalid, duplicate or unsubscribed rows, so it gets
# the members-only version of the same list (`gen-list.py N --members-only`); it opens one
# SMTP connection per message (that is how it works) and prints every message, which goes to
# /dev/null here.
#
# Environment: SESSIONS (default 4), ROUNDS (default 3; the round with the median time is
# shown), KEEP=1 keeps the work directory, BULLETIN=/path/to/bulletin measures that binary,
# MAILMERGE_VENV=DIR uses (or creates and keeps) a venv there instead of one in the work
# directory, MAILMERGE_SPEC (default `mailmerge`, e.g. `mailmerge==2.3.0`) is what pip installs.
# Needs: cargo, python3 with venv and network access to PyPI, GNU time (/usr/bin/time;
# Debian package `time`), Postfix's smtp-sink and smtp-source (Debian package `postfix`).
set -euo pipefail

N=${1:-2000}
SESSIONS=${SESSIONS:-4}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulletin-compare.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT

bench_setup
bench_need smtp-source "install Postfix (apt-get install postfix)"

VENV=${MAILMERGE_VENV:-$WORK/venv}
if [[ ! -x "$VENV/bin/mailmerge" ]]; then
    echo "installing ${MAILMERGE_SPEC:-mailmerge} into $VENV (pip)…" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${MAILMERGE_SPEC:-mailmerge}"
fi
MM_VERSION=$("$VENV/bin/mailmerge" --version | awk '{print $NF}')

echo "generating a list of $N rows…" >&2
P="$WORK/project"
make_project "$P" "$N"
M=$MEMBERS
cd "$P"

# bulletin's message size: the average of 100 dry-run messages.
"$BULLETIN" send newsletters/n.md --list lists/members.csv --dry-run --limit 100 --out "$WORK/dry" --quiet >/dev/null
SIZE=$(python3 -c 'import os, sys; s = [e.stat().st_size for e in os.scandir(sys.argv[1])]; print(sum(s) // len(s))' "$WORK/dry")
rm -rf "$WORK/dry"

# mailmerge's inputs: the members-only list, no-security no-limit server settings, and a
# template made of bulletin's rendered parts for the first member (from `bulletin preview`).
MMD="$WORK/mailmerge"
mkdir -p "$MMD"
python3 "$ROOT/bench/gen-list.py" "$N" --members-only >"$MMD/mailmerge_database.csv" 2>/dev/null
cat >"$MMD/mailmerge_server.conf" <<EOF
# No security (plain SMTP to the local smtp-sink), no rate limit.
[smtp_server]
host = 127.0.0.1
port = 0
ratelimit = 0
EOF
"$BULLETIN" preview newsletters/n.md --list lists/members.csv --row 1 --out "$WORK/preview" >/dev/null
"$VENV/bin/python" - "$WORK/preview" "$MMD" "$SIZE" <<'PY' >&2
"""Writes mailmerge_template.txt: bulletin's headers, text and HTML for member 1 with the same
merge fields as the newsletter (first name with a fallback, city), trimmed until mailmerge's
rendered message is about as large as bulletin's."""
import csv, email, email.policy, sys
from pathlib import Path
from mailmerge.template_message import TemplateMessage

preview, mmd, target = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
eml = email.message_from_bytes((preview / "email.eml").read_bytes())
text = (preview / "email.txt").read_text(encoding="utf-8")
html = (preview / "email.html").read_text(encoding="utf-8")
with open(mmd / "mailmerge_database.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
first = rows[0]
assert first["first_name"] and first["city"], "member 1 of the list has no first name or city"

def merge(s):
    # The newsletter's two merge fields, written as a mailmerge user would.
    s = s.replace(f"Dear {first['first_name']}:", 'Dear {{ first_name or "Members and Friends" }}:')
    return s.replace(f"everyone in {first['city']} who", "everyone in {{ city or 'our valley' }} who")

text, html = merge(text), merge(html)
assert "{{ first_name" in text and "{{ first_name" in html and "{{ city" in html, "merge fields not found"
headers = "".join(f"{h}: {eml[h]}\n" for h in ["From", "Subject", "Reply-To", "List-Id", "List-Unsubscribe"])

def template(fraction):
    def cut(s):
        lines = s.splitlines(keepends=True)
        return "".join(lines[: max(30, int(len(lines) * fraction))])
    return (
        "TO: {{ email }}\n" + headers + "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="mailmerge-bench-boundary"\n\n'
        "--mailmerge-bench-boundary\nContent-Type: text/plain; charset=utf-8\n\n" + cut(text)
        + "\n--mailmerge-bench-boundary\nContent-Type: text/html; charset=utf-8\n\n" + cut(html)
        + "\n--mailmerge-bench-boundary--\n"
    )

def size(fraction):
    path = mmd / "mailmerge_template.txt"
    path.write_text(template(fraction), encoding="utf-8")
    sizes = [len(str(TemplateMessage(path).render(r)[2]).encode()) for r in rows[:50]]
    return sum(sizes) // len(sizes)

fraction, full = 1.0, size(1.0)
for _ in range(4):
    got = size(fraction)
    if abs(got - target) <= target * 0.02:
        break
    fraction = min(1.0, fraction * target / got)
    got = size(fraction)
(mmd / "size").write_text(str(got))
print(f"mailmerge template: {fraction:.0%} of bulletin's text and HTML; rendered {got} bytes "
      f"(uncut {full}: mailmerge encodes UTF-8 parts in base64), bulletin's {target}")
PY
MM_SIZE=$(cat "$MMD/size")

start_sink
sed -i "s/^port = .*/port = $PORT/" "$MMD/mailmerge_server.conf"

RESULTS="$WORK/results"
: >"$RESULTS"

run_bulletin() { # SESSIONS
    rm -rf .bulletin
    timed "$WORK/b" -- "$BULLETIN" send newsletters/n.md --list lists/members.csv \
        --smtp "smtp://127.0.0.1:$PORT" --concurrency "$1" --yes
    [[ $STATUS == 0 ]] && grep -q "$M sent, 0 failed, 0 pending, 0 uncertain" "$WORK/b.out" || fail "bulletin send" "$WORK/b"
    rm -rf .bulletin
}
run_source() {
    timed "$WORK/s" -- smtp-source -s "$SESSIONS" -d -m "$M" -l "$SIZE" \
        -f news@example.org -t member@example.org "127.0.0.1:$PORT"
    [[ $STATUS == 0 ]] || fail smtp-source "$WORK/s"
}
run_mailmerge() {
    timed "$WORK/m" -- "$VENV/bin/mailmerge" --no-dry-run --no-limit --output-format raw \
        --template "$MMD/mailmerge_template.txt" --database "$MMD/mailmerge_database.csv" \
        --config "$MMD/mailmerge_server.conf"
    local sent
    sent=$(grep -c '^>>> message [0-9]* sent$' "$WORK/m.out" || true)
    [[ $STATUS == 0 && $sent == "$M" ]] || { STATUS="$STATUS, $sent sent"; fail mailmerge "$WORK/m"; }
}
# The dry runs: every message built, none sent (bulletin writes one .eml file each, or one
# mbox; mailmerge prints them, here to a file). Each round's .eml files go to a folder of its
# own and stay until the end: creating files just after deleting as many costs ext4 without a
# journal (this machine's disk) several times the system time — see bench/dryrun.sh.
run_bulletin_dry() { # ROUND
    timed "$WORK/bd" -- "$BULLETIN" send newsletters/n.md --list lists/members.csv --dry-run \
        --out "$WORK/dry-all-$1" --quiet
    local files
    files=$(find "$WORK/dry-all-$1" -name '*.eml' | wc -l)
    [[ $STATUS == 0 && $files == "$M" ]] || { STATUS="$STATUS, $files files"; fail "bulletin send --dry-run" "$WORK/bd"; }
}
run_bulletin_mbox() {
    rm -f "$WORK/dry.mbox"
    timed "$WORK/bm" -- "$BULLETIN" send newsletters/n.md --list lists/members.csv --dry-run \
        --mbox "$WORK/dry.mbox" --quiet
    local entries
    entries=$(grep -c '^From ' "$WORK/dry.mbox" || true)
    [[ $STATUS == 0 && $entries == "$M" ]] || { STATUS="$STATUS, $entries messages"; fail "bulletin send --dry-run --mbox" "$WORK/bm"; }
    rm -f "$WORK/dry.mbox"
}
run_mailmerge_dry() {
    timed "$WORK/md" -- "$VENV/bin/mailmerge" --dry-run --no-limit --output-format raw \
        --template "$MMD/mailmerge_template.txt" --database "$MMD/mailmerge_database.csv" \
        --config "$MMD/mailmerge_server.conf"
    local built
    built=$(grep -c '^>>> message [0-9]* sent$' "$WORK/md.out" || true)
    [[ $STATUS == 0 && $built == "$M" ]] || { STATUS="$STATUS, $built built"; fail "mailmerge --dry-run" "$WORK/md"; }
}
record() { echo "$1|$2|$3|$4|$SECS|$CPU|$RSS_MB" >>"$RESULTS"; } # tool sessions messages bytes

for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS: bulletin ($SESSIONS sessions)…" >&2
    run_bulletin "$SESSIONS"
    record "bulletin send" "$SESSIONS" "$M" "$SIZE"
    echo "round $round/$ROUNDS: smtp-source…" >&2
    run_source
    record "smtp-source -d" "$SESSIONS" "$M" "$SIZE"
    echo "round $round/$ROUNDS: mailmerge…" >&2
    run_mailmerge
    record "mailmerge $MM_VERSION" "1 per msg" "$M" "$MM_SIZE"
    if [[ $SESSIONS != 1 ]]; then
        echo "round $round/$ROUNDS: bulletin (1 session)…" >&2
        run_bulletin 1
        record "bulletin send" 1 "$M" "$SIZE"
    fi
    echo "round $round/$ROUNDS: dry runs…" >&2
    run_bulletin_dry "$round"
    record "bulletin --dry-run" "-" "$M" "$SIZE"
    run_bulletin_mbox
    record "bulletin --dry-run --mbox" "-" "$M" "$SIZE"
    run_mailmerge_dry
    record "mailmerge $MM_VERSION --dry-run" "-" "$M" "$MM_SIZE"
done

echo
echo "bench/compare.sh $N: $M members of $N rows, $(nproc)-core $(uname -m), smtp-sink on 127.0.0.1, no rate limit;"
echo "median of $ROUNDS rounds; whole commands timed by GNU time (CPU = user + system of the sender alone)"
echo
python3 - "$RESULTS" "$SESSIONS" <<'PY'
import sys
from statistics import median
sessions = sys.argv[2]
runs = {}
for line in open(sys.argv[1]):
    tool, sess, m, size, secs, cpu, rss = line.rstrip("\n").split("|")
    runs.setdefault((tool, sess), []).append((float(secs), float(cpu), float(rss), int(m), int(size)))
rows = []
for (tool, sess), rs in runs.items():
    rs.sort()
    secs, cpu, rss, m, size = rs[(len(rs) - 1) // 2]  # the median round by time
    rows.append((tool, sess, m, size, secs, m / secs, cpu * 1000 / m, rss))
print(f"| {'tool':<26} | {'sessions':>9} | {'messages':>8} | {'bytes/msg':>9} | {'seconds':>7} | {'msgs/s':>7} | {'CPU ms/msg':>10} | {'peak RSS MB':>11} |")
print(f"|{'-' * 28}|{'-' * 10}:|{'-' * 9}:|{'-' * 10}:|{'-' * 8}:|{'-' * 8}:|{'-' * 11}:|{'-' * 12}:|")
for tool, sess, m, size, secs, rate, cpu_ms, rss in rows:
    print(f"| {tool:<26} | {sess:>9} | {m:>8} | {size:>9} | {secs:>7.2f} | {rate:>7.0f} | {cpu_ms:>10.3f} | {rss:>11.1f} |")
get = lambda t, s=None: next(r for r in rows if r[0].startswith(t) and (s is None or r[1] == s))
b, src, mm = get("bulletin send", sessions), get("smtp-source"), get("mailmerge", "1 per msg")
bd = next(r for r in rows if r[0] == "bulletin --dry-run")
bm = next(r for r in rows if r[0] == "bulletin --dry-run --mbox")
mmd = next(r for r in rows if r[0].startswith("mailmerge") and r[1] == "-")
print()
print(f"bulletin / mailmerge:   {b[5] / mm[5]:.1f}× the messages per second (target ≥ 20×: "
      f"{'met' if b[5] / mm[5] >= 20 else 'MISSED'}); {mm[6] / b[6]:.1f}× less CPU per message")
if sessions != "1":
    b1 = get("bulletin", "1")
    print(f"                        with one session each way: {b1[5] / mm[5]:.1f}×")
print(f"                        dry runs (build every message, send none): {bd[5] / mmd[5]:.1f}× to .eml files, "
      f"{bm[5] / mmd[5]:.1f}× to one mbox")
print(f"bulletin / smtp-source: {b[5] / src[5]:.0%} of its messages per second with {sessions} sessions "
      f"(target ≥ 80%: {'met' if b[5] / src[5] >= 0.8 else 'MISSED'})")
PY
