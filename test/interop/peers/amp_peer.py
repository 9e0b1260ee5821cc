"""A Twisted AMP peer for effect-amp's interop suite. Run it with /usr/bin/python3.

Every command is defined here with Twisted's own amp.Command; the TypeScript
side defines the same ones with effect-amp (test/interop/commands.ts).

Usage
-----
Server:
  amp_peer.py --listen tcp:0            (or tcp:PORT; binds 127.0.0.1)
  amp_peer.py --listen unix:PATH
      [--cert PEM --key PEM] [--ca PEM]   certificate for StartTLS; --ca makes us verify the peer
  prints "listening tcp 127.0.0.1 PORT" or "listening unix PATH", then serves
  every connection with the responders below until killed.

Client (runs one scenario, then exits 0; exits 1 after printing {"error": ...}):
  amp_peer.py --connect tcp:HOST:PORT | --connect unix:PATH --script NAME [ARG]
      [--cert PEM --key PEM] [--ca PEM]
  prints "listening client" first (so every peer starts with one "listening"
  line), then one JSON line per result.

Stdio (Twisted drives a child process over its stdin/stdout, as process pools do):
  amp_peer.py --script NAME [ARG] --spawn CMD ARGS...   (--spawn takes the rest of argv)

Every stdout line after the first is one JSON value. Twisted's log goes to stderr.
The peer exits by itself when its parent process dies.

Scripts (NAME [ARG] -> lines printed)
-------------------------------------
  sum                  Sum(13, 81)                         -> {"total": 94}
  echoall [JSON|-]     EchoAll with each argument set       -> per set: {"ok", "mismatches", "got"}
                       no ARG: the built-in EDGE_CASES below; JSON: an argument set in the
                       JSON form below, or a list of them; "-": that JSON read from stdin.
                       "ok" says the answer equals what was sent; "mismatches" lists the
                       fields that differ; "got" is the whole answer in the JSON form.
  errors               Divide by zero, Fail mapped, an unknown command (callRemoteString),
                       Fail unknown (the responder side then closes)
                       -> {"divide": "ZERO_DIVISION: ...", "mapped": "MAPPED: ...",
                           "unhandled": "UNHANDLED", "unknown": "UNKNOWN"}
                       then, on a second connection, Fail fatal
                       -> {"fatal": "FATAL: fatal failure", "closed": true}
  fatal                Fail fatal -> {"fatal": "FATAL: fatal failure"}, then {"closed": true}
  notify               5 x Notify (requiresAnswer False), then Echo
                       -> {"echo": "after notes"}, then {"notes": [...GetNotes...]}
  pipeline [N]         N (default 1000) concurrent Sum calls -> {"ok": true, "n": N}
  delays               Delay 60,10,40,0,20 ms with ids 0..4 -> {"order": [3, 1, 4, 2, 0]}
  callback             CallBack(41): the peer calls our Sum(41, 1) back -> {"total": 42}
  starttls             StartTLS (--cert/--key/--ca), a Sum sent right after, Secure
                       -> {"total": 5, "tls": true, "peer": "<peer certificate CN or ''>"}
  starttls-plain       StartTLS with no certificate (against any server with Sum), then Sum
                       -> {"total": 5, "tls": "<TLS version>", "peer": "<server certificate CN>"}
  switch               SwitchToEcho, then raw bytes -> {"received": "<everything read after
                       the switch, up to and including our bytes echoed back>"}
                       (a Twisted server echoes only; ours sends "HELLO;" first)
  switch-refused       SwitchRefused -> {"refused": "not today"}, then Sum -> {"total": 2}
  disconnect           Disconnect -> {"lost": "<exception type>"}
  lose-while-waiting   10 Delay(60 s) calls, then Disconnect -> {"failures": [10 type names]}
  quit                 Quit (a QuitBox) and a Sum in the same write -> {"bye", "after": how the Sum ended, "closed": true}

JSON form of argument values (echoall input and output)
-------------------------------------------------------
  Integer  {"int": "123"}      (input also takes a plain JSON integer)
  String   {"bytes": "<base64>"}
  Unicode  "text"
  Float    {"float": repr(x)}  e.g. "0.1", "-0.0", "inf", "nan" (input also takes a JSON number)
  Boolean  true / false
  Decimal  {"decimal": str(d)} e.g. "-1.10E-7", "NaN", "sNaN"
  DateTime {"datetime": isoformat(timespec="microseconds")} e.g. "2026-11-24T23:59:59.999999+05:45"
  Path     {"path": "/tmp/x"}
  ListOf   a JSON array; AmpList: a JSON array of objects
  Fields are keyed by wire name ("dash-name"); input also takes "dash_name".
  An absent optional field is left out (input also takes null).

Commands
--------
  Sum(a: Integer, b: Integer) -> total: Integer
  Divide(numerator: Integer, denominator: Integer) -> result: Float; errors ZERO_DIVISION
  Echo(text: Unicode) -> text: Unicode
  EchoAll(i: Integer, s: String, u: Unicode, fl: Float, b: Boolean, d: Decimal, dt: DateTime,
          li: ListOf(Integer), lu: ListOf(Unicode), al: AmpList(x: Integer, y: Unicode?),
          nested: AmpList(inner: AmpList(z: Integer)), p: Path?, o: Integer?,
          dash-name: Unicode?) -> the same, echoed
  Fail(kind: Unicode); errors MAPPED, fatalErrors FATAL; kind "mapped" | "fatal" | other
          (other raises a plain Exception: UNKNOWN, and Twisted closes the connection)
  Notify(text: Unicode), requiresAnswer False;  GetNotes() -> notes: ListOf(Unicode)
  Delay(ms: Integer, id: Integer) -> id: Integer, answered after ms milliseconds
  CallBack(n: Integer) -> total: Integer, from Sum(a=n, b=1) called back on the same connection
  StartTLS (amp.StartTLS): our certificate from --cert/--key, verification from --ca
  Secure() -> tls: Boolean, peer: Unicode (peer certificate's CN, "" when none)
  SwitchToEcho (ProtocolSwitchCommand): this side becomes a raw echo
  SwitchRefused (ProtocolSwitchCommand): refused with REFUSED "not today"
  Disconnect(): drops the connection without answering
"""
import base64
import datetime
import decimal
import json
import os
import sys

