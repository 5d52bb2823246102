#!/usr/bin/python3
"""Drives real clients through card removal and insertion with the emulator's control socket,
where a person would pull the card out of the reader and put it back.

    drive_card.py EMULATOR SOCKET READER SCENARIO [ARGS...]

EMULATOR is the sc-hsm-emulator binary, SOCKET the card's control socket, READER the PC/SC
reader the card is in. Each scenario prints `name key=value ...` lines and exits non-zero
on the first thing that is not as expected:

    prompts COMMAND...        answers "Please remove card ..." / "Please insert card ..."
                              prompts (CardContact's sc-hsm-pkcs11-test --test-insert-remove)
    hotplug MODULE            pkcs11-tool --test-hotplug: both of its loops, a removal and an
                              insertion in each
    p11test-wait P11TEST MODULE
                              OpenSC's p11test -i: its wait_test sees the card come in
    pull-sign MODULE          PyKCS11: log in, pull the card, C_Sign, put it back, sign again
"""

import re
import subprocess
import sys
import threading
import time

from smartcard.scard import (SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCARD_STATE_PRESENT,
                             SCARD_STATE_UNAWARE, SCardEstablishContext,
                             SCardGetStatusChange, SCardReleaseContext)

WAIT = 20.0


def fail(what):
    print(f"failed what={what!r}", flush=True)
    sys.exit(1)


class Card:
    def __init__(self, emulator, socket, reader):
        self.emulator, self.socket, self.reader = emulator, socket, reader

    def control(self, *verb):
        out = subprocess.run([self.emulator, "control", "--socket", self.socket, *verb],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            fail(f"control {' '.join(verb)}: {out.stderr.strip()}")
        return out.stdout.strip()

    def present(self):
        hr, context = SCardEstablishContext(SCARD_SCOPE_USER)
        if hr != SCARD_S_SUCCESS:
            fail("no PC/SC context")
        try:
            hr, states = SCardGetStatusChange(context, 0, [(self.reader, SCARD_STATE_UNAWARE)])
            return hr == SCARD_S_SUCCESS and bool(states[0][1] & SCARD_STATE_PRESENT)
        finally:
            SCardReleaseContext(context)

    def wait(self, present):
        """Polls PC/SC until pcscd sees the card in (or out of) the reader."""
        deadline = time.monotonic() + WAIT
        while self.present() != present:
            if time.monotonic() > deadline:
                fail(f"pcscd never saw the card {'in' if present else 'out'}")
            time.sleep(0.05)

    def remove(self):
        self.control("remove")
        self.wait(False)

    def insert(self):
        self.control("insert")
        self.wait(True)


class Expect:
    """A child process whose output is matched as it comes."""

    def __init__(self, argv):
        self.child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, bufsize=0)
        self.text, self.pos = "", 0
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            chunk = self.child.stdout.read(1)
            with self.changed:
                if not chunk:
                    self.text += "\0"
                    self.changed.notify_all()
                    return
                self.text += chunk
                self.changed.notify_all()

    def expect(self, pattern, timeout=WAIT * 3):
        """Waits for `pattern` after what was matched so far; the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self.changed:
            while True:
                found = regex.search(self.text, self.pos)
                if found:
                    self.pos = found.end()
                    return found
                if self.text.endswith("\0") or time.monotonic() > deadline:
                    fail(f"{pattern!r} never came; output:\n{self.text[-3000:]}")
                self.changed.wait(0.1)

    def send(self, line):
        self.child.stdin.write(line + "\n")
        self.child.stdin.flush()

    def finish(self):
        try:
            self.child.stdin.close()
        except BrokenPipeError:
            pass
        return self.child.wait(timeout=WAIT * 6)


def prompts(card, argv):
    # The prompts are printed without a flush: unbuffered, they reach the pipe at once.
    child = Expect(["stdbuf", "-o0", *argv])
    removals = insertions = 0
    while True:
        found = child.expect(r"Please (remove|insert) card[^\n]*\n|\0")
        if found.group(0) == "\0":
            break
        if found.group(1) == "remove":
            card.remove()
            removals += 1
        else:
            card.insert()
            insertions += 1
        child.send("")
    code = child.finish()
    print(f"prompts removals={removals} insertions={insertions} exit={code}")
    print(child.text.rstrip("\0"), file=sys.stderr)


def listing(child, token):
    """The slot listing after an event shows the card's slot empty or with the token."""
    if token:
        child.expect(r"Slot 0 \(0x0\): [^\n]*\n\s+token label\s+:\s+SmartCard-HSM")
    else:
        child.expect(r"Slot 0 \(0x0\): [^\n]*\n\s+\(empty\)")


