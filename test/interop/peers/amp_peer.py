"""A Twisted AMP peer for effect-amp's interop suite.

Server:  amp_peer.py --listen tcp:0 | --listen unix:PATH  [--cert PEM --key PEM [--ca PEM]]
         prints "listening tcp 127.0.0.1 PORT" or "listening unix PATH", then serves.
Client:  amp_peer.py --connect tcp:HOST:PORT | --connect unix:PATH --script NAME [ARG]
         [--cert PEM --key PEM] [--ca PEM]
         prints "listening client" first, then one JSON line per result, then exits.
Stdio:   amp_peer.py --spawn CMD...  drives a child process over its stdin/stdout
         (as Twisted process pools do), runs the "sum" and "echoall" scripts.

Scripts: sum, echoall, errors, notify, pipeline N, callback, starttls, switch,
switch-refused, disconnect, lose-while-waiting.

Every command is defined here with Twisted's own amp.Command; the TypeScript
side defines the same ones with effect-amp (test/interop/commands.ts).
"""
import datetime
import decimal
import json
import sys

from twisted.internet import defer, endpoints, protocol, reactor, ssl
from twisted.internet.error import ConnectionDone
from twisted.protocols import amp
from twisted.python import filepath


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


class EchoProtocol(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.ClientFactory):
    protocol = EchoProtocol


class Collector(protocol.Protocol):
    """The client's side of a switch: collects what the echo sends back."""

    def __init__(self):
        self.received = b""
        self.waiting = None
        self.want = 0

    def dataReceived(self, data):
        self.received += data
        if self.waiting is not None and len(self.received) >= self.want:
            d, self.waiting = self.waiting, None
            d.callback(self.received)

    def wait(self, n):
        self.want = n
        if len(self.received) >= n:
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
    if "cert" not in OPTIONS:
        return {}
    pem = open(OPTIONS["cert"], "rb").read() + open(OPTIONS["key"], "rb").read()
    out = {"tls_localCertificate": ssl.PrivateCertificate.loadPEM(pem)}
    if "ca" in OPTIONS:
        out["tls_verifyAuthorities"] = [ssl.Certificate.loadPEM(open(OPTIONS["ca"], "rb").read())]
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
        raise RuntimeError("unmapped failure")

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

    @Disconnect.responder
    def disconnect(self):
        self.transport.loseConnection()
        return defer.Deferred()


def out(obj):
    print(json.dumps(obj), flush=True)


def encode_value(v):
    """A JSON form of what came back, for comparisons on the TypeScript side."""
    if isinstance(v, bytes):
        import base64

        return {"bytes": base64.b64encode(v).decode()}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, decimal.Decimal):
        return {"decimal": str(v)}
    if isinstance(v, datetime.datetime):
        return {"datetime": amp.DateTime().toString(v).decode()}
    if isinstance(v, filepath.FilePath):
        return {"path": v.path if isinstance(v.path, str) else v.path.decode()}
    if isinstance(v, list):
        return [encode_value(x) for x in v]
    if isinstance(v, dict):
        return {(k.decode() if isinstance(k, bytes) else k): encode_value(x) for k, x in v.items()}
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return {"int": str(v)}
    return repr(v)


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
    return a == b


