"""Checks amp_peer.py against itself: its client scenarios against its own server.

  /usr/bin/python3 test/interop/peers/selftest_amp_peer.py      (prints one line per check; exit 1 on a failure)

Run it after changing amp_peer.py: Twisted against Twisted is the baseline the
interop suite compares effect-amp with. Only the scenarios whose expected output
differs against our server are noted (switch: ours sends "HELLO;" first).
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "amp_peer.py")
CERTS = os.path.join(HERE, "..", "..", "certs")
PY = sys.executable


def cert(name):
    return os.path.join(CERTS, name)


def start_server(*args):
    p = subprocess.Popen([PY, PEER, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = p.stdout.readline().strip()
    assert first.startswith("listening "), first
    return p, first


def client(target, *args, stdin=None):
    r = subprocess.run([PY, PEER, "--connect", target, *args], input=stdin, capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert lines and lines[0] == "listening client", r.stdout + r.stderr
    return r.returncode, [json.loads(line) for line in lines[1:]]


CHECKS = [
    (["--script", "sum"], [{"total": 94}]),
    (["--script", "errors"], [
        {"divide": "ZERO_DIVISION: float division by zero", "mapped": "MAPPED: mapped failure",
         "unhandled": "UNHANDLED", "unknown": "UNKNOWN"},
        {"fatal": "FATAL: fatal failure", "closed": True}]),
    (["--script", "fatal"], [{"fatal": "FATAL: fatal failure"}, {"closed": True}]),
    (["--script", "notify"], [{"echo": "after notes"}, {"notes": ["note %d" % i for i in range(5)]}]),
    (["--script", "pipeline", "500"], [{"ok": True, "n": 500}]),
    (["--script", "delays"], [{"order": [3, 1, 4, 2, 0]}]),
    (["--script", "callback"], [{"total": 42}]),
    (["--script", "starttls", "--cert", cert("client.pem"), "--key", cert("client.key"), "--ca", cert("ca.pem")],
     [{"total": 5, "tls": True, "peer": "effect-amp test client"}]),
    (["--script", "switch"], [{"received": "raw bytes after the switch"}]),
    (["--script", "switch-refused"], [{"refused": "not today"}, {"total": 2}]),
    (["--script", "disconnect"], [{"lost": "ConnectionDone"}]),
    (["--script", "lose-while-waiting"], [{"failures": ["ConnectionDone"] * 10}]),
]

ECHO_INPUT = {"i": {"int": "-99999999999999999999"}, "s": {"bytes": "AP8="}, "u": "h\u00e9 \U0001f40d",
              "fl": {"float": "-0.0"}, "b": True, "d": {"decimal": "1.50"},
              "dt": {"datetime": "2020-01-02T03:04:05.000006-01:30"}, "li": [1, {"int": "2"}], "lu": ["", "x"],
              "al": [{"x": 1}, {"x": 2, "y": "z"}], "nested": [{"inner": [{"z": 3}]}], "p": {"path": "/tmp/x"},
              "o": 7, "dash-name": "d"}


def main():
    failures = 0

    def report(name, ok, detail=""):
        nonlocal failures
        failures += 0 if ok else 1
        print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)

    server, first = start_server("--listen", "tcp:0", "--cert", cert("server.pem"), "--key", cert("server.key"),
                                 "--ca", cert("ca.pem"))
    target = "tcp:127.0.0.1:" + first.split()[-1]
    try:
        for args, expected in CHECKS:
            code, lines = client(target, *args)
            report(" ".join(args[:3]), code == 0 and lines == expected, "exit %d, %r" % (code, lines))
        code, lines = client(target, "--script", "echoall")
        report("echoall (built-in edge cases)", code == 0 and len(lines) == 8 and all(l["ok"] for l in lines),
               repr([l["mismatches"] for l in lines]))
        for how, arg, stdin in [("argv", json.dumps(ECHO_INPUT), None), ("stdin", "-", json.dumps([ECHO_INPUT] * 2))]:
            code, lines = client(target, "--script", "echoall", arg, stdin=stdin)
            want = dict(ECHO_INPUT, i={"int": "-99999999999999999999"}, li=[{"int": "1"}, {"int": "2"}],
                        al=[{"x": {"int": "1"}}, {"x": {"int": "2"}, "y": "z"}],
                        nested=[{"inner": [{"z": {"int": "3"}}]}], o={"int": "7"})
            report("echoall JSON on " + how, code == 0 and lines and all(l["ok"] and l["got"] == want for l in lines),
                   repr(lines))
        code, lines = client(target, "--script", "starttls", "--cert", cert("rogue.pem"), "--key", cert("rogue.key"))
        report("starttls with a certificate the server's CA did not sign fails", code == 1 and "error" in lines[-1],
               repr(lines))
    finally:
        server.kill()
        server.wait()

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "amp.sock")
        server, first = start_server("--listen", "unix:" + path)
        try:
            report("listening line for unix", first == "listening unix " + path, first)
            code, lines = client("unix:" + path, "--script", "sum")
            report("sum over unix", code == 0 and lines == [{"total": 94}], repr(lines))
        finally:
            server.kill()
            server.wait()

    r = subprocess.run([PY, PEER, "--connect", "tcp:127.0.0.1:1", "--script", "nosuch"], capture_output=True, text=True)
    report("unknown script is refused", r.returncode != 0 and "unknown script nosuch" in r.stderr, r.stderr)
    sys.exit(1 if failures else 0)


main()
