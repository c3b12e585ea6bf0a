#!/usr/bin/env python3
"""Deterministic subscriber list for the benchmarks, shaped like a real export.

    python3 bench/gen-list.py N > members.csv        # N data rows (after the header)
    python3 bench/gen-list.py N --seed 7 > other.csv
    python3 bench/gen-list.py N --members-only > mailable.csv   # for tools that cannot filter

Columns: email,first_name,last_name,city,status. Names come from many scripts (Latin with
diacritics, Chinese, Arabic, Cyrillic, Greek, Vietnamese, Devanagari), about 2 % of first names
are empty (the newsletter's `default(...)` applies), cities are sometimes empty or contain a
comma (quoted). Like an export from a mailing-list service, about 1.5 % of rows are not
mailable: invalid addresses, the same address again in another case (bulletin dedupes
case-insensitively; the first row wins) and unsubscribed / cleaned / bounced statuses. A few
addresses carry stray spaces or upper case, which bulletin trims and normalises.

The same N and seed always give the same bytes. Every address includes its row number, so
none collides with the bundled lists/unsubscribed.csv. One summary line goes to standard
error, with the exact number of members a sender should mail. `--members-only` writes just
those rows (same seed, same members, in the same order), for a peer that cannot skip
invalid, duplicate or unsubscribed rows itself:

    gen-list.py: 10000 rows, 9851 members to mail (49 invalid, 50 duplicate, 50 unsubscribed/cleaned/bounced)
"""

import argparse
import csv
import random
import sys

# (as written, ASCII form for the address)
FIRST = [
    ("José", "jose"), ("Ana", "ana"), ("Lucía", "lucia"), ("María", "maria"), ("João", "joao"),
    ("Zoë", "zoe"), ("Søren", "soren"), ("Amélie", "amelie"), ("Björn", "bjorn"),
    ("Łukasz", "lukasz"), ("Jiří", "jiri"), ("Iñaki", "inaki"), ("Óscar", "oscar"),
    ("Aoife", "aoife"), ("Fatma", "fatma"), ("Meera", "meera"), ("Samira", "samira"),
    ("Kevin", "kevin"), ("Emily", "emily"), ("Bob", "bob"), ("Nguyễn Thị", "thi"),
    ("李伟", "li.wei"), ("王芳", "wang.fang"), ("陈静", "chen.jing"), ("محمد", "mohammed"),
    ("فاطمة", "fatima"), ("Ольга", "olga"), ("Дмитрий", "dmitri"), ("Μαρία", "maria.g"),
    ("Γιώργος", "giorgos"), ("प्रिया", "priya"), ("Thành", "thanh"), ("Şükrü", "sukru"),
]
LAST = [
    ("Hernández", "hernandez"), ("López", "lopez"), ("Echeverría", "echeverria"),
    ("Ní Dhomhnaill", "nidhomhnaill"), ("Ødegaard", "odegaard"), ("Müller", "muller"),
    ("Öztürk", "ozturk"), ("Dvořák", "dvorak"), ("Nóbrega", "nobrega"), ("Sigurðsson", "sigurdsson"),
    ("Smith", "smith"), ("Carter", "carter"), ("Patel", "patel"), ("Okoro", "okoro"),
    ("Trần", "tran"), ("李", "li"), ("王", "wang"), ("陈", "chen"), ("Иванова", "ivanova"),
    ("Петров", "petrov"), ("Παπαδόπουλος", "papadopoulos"), ("الحسن", "alhassan"),
    ("शर्मा", "sharma"), ("O'Brien", "obrien"), ("García Márquez", "garciamarquez"),
]
CITIES = [
    "Harbor Valley", "Oakland, CA", "Salinas", "Soledad", "King City", "San Francisco",
    "Gilroy", "Stockton", "Santa Cruz", "Hollister", "Watsonville", "São Paulo", "Zürich",
    "Sacramento", "", "",
]
DOMAINS = ["example.org", "example.com", "example.net", "mail.example.org", "correo.example.com"]
INVALID = [
    "{a}(at){d}", "{a}@", "@{d}", "{a} {a}@{d}", "{a}@@{d}", "{a}", "{a}@{d}.", "{a}@-{d}",
    "{a}@{d} ;", "",
]
SKIP_STATUSES = ["unsubscribed", "unsubscribed", "cleaned", "bounced"]


def address(rng_first, rng_last, domain, i):
    """The address of row i (unique thanks to the number)."""
    return f"{rng_first}.{rng_last}{i}@{domain}" if rng_first else f"{rng_last}.family{i}@{domain}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, help="data rows to write")
    ap.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    ap.add_argument("--members-only", action="store_true",
                    help="write only the rows a sender should mail (the others are still drawn)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    out = csv.writer(sys.stdout, lineterminator="\r\n")
    out.writerow(["email", "first_name", "last_name", "city", "status"])
    # Valid addresses written so far (a bounded sample), for duplicates of earlier rows.
    earlier = []
    invalid = duplicate = status_skipped = members = 0
    for i in range(1, args.n + 1):
        first, first_ascii = rng.choice(FIRST)
        last, last_ascii = rng.choice(LAST)
        if rng.random() < 0.02:
            first, first_ascii = "", ""
        city = rng.choice(CITIES)
        domain = rng.choice(DOMAINS)
        email = address(first_ascii, last_ascii, domain, i)
        status = "subscribed"
        mailable = False
        roll = rng.random()
        if roll < 0.005:
            invalid += 1
            email = rng.choice(INVALID).format(a=first_ascii or last_ascii, d=domain)
        elif roll < 0.010 and earlier:
            # The same person exported twice, the second time in another case.
            duplicate += 1
            email = rng.choice(earlier).upper()
        else:
            if roll < 0.015:
                status_skipped += 1
                status = rng.choice(SKIP_STATUSES)
            else:
                members += 1
                mailable = True
            if len(earlier) < 1000:
                earlier.append(email)
            else:
                earlier[rng.randrange(1000)] = email
            shape = rng.random()
            if shape < 0.01:
                email = f" {email} "
            elif shape < 0.02:
                email = email.capitalize()
        if mailable or not args.members_only:
            out.writerow([email, first, last, city, status])
    print(
        f"gen-list.py: {args.n} rows, {members} members to mail ({invalid} invalid, {duplicate} duplicate, "
        f"{status_skipped} unsubscribed/cleaned/bounced)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