def hotplug(card, module):
    child = Expect(["pkcs11-tool", "--module", module, "--test-hotplug"])
    prompt = r"Please press return to continue, x to exit: "
    child.expect(r"Testing card detection using C_GetSlotList\(\)")
    child.expect(prompt)
    card.remove()
    child.send("")
    listing(child, False)
    child.expect(prompt)
    card.insert()
    child.send("")
    listing(child, True)
    child.expect(prompt)
    child.send("x")
    child.expect(r"Testing card detection using C_WaitForSlotEvent\(\)")
    events = 0
    # The first wait may return at once with the insertion OpenSC saw at start.
    child.expect(prompt)
    child.send("")
    child.expect(r"Calling C_WaitForSlotEvent: ")
    child.expect(r"event on slot 0x0")
    child.expect(prompt)
    for token in (False, True):
        child.send("")
        child.expect(r"Calling C_WaitForSlotEvent: ")
        if token:
            card.control("insert")
        else:
            card.control("remove")
        child.expect(r"event on slot 0x0")
        events += 1
        listing(child, token)
        child.expect(prompt)
    child.send("x")
    code = child.finish()
    print(f"hotplug events={events} exit={code}")


def p11test_wait(card, p11test, module):
    """p11test starts with the card out; its wait_test must see the card come in. The rest of
    p11test's suite is not this scenario's business: p11test is stopped after wait_test."""
    card.remove()
    child = Expect(["stdbuf", "-o0", p11test, "-m", module, "-i", "-s", "0", "-p", "648219"])
    child.expect(r"\[ RUN +\] wait_test")
    child.expect(r"\[ Waiting for slot event \.\.\. \]")
    card.control("insert")
    found = child.expect(r"\[ +(OK|FAILED|SKIPPED|ERROR) +\] wait_test")
    child.child.kill()
    child.child.wait()
    waited = child.text[:found.start()]
    print(f"p11test-wait result={found.group(1)} no_token_events={waited.count('Status: No token')}"
          f" token_present={waited.count('Status: Token present')}")


def pull_sign(card, module):
    import PyKCS11
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    slot = lib.getSlotList(tokenPresent=True)[0]
    session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    session.login("648219")
    key = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                               (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC)])[0]
    mechanism = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA_SHA256, None)
    session.sign(key, b"before", mechanism)
    # Pulled between C_Login and C_Sign: pcscd sees the card go before C_Sign.
    card.remove()
    try:
        session.sign(key, b"while out", mechanism)
        fail("C_Sign succeeded with the card out of the reader")
    except PyKCS11.PyKCS11Error as error:
        print(f"pulled sign={PyKCS11.CKR[error.value]}")
    card.insert()
    # A new session logs in and signs; Python's cryptography checks the signature. OpenSC
    # learnt of the removal only from the failed C_Sign and keeps the slot logged in until
    # the application closes its sessions.
    lib.closeAllSessions(slot)
    # As an application does after CKR_DEVICE_REMOVED: look at the slots again until the
    # token is back (OpenSC looks at a reader at most once a second).
    deadline, answers = time.monotonic() + 5, []
    while True:
        try:
            slot = lib.getSlotList(tokenPresent=True)[0]
            session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
            session.login("648219")
            break
        except (PyKCS11.PyKCS11Error, IndexError) as error:
            answers.append(PyKCS11.CKR.get(getattr(error, "value", None), "no slot"))
            if time.monotonic() > deadline:
                # This process's OpenSC does not recover the slot: say so, a new process
                # (the caller's) is the application's way out.
                print(f"reinserted in_process={answers[-1]}")
                return
            time.sleep(0.1)
    print(f"reinserted in_process=ok")
    key = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                               (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC)])[0]
    key_id = session.getAttributeValue(key, [PyKCS11.CKA_ID])[0]
    public = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
                                  (PyKCS11.CKA_ID, key_id)])[0]
    point = bytes(session.getAttributeValue(public, [PyKCS11.CKA_EC_POINT])[0])
    signature = bytes(session.sign(key, b"after", mechanism))
    half = len(signature) // 2
    der = encode_dss_signature(int.from_bytes(signature[:half], "big"),
                               int.from_bytes(signature[half:], "big"))
    # CKA_EC_POINT is a DER OCTET STRING around the uncompressed point.
    raw = point[2:] if point[0] == 0x04 and point[1] == len(point) - 2 else point
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    verifier.verify(der, b"after", ec.ECDSA(hashes.SHA256()))
    flags = lib.getTokenInfo(slot).flags
    print(f"reinserted sign=ok verified=ok pin_count_low={bool(flags & PyKCS11.CKF_USER_PIN_COUNT_LOW)}")
    session.logout()
    session.closeSession()


def main():
    emulator, socket, reader, scenario, *args = sys.argv[1:]
    card = Card(emulator, socket, reader)
    if scenario == "prompts":
        prompts(card, args)
    elif scenario == "hotplug":
        hotplug(card, *args)
    elif scenario == "p11test-wait":
        p11test_wait(card, *args)
    elif scenario == "pull-sign":
        pull_sign(card, *args)
    else:
        fail(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