from twisted.internet import defer, endpoints, protocol, reactor, ssl, task
from twisted.protocols import amp
from twisted.python import filepath


class ChildTransport:
    """What AMP needs of a transport, over a child process's stdin."""

    def __init__(self, pt):
        self.pt = pt
        self.disconnecting = False

    def write(self, data):
        self.pt.write(data)

    def writeSequence(self, seq):
        self.pt.write(b"".join(seq))

    def loseConnection(self):
        self.disconnecting = True
        self.pt.closeStdin()

    def getPeer(self):
        return None

    def getHost(self):
        return None


class ZeroDivision(Exception):
    pass


class MappedError(Exception):
    pass


class FatalError(Exception):
    pass


class Refused(Exception):
    pass


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivision: b"ZERO_DIVISION"}


class Echo(amp.Command):
    arguments = [(b"text", amp.Unicode())]
    response = [(b"text", amp.Unicode())]


ALL = [
    (b"i", amp.Integer()),
    (b"s", amp.String()),
    (b"u", amp.Unicode()),
    (b"fl", amp.Float()),
    (b"b", amp.Boolean()),
    (b"d", amp.Decimal()),
    (b"dt", amp.DateTime()),
    (b"li", amp.ListOf(amp.Integer())),
    (b"lu", amp.ListOf(amp.Unicode())),
    (b"al", amp.AmpList([(b"x", amp.Integer()), (b"y", amp.Unicode(optional=True))])),
    (b"nested", amp.AmpList([(b"inner", amp.AmpList([(b"z", amp.Integer())]))])),
    (b"p", amp.Path(optional=True)),
    (b"o", amp.Integer(optional=True)),
    (b"dash-name", amp.Unicode(optional=True)),
]


class EchoAll(amp.Command):
    arguments = ALL
    response = ALL


