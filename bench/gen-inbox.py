#!/usr/bin/env python3
"""Writes a bounce mailbox and the journal it answers, for bench/inbox.sh.

    gen-inbox.py DIR MESSAGES MEMBERS

DIR/.bulletin/journal.db: a journal as bulletin 0.1 wrote it (bulletin upgrades it on open),
one campaign `bench` sent to MEMBERS members, each with a Message-ID. DIR/Maildir/new/: MESSAGES
messages cycling through tests/fixtures/inbox/ (every bounce shape, ARF reports, auto-replies,
replies), each with its own Message-ID and naming the original Message-ID of member i % MEMBERS.
"""
import os
import re
import sqlite3
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out, messages, members = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fixtures = os.path.join(root, "tests", "fixtures", "inbox")
shapes = []
for name in sorted(os.listdir(fixtures)):
    with open(os.path.join(fixtures, name), encoding="utf-8") as f:
        shapes.append(f.read())

os.makedirs(os.path.join(out, ".bulletin"), exist_ok=True)
db = sqlite3.connect(os.path.join(out, ".bulletin", "journal.db"))
db.executescript("""
CREATE TABLE campaign (id TEXT PRIMARY KEY, subject TEXT NOT NULL, fingerprint TEXT NOT NULL,
    newsletter TEXT NOT NULL, started INTEGER NOT NULL);
CREATE TABLE delivery (campaign TEXT NOT NULL REFERENCES campaign(id), address TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, reply TEXT, message_id TEXT,
    handed_off INTEGER, updated INTEGER, source TEXT, fields TEXT, PRIMARY KEY (campaign, address)) WITHOUT ROWID;
CREATE INDEX delivery_handed_off ON delivery(handed_off) WHERE handed_off IS NOT NULL;
INSERT INTO campaign VALUES ('bench', 'Bench', 'f', 'n.md', 1);
""")
db.executemany(
    "INSERT INTO delivery VALUES ('bench', ?, 'sent', 1, '250 ok', ?, ?, ?, 'm.csv', NULL)",
    ((f"m{i}@example.net", f"<bench.{i}@example.org>", 1000 + i, 1000 + i) for i in range(members)),
)
db.commit()

new = os.path.join(out, "Maildir", "new")
for d in ("new", "cur", "tmp"):
    os.makedirs(os.path.join(out, "Maildir", d), exist_ok=True)
original = re.compile(r"<r1\.\d+\.\d+@example\.org>")
own = re.compile(r"^Message-I[dD]: .*$", re.M)
for i in range(messages):
    text = original.sub(f"<bench.{i % members}@example.org>", shapes[i % len(shapes)])
    text = own.sub(f"Message-ID: <inbox-bench.{i}@mx.example.net>", text, count=1)
    with open(os.path.join(new, f"{i}.bench.host"), "w", encoding="utf-8") as f:
        f.write(text)