@defer.inlineCallbacks
def run_script(proto, name, arg):
    if name == "sum":
        r = yield proto.callRemote(Sum, a=13, b=81)
        out({"total": r["total"]})
    elif name == "echoall":
        for case in EDGE_CASES:
            r = yield proto.callRemote(EchoAll, **case)
            mismatches = [k for k in case if not same(case[k], r.get(k))]
            extra = [k for k in r if k not in case and r[k] is not None]
            out({"ok": not mismatches and not extra, "mismatches": mismatches + extra,
                 "got": encode_value({k: r.get(k) for k in mismatches})})
    elif name == "errors":
        results = {}
        try:
            yield proto.callRemote(Divide, numerator=1, denominator=0)
        except ZeroDivision as e:
            results["divide"] = "ZERO_DIVISION: " + str(e)
        try:
            yield proto.callRemote(Fail, kind="mapped")
        except MappedError as e:
            results["mapped"] = "MAPPED: " + str(e)
        try:
            yield proto.callRemoteString(b"NoSuchCommand", x=b"1")
        except amp.UnhandledCommand as e:
            results["unhandled"] = "UNHANDLED"
        except amp.RemoteAmpError as e:
            results["unhandled"] = e.errorCode.decode()
        try:
            yield proto.callRemote(Fail, kind="unknown")
        except amp.UnknownRemoteError as e:
            results["unknown"] = "UNKNOWN"
        except ConnectionDone:
            results["unknown"] = "closed"
        out(results)
    elif name == "fatal":
        try:
            yield proto.callRemote(Fail, kind="fatal")
        except FatalError as e:
            out({"fatal": "FATAL: " + str(e)})
        yield proto._closed
        out({"closed": True})
    elif name == "notify":
        for i in range(5):
            proto.callRemote(Notify, text="note %d" % i)
        r = yield proto.callRemote(Echo, text="after notes")
        out({"echo": r["text"]})
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
        tls = load_tls()
        yield proto.callRemote(amp.StartTLS, **tls)
        queued = proto.callRemote(Sum, a=2, b=3)
        r = yield queued
        s = yield proto.callRemote(Secure)
        out({"total": r["total"], "tls": s["tls"], "peer": s["peer"]})
    elif name == "switch":
        f = CollectorFactory()
        yield proto.callRemote(SwitchToEcho, f)
        f.proto.transport.write(b"raw bytes after the switch")
        got = yield f.proto.wait(len(b"HELLO;raw bytes after the switch"))
        out({"received": got.decode()})
    elif name == "switch-refused":
        f = CollectorFactory()
        try:
            yield proto.callRemote(SwitchRefused, f)
        except Refused as e:
            out({"refused": str(e)})
        r = yield proto.callRemote(Sum, a=1, b=1)
        out({"total": r["total"]})
    elif name == "lose-while-waiting":
        ds = [proto.callRemote(Delay, ms=60000, id=i) for i in range(10)]
        proto.callRemote(Disconnect).addErrback(lambda f: None)
        failures = []
        for d in ds:
            try:
                yield d
            except Exception as e:
                failures.append(type(e).__name__)
        out({"failures": failures})
    else:
        raise SystemExit("unknown script " + name)


class ClientPeer(Peer):
    def connectionMade(self):
        amp.AMP.connectionMade(self)
        self._closed = defer.Deferred()

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if not self._closed.called:
            self._closed.callback(None)


def parse_args(argv):
    args = {"positional": []}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--listen", "--connect", "--script", "--cert", "--key", "--ca"):
            args[a[2:]] = argv[i + 1]
            i += 2
        elif a == "--spawn":
            args["spawn"] = argv[i + 1:]
            break
        else:
            args["positional"].append(a)
            i += 1
    return args


def main():
    from twisted.python import log

    log.startLogging(sys.stderr, setStdout=False)
    args = parse_args(sys.argv[1:])
    for k in ("cert", "key", "ca"):
        if k in args:
            OPTIONS[k] = args[k]
    if "listen" in args:
        kind, _, where = args["listen"].partition(":")
        factory = protocol.Factory.forProtocol(Peer)
        if kind == "unix":
            port = reactor.listenUNIX(where, factory)
            print("listening unix " + where, flush=True)
        else:
            port = reactor.listenTCP(int(where), factory, interface="127.0.0.1")
            print("listening tcp 127.0.0.1 %d" % port.getHost().port, flush=True)
        reactor.run()
        return
    arg = args["positional"][0] if args["positional"] else None

    def done(result):
        reactor.stop()

    def failed(f):
        out({"error": f.getErrorMessage(), "type": f.type.__name__})
        reactor.stop()

    if "spawn" in args:
        from twisted.internet import stdio  # noqa: F401  (pools use spawnProcess, as here)

        class ChildProto(protocol.ProcessProtocol):
            def __init__(self):
                self.amp = ClientPeer()

            def connectionMade(self):
                class T:
                    def __init__(s, pt):
                        s.pt = pt

                    def write(s, data):
                        s.pt.write(data)

                    def writeSequence(s, seq):
                        s.pt.write(b"".join(seq))

                    def loseConnection(s):
                        s.pt.closeStdin()

                    def getPeer(s):
                        return None

                    def getHost(s):
                        return None

                self.amp.makeConnection(T(self.transport))
                d = run_script(self.amp, args["script"], arg)
                d.addCallbacks(lambda _: self.transport.closeStdin(), failed)

            def outReceived(self, data):
                self.amp.dataReceived(data)

            def processEnded(self, reason):
                reactor.stop()

        print("listening client", flush=True)
        cmd = args["spawn"]
        reactor.spawnProcess(ChildProto(), cmd[0], cmd, env=None)
        reactor.run()
        return
    kind, _, where = args["connect"].partition(":")
    if kind == "unix":
        ep = endpoints.UNIXClientEndpoint(reactor, where)
    else:
        host, _, port = where.rpartition(":")
        ep = endpoints.TCP4ClientEndpoint(reactor, host, int(port))
    print("listening client", flush=True)
    d = endpoints.connectProtocol(ep, ClientPeer())
    d.addCallback(lambda p: run_script(p, args["script"], arg))
    d.addCallbacks(done, failed)
    reactor.run()


if __name__ == "__main__":
    main()
