#!/usr/bin/env python3
"""Compares a p11test JSON log of the emulator with OpenSC's reference log of a physical
SmartCard-HSM (src/tests/p11test/sc-hsm_ref.json): every test must end as it did on the card,
and every row the card's log has must be in the emulator's, except where the p11test release
itself no longer runs the check. Rows only the emulator's log has are printed, not refused
(a newer OpenSC announces more mechanisms than the one that recorded the reference).

    p11test_compare.py REFERENCE.json EMULATOR.json
"""
import json
import sys

# p11test >= 0.26 skips raw RSA and RSA-PSS in its multi-part test ("these do not support
# multi-part operations"); the 2023 reference still lists them.
NOT_RUN_BY_P11TEST = {
    "multipart_tests": lambda row: row[1] in ("RSA_X_509", "RSA_PKCS", "RSA_PKCS_PSS"),
}


def rows(test):
    data = test.get("data") or []
    if test["test_id"] == "supported_mechanisms_test":
        # Mechanism, min and max key size; the flags column changed format (hex to names).
        return [tuple(r[:3]) for r in data]
    return [tuple(r) for r in data]


def main(reference_path, emulator_path):
    reference = {t["test_id"]: t for t in json.load(open(reference_path))["results"]}
    emulator = {t["test_id"]: t for t in json.load(open(emulator_path))["results"]}
    problems, extras = [], []
    for test_id, expected in reference.items():
        got = emulator.get(test_id)
        if got is None:
            problems.append(f"{test_id}: not run")
            continue
        if got.get("result") != expected.get("result"):
            problems.append(f"{test_id}: {got.get('result')} (the card: {expected.get('result')})")
        mine = set(rows(got))
        skipped = NOT_RUN_BY_P11TEST.get(test_id, lambda row: False)
        for row in rows(expected):
            if row not in mine and not skipped(row):
                problems.append(f"{test_id}: missing {list(row)}")
        theirs = set(rows(expected))
        extras += [f"{test_id}: also {list(r)}" for r in rows(got) if r not in theirs]
    for line in extras:
        print(line)
    for line in problems:
        print("DIFFERS " + line)
    print(f"{len(reference)} tests compared, {len(problems)} differences, {len(extras)} rows more")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