class Fail(amp.Command):
    arguments = [(b"kind", amp.Unicode())]
    errors = {MappedError: b"MAPPED"}
    fatalErrors = {FatalError: b"FATAL"}


class Notify(amp.Command):
    arguments = [(b"text", amp.Unicode())]
    requiresAnswer = False


class GetNotes(amp.Command):
    response = [(b"notes", amp.ListOf(amp.Unicode()))]


class Delay(amp.Command):
    arguments = [(b"ms", amp.Integer()), (b"id", amp.Integer())]
    response = [(b"id", amp.Integer())]


class CallBack(amp.Command):
    arguments = [(b"n", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Secure(amp.Command):
    response = [(b"tls", amp.Boolean()), (b"peer", amp.Unicode())]


class SwitchToEcho(amp.ProtocolSwitchCommand):
    pass


class SwitchRefused(amp.ProtocolSwitchCommand):
    errors = {Refused: b"REFUSED"}


class Disconnect(amp.Command):
    pass


class Quit(amp.Command):
    """Answered with a QuitBox: the answer, then the connection closes (ampoule's Shutdown)."""
    response = [(b"bye", amp.Unicode())]
    responseType = amp.QuitBox


class EchoProtocol(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Collector(protocol.Protocol):
    """The client's side of a switch: collects what comes back."""

    def __init__(self):
        self.received = b""
        self.waiting = None
        self.suffix = None

    def dataReceived(self, data):
        self.received += data
        if self.waiting is not None and self.received.endswith(self.suffix):
            d, self.waiting = self.waiting, None
            d.callback(self.received)

    def wait_for_suffix(self, suffix):
        """Fires with everything received once it ends with `suffix`."""
        self.suffix = suffix
        if self.received.endswith(suffix):
            return defer.succeed(self.received)
        self.waiting = defer.Deferred()
        return self.waiting


class CollectorFactory(protocol.ClientFactory):
    def __init__(self):
        self.proto = Collector()

    def buildProtocol(self, addr):
        return self.proto


OPTIONS = {}
NOTES = []


def load_tls():
    """StartTLS arguments from --cert/--key (our certificate) and --ca (verify the peer)."""
    out = {}
    if "cert" in OPTIONS:
        with open(OPTIONS["cert"], "rb") as c, open(OPTIONS["key"], "rb") as k:
            out["tls_localCertificate"] = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
    if "ca" in OPTIONS:
        with open(OPTIONS["ca"], "rb") as c:
            out["tls_verifyAuthorities"] = [ssl.Certificate.loadPEM(c.read())]
    return out


class Peer(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Divide.responder
    def divide(self, numerator, denominator):
        if denominator == 0:
            raise ZeroDivision("float division by zero")
        return {"result": numerator / denominator}

    @Echo.responder
    def echo(self, text):
        return {"text": text}

    @EchoAll.responder
    def echo_all(self, **kw):
        return kw

    @Fail.responder
    def fail(self, kind):
        if kind == "mapped":
            raise MappedError("mapped failure")
        if kind == "fatal":
            raise FatalError("fatal failure")
        raise Exception("unmapped failure")

    @Notify.responder
    def notify(self, text):
        NOTES.append(text)
        return {}

    @GetNotes.responder
    def get_notes(self):
        return {"notes": list(NOTES)}

    @Delay.responder
    def delay(self, ms, id):
        d = defer.Deferred()
        reactor.callLater(ms / 1000.0, d.callback, {"id": id})
        return d

    @CallBack.responder
    def call_back(self, n):
        return self.callRemote(Sum, a=n, b=1).addCallback(lambda r: {"total": r["total"]})

    @amp.StartTLS.responder
    def start_tls(self):
        return load_tls()

    @Secure.responder
    def secure(self):
        peer = ""
        if self.hostCertificate is not None:
            try:
                peer = self.peerCertificate.getSubject().commonName.decode()
            except Exception:  # no client certificate: peerCertificate raises
                peer = ""
        return {"tls": self.hostCertificate is not None, "peer": peer}

    @SwitchToEcho.responder
    def switch_to_echo(self):
        return EchoProtocol()

    @SwitchRefused.responder
    def switch_refused(self):
        raise Refused("not today")

    @Quit.responder
    def quit(self):
        return {"bye": "so long"}

    @Disconnect.responder
    def disconnect(self):
        self.transport.loseConnection()
        return defer.Deferred()  # never answers


class ClientPeer(Peer):
    """A Peer that also tells the scenario when its connection ends."""

    def connectionMade(self):
        amp.AMP.connectionMade(self)
        self._closed = defer.Deferred()

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if not self._closed.called:
            self._closed.callback(None)


# ---------------------------------------------------------------------------
# The JSON form of values (see the top of the file)
# ---------------------------------------------------------------------------

SPECS = {name.decode(): arg for name, arg in ALL}


def to_json(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, bytes):
        return {"bytes": base64.b64encode(v).decode()}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, decimal.Decimal):
        return {"decimal": str(v)}
    if isinstance(v, datetime.datetime):
        return {"datetime": v.isoformat(timespec="microseconds")}
    if isinstance(v, filepath.FilePath):
        return {"path": v.path if isinstance(v.path, str) else v.path.decode()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {wire_name(k): to_json(x) for k, x in v.items() if x is not None}
    return repr(v)


def wire_name(k):
    """Twisted hands responders Python names (dash_name); the JSON form uses wire names."""
    k = k.decode() if isinstance(k, bytes) else k
    return k if k in SPECS or k.replace("_", "-") not in SPECS else k.replace("_", "-")


def from_json(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, list):
        return [from_json(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (tag, x), = v.items()
            if tag == "int":
                return int(x)
            if tag == "bytes":
                return base64.b64decode(x)
            if tag == "float":
                return float(x)
            if tag == "decimal":
                return decimal.Decimal(x)
            if tag == "datetime":
                return datetime.datetime.fromisoformat(x)
            if tag == "path":
                return filepath.FilePath(x)
        return {k.replace("-", "_"): from_json(x) for k, x in v.items() if x is not None}
    raise ValueError("not a value of the JSON form: %r" % (v,))


def tz(minutes):
    return amp._FixedOffsetTZInfo.fromSignHoursMinutes("+" if minutes >= 0 else "-", abs(minutes) // 60, abs(minutes) % 60)


EDGE_CASES = [
    dict(i=0, s=b"", u="", fl=0.0, b=False, d=decimal.Decimal("0"),
         dt=datetime.datetime(2000, 1, 1, 0, 0, 0, 0, tzinfo=tz(0)), li=[], lu=[], al=[], nested=[]),
    dict(i=-(2 ** 64) - 1, s=bytes(range(256)) * 3, u="h\u00e9llo \U0001f40d \u4e2d\u6587", fl=float("inf"), b=True,
         d=decimal.Decimal("-1.10E-7"), dt=datetime.datetime(2026, 11, 24, 23, 59, 59, 999999, tzinfo=tz(345)),
         li=[0, -1, 2 ** 53 + 1, 2 ** 70], lu=["", "\U0001f600", "x" * 100],
         al=[{"x": 1, "y": "one"}, {"x": 2}], nested=[{"inner": [{"z": 1}, {"z": 2}]}, {"inner": []}],
         p=filepath.FilePath("/tmp/\u00fcber"), o=7, **{"dash_name": "dashed"}),
    dict(i=2 ** 53 + 1, s=b"\xff" * 65535, u="\u00e9" * 30000, fl=-0.0, b=False, d=decimal.Decimal("Infinity"),
         dt=datetime.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=tz(-570)), li=[1], lu=["a"], al=[], nested=[]),
    dict(i=12345678901234567890123, s=b"x", u="y", fl=1e-300, b=True, d=decimal.Decimal("NaN"),
         dt=datetime.datetime(9999, 12, 31, 23, 59, 59, 0, tzinfo=tz(-1)), li=[], lu=[], al=[], nested=[]),
    dict(i=-1, s=b"z", u="w", fl=float("-inf"), b=True, d=decimal.Decimal("1E+2"),
         dt=datetime.datetime(2024, 2, 29, 12, 0, 0, 500, tzinfo=tz(840)), li=[], lu=[], al=[], nested=[]),
    dict(i=1, s=b"q", u="r", fl=float("nan"), b=False, d=decimal.Decimal("sNaN"),
         dt=datetime.datetime(2024, 2, 29, 12, 0, 0, 500, tzinfo=tz(-720)), li=[], lu=[], al=[], nested=[]),
    dict(i=3, s=b"q", u="r", fl=1.5e16, b=False, d=decimal.Decimal("-0"),
         dt=datetime.datetime(2024, 2, 29, 12, 0, 0, 500, tzinfo=tz(1)), li=[], lu=[], al=[], nested=[]),
    dict(i=4, s=b"q", u="r", fl=0.1, b=False, d=decimal.Decimal("123.4500"),
         dt=datetime.datetime(2024, 2, 29, 12, 0, 0, 500, tzinfo=tz(0)), li=[], lu=[], al=[], nested=[]),
]


def same(a, b):
    """Equality as the wire sees it: NaN equals NaN, -0.0 is not 0.0, Decimal and offsets compare exactly."""
    if isinstance(a, float) and isinstance(b, float):
        return repr(a) == repr(b)
    if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        # An absent optional field decodes as None in Twisted.
        a = {k: v for k, v in a.items() if v is not None}
        b = {k: v for k, v in b.items() if v is not None}
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, filepath.FilePath) and isinstance(b, filepath.FilePath):
        return a.path == b.path
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return type(a) == type(b) and a == b


# ---------------------------------------------------------------------------
# Client scenarios
# ---------------------------------------------------------------------------

SCRIPTS = {"sum", "echoall", "errors", "fatal", "notify", "pipeline", "delays", "callback", "starttls",
           "starttls-plain", "switch", "switch-refused", "disconnect", "lose-while-waiting", "quit"}


def out(obj):
    print(json.dumps(obj), flush=True)


@defer.inlineCallbacks
def run_script(proto, name, arg, reconnect):
    if name == "sum":
        r = yield proto.callRemote(Sum, a=13, b=81)
        out({"total": r["total"]})
    elif name == "echoall":
        cases = EDGE_CASES if arg is None else arg
        for case in cases:
            r = yield proto.callRemote(EchoAll, **case)
            mismatches = [k for k in case if not same(case[k], r.get(k))]
            extra = [k for k in r if k not in case and r[k] is not None]
            out({"ok": not mismatches and not extra, "mismatches": [wire_name(k) for k in mismatches + extra],
                 "got": to_json(r)})
    elif name == "errors":
        results = {}
        try:
            yield proto.callRemote(Divide, numerator=1, denominator=0)
            results["divide"] = "no error"
        except ZeroDivision as e:
            results["divide"] = "ZERO_DIVISION: " + str(e)
        try:
            yield proto.callRemote(Fail, kind="mapped")
            results["mapped"] = "no error"
        except MappedError as e:
            results["mapped"] = "MAPPED: " + str(e)
        try:
            yield proto.callRemoteString(b"NoSuchCommand", x=b"1")
            results["unhandled"] = "no error"
        except amp.UnhandledCommand:
            results["unhandled"] = "UNHANDLED"
        except amp.RemoteAmpError as e:
            results["unhandled"] = e.errorCode.decode()
        try:
            yield proto.callRemote(Fail, kind="unknown")
            results["unknown"] = "no error"
        except amp.UnknownRemoteError:
            results["unknown"] = "UNKNOWN"
        except Exception as e:
            results["unknown"] = type(e).__name__
        out(results)
        # UNKNOWN closed that connection; a fatal error needs a fresh one.
        second = yield reconnect()
        r = yield fatal(second)
        out(r)
    elif name == "fatal":
        r = yield fatal(proto, split=True)
        out(r)
    elif name == "notify":
        for i in range(5):
            proto.callRemote(Notify, text="note %d" % i)
        r = yield proto.callRemote(Echo, text="after notes")
        out({"echo": r["text"]})
        n = yield proto.callRemote(GetNotes)
        out({"notes": n["notes"]})
    elif name == "pipeline":
        n = int(arg or 1000)
        ds = [proto.callRemote(Sum, a=i, b=i) for i in range(n)]
        rs = yield defer.gatherResults(ds)
        out({"ok": all(r["total"] == 2 * i for i, r in enumerate(rs)), "n": len(rs)})
    elif name == "delays":
        ds = [proto.callRemote(Delay, ms=ms, id=i) for i, ms in enumerate([60, 10, 40, 0, 20])]
        order = []
        for d in ds:
            d.addCallback(lambda r: order.append(r["id"]))
        yield defer.gatherResults(ds)
        out({"order": order})
    elif name == "callback":
        r = yield proto.callRemote(CallBack, n=41)
        out({"total": r["total"]})
    elif name == "starttls":
        yield proto.callRemote(amp.StartTLS, **load_tls())
        r = yield proto.callRemote(Sum, a=2, b=3)
        s = yield proto.callRemote(Secure)
        out({"total": r["total"], "tls": s["tls"], "peer": s["peer"]})
    elif name == "starttls-plain":
        yield proto.callRemote(amp.StartTLS)
        r = yield proto.callRemote(Sum, a=2, b=3)
        conn = proto.transport.getHandle()
        subject = conn.get_peer_certificate().get_subject()
        out({"total": r["total"], "tls": conn.get_protocol_version_name(), "peer": subject.CN})
    elif name == "switch":
        f = CollectorFactory()
        yield proto.callRemote(SwitchToEcho, f)
        payload = b"raw bytes after the switch"
        f.proto.transport.write(payload)
        got = yield f.proto.wait_for_suffix(payload)
        out({"received": got.decode("utf-8", "replace")})
    elif name == "switch-refused":
        f = CollectorFactory()
        try:
            yield proto.callRemote(SwitchRefused, f)
            out({"refused": False})
        except Refused as e:
            out({"refused": str(e)})
        r = yield proto.callRemote(Sum, a=1, b=1)
        out({"total": r["total"]})
    elif name == "quit":
        # Quit, and a Sum in the same write: the answer to Quit, then the end; the Sum fails.
        q = proto.callRemote(Quit)
        later = proto.callRemote(Sum, a=1, b=2)
        r = yield q
        try:
            yield later
            after = "answered"
        except Exception as e:
            after = type(e).__name__
        yield proto._closed
        out({"bye": r["bye"], "after": after, "closed": True})
    elif name == "disconnect":
        try:
            yield proto.callRemote(Disconnect)
            out({"lost": False})
        except Exception as e:
            out({"lost": type(e).__name__})
    elif name == "lose-while-waiting":
        ds = [proto.callRemote(Delay, ms=60000, id=i) for i in range(10)]
        proto.callRemote(Disconnect).addErrback(lambda f: None)
        failures = []
        for d in ds:
            try:
                yield d
                failures.append(None)
            except Exception as e:
                failures.append(type(e).__name__)
        out({"failures": failures})


@defer.inlineCallbacks
def fatal(proto, split=False):
    """Fail("fatal"): the error arrives, then the responder side closes the connection."""
    result = {}
    try:
        yield proto.callRemote(Fail, kind="fatal")
        result["fatal"] = "no error"
    except FatalError as e:
        result["fatal"] = "FATAL: " + str(e)
    if split:
        out(result)
        result = {}
    yield proto._closed
    result["closed"] = True
    return result


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv):
    args = {"positional": []}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--listen", "--connect", "--script", "--cert", "--key", "--ca"):
            if i + 1 >= len(argv):
                raise SystemExit("amp_peer.py: %s needs a value" % a)
            args[a[2:]] = argv[i + 1]
            i += 2
        elif a == "--spawn":
            args["spawn"] = argv[i + 1:]
            break
        elif a.startswith("--"):
            raise SystemExit("amp_peer.py: unknown option %s (see the top of the file)" % a)
        else:
            args["positional"].append(a)
            i += 1
    if not any(k in args for k in ("listen", "connect", "spawn")):
        raise SystemExit("amp_peer.py: give --listen, --connect or --spawn (see the top of the file)")
    if "script" not in args and "listen" not in args:
        raise SystemExit("amp_peer.py: --connect and --spawn need --script NAME")
    if "script" in args and args["script"] not in SCRIPTS:
        raise SystemExit("amp_peer.py: unknown script %s; scripts: %s" % (args["script"], ", ".join(sorted(SCRIPTS))))
    if ("cert" in args) != ("key" in args):
        raise SystemExit("amp_peer.py: --cert and --key go together")
    return args


def watch_parent():
    """Exit when the process that started us is gone, so a crashed test run leaves no peers behind."""
    parent = os.getppid()

    def check():
        if os.getppid() != parent:
            os._exit(3)

    task.LoopingCall(check).start(0.5, now=False)


def script_arg(args):
    arg = args["positional"][0] if args["positional"] else None
    if args["script"] == "echoall" and arg is not None:
        text = sys.stdin.read() if arg == "-" else arg
        value = json.loads(text)
        cases = value if isinstance(value, list) else [value]
        return [from_json(c) for c in cases]
    return arg


def client_endpoint(where):
    kind, _, rest = where.partition(":")
    if kind == "unix":
        return endpoints.UNIXClientEndpoint(reactor, rest)
    if kind != "tcp":
        raise SystemExit("amp_peer.py: --connect takes tcp:HOST:PORT or unix:PATH, not %s" % where)
    host, _, port = rest.rpartition(":")
    return endpoints.TCP4ClientEndpoint(reactor, host, int(port))


def main():
    from twisted.python import log

    args = parse_args(sys.argv[1:])
    log.startLogging(sys.stderr, setStdout=False)
    for k in ("cert", "key", "ca"):
        if k in args:
            OPTIONS[k] = args[k]
    watch_parent()

    if "listen" in args:
        kind, _, where = args["listen"].partition(":")
        factory = protocol.Factory.forProtocol(Peer)
        if kind == "unix":
            reactor.listenUNIX(where, factory)
            print("listening unix " + where, flush=True)
        elif kind == "tcp":
            port = reactor.listenTCP(int(where), factory, interface="127.0.0.1")
            print("listening tcp 127.0.0.1 %d" % port.getHost().port, flush=True)
        else:
            raise SystemExit("amp_peer.py: --listen takes tcp:PORT or unix:PATH, not %s" % args["listen"])
        reactor.run()
        return

    # One "listening" line first, before reading stdin: a test writes stdin once the peer has started.
    print("listening client", flush=True)
    arg = script_arg(args)
    status = {"code": 0}

    def done(_):
        if reactor.running:
            reactor.stop()
        else:
            reactor.callWhenRunning(reactor.stop)

    def failed(f):
        out({"error": f.getErrorMessage(), "type": f.type.__name__})
        status["code"] = 1
        done(None)

    if "spawn" in args:
        class ChildProto(protocol.ProcessProtocol):
            def __init__(self):
                self.amp = ClientPeer()

            def connectionMade(self):
                self.amp.makeConnection(ChildTransport(self.transport))

                def reconnect():
                    raise RuntimeError("the stdio peer has one connection only")

                d = run_script(self.amp, args["script"], arg, reconnect)
                d.addCallbacks(lambda _: self.transport.closeStdin(), failed)

            def outReceived(self, data):
                self.amp.dataReceived(data)

            def processEnded(self, reason):
                done(None)

        cmd = args["spawn"]
        reactor.spawnProcess(ChildProto(), cmd[0], cmd, env=None)
        reactor.run()
        sys.exit(status["code"])

    ep = client_endpoint(args["connect"])

    def connect():
        return endpoints.connectProtocol(ep, ClientPeer())

    d = connect()
    d.addCallback(lambda p: run_script(p, args["script"], arg, connect))
    d.addCallbacks(done, failed)
    reactor.run()
    sys.exit(status["code"])


if __name__ == "__main__":
    main()
