"""Twisted's side of the benchmark: the same workloads with twisted.protocols.amp.

Run with /usr/bin/python3 (the Python that has Twisted). Every mode prints one
line of JSON on stdout; rates are lists, one figure per timed run (after a
warm-up), and the harness takes the median.

  --codec [--parse-string]                  encode/decode (BinaryBoxProtocol.dataReceived, 64 KiB
                                            reads; and amp.parseString) of the small Sum box
                                            (boxes/s) and of a box with one 65535-byte value (MB/s)
  --pipelined --inflight N                  Sum calls, client and server in one reactor (calls/s)
  --sequential                              one call in flight: calls/s, p50/p99 latency (us)
  --serve                                   serves Sum; prints "listening tcp 127.0.0.1 PORT"
  --serve --echo                            serves Echo(text: Unicode) and Sum; on SIGUSR2, a full
                                            gc.collect(), then {"rss_mb"}
  --serve --slow COUNT [--slow-warm N]      serves Slow (requiresAnswer=False), one box at a time,
                                            1 ms each; prints {"warm_rss_mb"} after N boxes (32),
                                            {"handled", "peak_rss_mb"} after COUNT, and exits
  --client HOST PORT --inflight N           Sum calls against a server (calls/s)
  --memory --calls M                        RSS after a warm-up and after M calls (one reactor)
  --large echo|big --inflight N             Echo of a 60 KB text, or BigEcho of 1 MiB, client and
                                            server in one reactor (calls/s)
  --serve --big                             serves Echo, BigEcho and BigCheck
  --check HOST PORT                         BigCheck round trips of 0 B to 1 MiB against a server:
                                            the digest it computed and the bytes it echoed must
                                            match what was sent (exit 1 otherwise)

Timing: --seconds T per run (or --calls M per run), --runs R, --warmup W seconds.
"""
import argparse
import gc
import hashlib
import json
import os
import resource
import sys
import time

from twisted.internet import defer, endpoints, protocol, reactor, task
from twisted.protocols import amp

perf = time.perf_counter


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Slow(amp.Command):
    arguments = [(b"blob", amp.String())]
    requiresAnswer = False


class Echo(amp.Command):
    arguments = [(b"text", amp.Unicode())]
    response = [(b"text", amp.Unicode())]


class BigString(amp.Argument):
    """Bytes of any length, split across `name`, `name.2`, `name.3`... in pieces of at most
    65535 bytes: effect-amp's Argument.BigString. Twisted has no such type, so its fromBox and
    toBox (one key each) are overridden to read and write every piece."""

    def fromBox(self, name, strings, objects, proto):
        parts = [strings.pop(name)]
        i = 2
        while True:
            piece = strings.pop(b"%s.%d" % (name, i), None)
            if piece is None:
                break
            parts.append(piece)
            i += 1
        objects[amp._wireNameToPythonIdentifier(name)] = b"".join(parts)

    def toBox(self, name, strings, objects, proto):
        value = objects.pop(amp._wireNameToPythonIdentifier(name))
        step = amp.MAX_VALUE_LENGTH
        strings[name] = value[:step]
        for i, at in enumerate(range(step, len(value), step), 2):
            strings[b"%s.%d" % (name, i)] = value[at : at + step]


class BigEcho(amp.Command):
    arguments = [(b"data", BigString())]
    response = [(b"data", BigString())]


class BigCheck(amp.Command):
    """BigEcho that also answers the SHA-256 of what the server received: the client checks
    each direction on its own (the digest: client to server; the echo: server to client)."""

    arguments = [(b"data", BigString())]
    response = [(b"data", BigString()), (b"digest", amp.Unicode())]


# The large workload's payloads (the same sizes as measure.ts's).
ECHO_TEXT = "x" * 60_000
BIG_DATA = b"x" * 1_048_576
# Sizes for --check: empty, one piece, full piece, two pieces, three, and 1 MiB.
CHECK_SIZES = [0, 1, 65535, 65536, 2 * 65535 + 1, 1_048_576]


class SumServer(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------
# codec
# ---------------------------------------------------------------------------


def rate(op, seconds):
    """Runs op (which returns units done) for about `seconds`; units per second."""
    units = 0
    t0 = perf()
    end = t0 + seconds
    while True:
        units += op()
        now = perf()
        if now >= end:
            return units / (now - t0)


def series(op, opts):
    rate(op, opts.warmup)
    out = []
    for _ in range(opts.runs):
        gc.collect()  # as the Node side does before each run
        out.append(rate(op, opts.seconds))
    return out


def chunked(data, size=65536):
    return [data[i : i + size] for i in range(0, len(data), size)]


class _Count:
    count = 0

    def startReceivingBoxes(self, sender):
        pass

    def ampBoxReceived(self, box):
        self.count += 1

    def stopReceivingBoxes(self, reason):
        pass


class _NullTransport:
    def write(self, data):
        pass

    def loseConnection(self):
        pass


def box_parser():
    """A BinaryBoxProtocol counting boxes, as on a connection."""
    counter = _Count()
    p = amp.BinaryBoxProtocol(counter)
    p.makeConnection(_NullTransport())
    return p, counter


def codec(opts):
    small = amp.AmpBox({b"_command": b"Sum", b"_ask": b"1f", b"a": b"13", b"b": b"81"})
    big = amp.AmpBox({b"v": b"x" * 65535})

    def enc_small():
        for _ in range(1000):
            small.serialize()
        return 1000

    def enc_big():
        return len(big.serialize())

    # Decode input: a stream of boxes arriving in 64 KiB reads, as from a socket.
    small_stream = b"".join(
        amp.AmpBox({b"_command": b"Sum", b"_ask": b"%x" % i, b"a": b"13", b"b": b"81"}).serialize()
        for i in range(1, 4097)
    )
    big_stream = big.serialize() * 32
    small_chunks, big_chunks = chunked(small_stream), chunked(big_stream)

    def decoder(chunks, result):
        p, counter = box_parser()

        def op():
            before = counter.count
            for c in chunks:
                p.dataReceived(c)
            return result(counter.count - before)

        return op

    def parse_string():
        return len(amp.parseString(small_stream))

    extra = {"decode_small_parseString": series(parse_string, opts)} if opts.parse_string else {}
    return {
        **extra,
        "encode_small": series(enc_small, opts),
        "decode_small": series(decoder(small_chunks, lambda n: n), opts),
        "encode_64k_mbps": [r / 1e6 for r in series(enc_big, opts)],
        "decode_64k_mbps": [r / 1e6 for r in series(decoder(big_chunks, lambda n: n * len(big_stream) / 32), opts)],
    }


# ---------------------------------------------------------------------------
# calls
# ---------------------------------------------------------------------------


def sum_call(proto):
    d = proto.callRemote(Sum, a=13, b=81)

    def check(r):
        if r["total"] != 94:
            raise ValueError("Sum answered %r" % (r,))

    return d.addCallback(check)


def echo_call(proto):
    # The answer's length only: the content is checked by --check, not in timed loops (as on the Node side).
    d = proto.callRemote(Echo, text=ECHO_TEXT)

    def check(r):
        if len(r["text"]) != len(ECHO_TEXT):
            raise ValueError("Echo answered %d characters" % len(r["text"]))

    return d.addCallback(check)


def big_call(proto):
    d = proto.callRemote(BigEcho, data=BIG_DATA)

    def check(r):
        if len(r["data"]) != len(BIG_DATA):
            raise ValueError("BigEcho answered %d bytes" % len(r["data"]))

    return d.addCallback(check)


@defer.inlineCallbacks
def drive(proto, inflight, until=None, calls=None, latencies=None, call=sum_call):
    """`inflight` workers making `call`s until the deadline or the call count; returns calls completed."""
    state = {"started": 0, "done": 0}

    def more():
        if until is not None and perf() >= until:
            return False
        if calls is not None:
            if state["started"] >= calls:
                return False
            state["started"] += 1
        return True

    @defer.inlineCallbacks
    def worker():
        while more():
            t0 = perf()
            yield call(proto)
            if latencies is not None:
                latencies.append(perf() - t0)
            state["done"] += 1

    yield defer.gatherResults([worker() for _ in range(inflight)], consumeErrors=True)
    return state["done"]


@defer.inlineCallbacks
def timed_runs(proto, opts, sequential=False, call=sum_call):
    """Warm-up, then `runs` timed runs: calls/s (and latency percentiles when sequential)."""
    yield drive(proto, opts.inflight, until=perf() + opts.warmup, call=call)
    out = {"calls_per_s": []}
    if sequential:
        out["p50_us"], out["p99_us"] = [], []
    for _ in range(opts.runs):
        gc.collect()
        lat = [] if sequential else None
        t0 = perf()
        if opts.calls:
            n = yield drive(proto, opts.inflight, calls=opts.calls, latencies=lat, call=call)
        else:
            n = yield drive(proto, opts.inflight, until=t0 + opts.seconds, latencies=lat, call=call)
        out["calls_per_s"].append(n / (perf() - t0))
        if sequential:
            lat.sort()
            out["p50_us"].append(lat[len(lat) // 2] * 1e6)
            out["p99_us"].append(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6)
    return out


def run_reactor(body):
    """Runs the reactor until `body()` (a Deferred) fires; returns its result or exits on failure."""
    box = {}

    def go():
        d = defer.maybeDeferred(body)

        def ok(r):
            box["result"] = r

        def bad(f):
            box["failure"] = f

        d.addCallbacks(ok, bad).addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()
    if "failure" in box:
        box["failure"].printTraceback(file=sys.stderr)
        sys.exit(1)
    return box.get("result")


def connect(host, port, proto=amp.AMP):
    return endpoints.connectProtocol(endpoints.TCP4ClientEndpoint(reactor, host, port), proto())


def listen_sum():
    return reactor.listenTCP(0, protocol.Factory.forProtocol(SumServer), interface="127.0.0.1")


def in_process(opts, sequential=False):
    @defer.inlineCallbacks
    def body():
        port = listen_sum()
        proto = yield connect("127.0.0.1", port.getHost().port)
        result = yield timed_runs(proto, opts, sequential)
        proto.transport.loseConnection()
        yield port.stopListening()
        return result

    return run_reactor(body)


def large(opts):
    """Echo or BigEcho calls, client and server in one reactor."""
    call = echo_call if opts.large == "echo" else big_call

    @defer.inlineCallbacks
    def body():
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(LargeServer), interface="127.0.0.1")
        proto = yield connect("127.0.0.1", port.getHost().port, NoDelayAMP)
        result = yield timed_runs(proto, opts, call=call)
        proto.transport.loseConnection()
        yield port.stopListening()
        return result

    return run_reactor(body)


def check(opts):
    """BigCheck round trips of every CHECK_SIZES size (random bytes); exits 1 on the first mismatch."""

    @defer.inlineCallbacks
    def body():
        proto = yield connect(opts.check[0], int(opts.check[1]), NoDelayAMP)
        for size in CHECK_SIZES:
            data = os.urandom(size)
            r = yield proto.callRemote(BigCheck, data=data)
            if r["digest"] != hashlib.sha256(data).hexdigest():
                raise ValueError("BigCheck of %d bytes: the server received other bytes (digest %s)" % (size, r["digest"]))
            if r["data"] != data:
                raise ValueError("BigCheck of %d bytes: %d other bytes came back" % (size, len(r["data"])))
        proto.transport.loseConnection()
        return {"checked": CHECK_SIZES}

    return run_reactor(body)


def client(opts):
    @defer.inlineCallbacks
    def body():
        proto = yield connect(opts.client[0], int(opts.client[1]))
        result = yield timed_runs(proto, opts)
        proto.transport.loseConnection()
        return result

    return run_reactor(body)


def memory(opts):
    @defer.inlineCallbacks
    def body():
        port = listen_sum()
        proto = yield connect("127.0.0.1", port.getHost().port)
        yield drive(proto, 100, calls=opts.warmup_calls)
        gc.collect()
        warm = rss_mb()
        yield drive(proto, 100, calls=opts.calls)
        gc.collect()
        return {"calls": opts.calls, "rss_warm_mb": warm, "rss_after_mb": rss_mb()}

    return run_reactor(body)


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------


class EchoServer(SumServer):
    @Echo.responder
    def echo(self, text):
        return {"text": text}


class NoDelay:
    """TCP_NODELAY, as effect-amp and the raw baseline set it: without it a sequential 1 MiB
    round trip waits out the peer's delayed ACK (Nagle), about 40 ms, whatever AMP does."""

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
        super().connectionMade()


class NoDelayAMP(NoDelay, amp.AMP):
    pass


class LargeServer(NoDelay, EchoServer):
    @BigEcho.responder
    def big_echo(self, data):
        return {"data": data}

    @BigCheck.responder
    def big_check(self, data):
        return {"data": data, "digest": hashlib.sha256(data).hexdigest()}


def serve(opts):
    if opts.big:
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(LargeServer), interface="127.0.0.1")
        print("listening tcp 127.0.0.1 %d" % port.getHost().port, flush=True)
        reactor.run()
        return None
    if opts.echo:
        import signal

        def report(*_):
            gc.collect()
            print(json.dumps({"rss_mb": rss_mb()}), flush=True)

        signal.signal(signal.SIGUSR2, lambda *_: reactor.callFromThread(report))
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(EchoServer), interface="127.0.0.1")
        print("listening tcp 127.0.0.1 %d" % port.getHost().port, flush=True)
        reactor.run()
        return None
    if opts.slow is None:
        port = listen_sum()
        print("listening tcp 127.0.0.1 %d" % port.getHost().port, flush=True)
        reactor.run()
        return None
    target = opts.slow
    state = {"handled": 0, "sink": 0}

    class SlowServer(amp.AMP):
        def __init__(self):
            amp.AMP.__init__(self)
            self.lock = defer.DeferredLock()

        def handle(self, blob):
            state["sink"] += len(blob)
            state["handled"] += 1
            if state["handled"] == opts.slow_warm:
                print(json.dumps({"warm_rss_mb": rss_mb()}), flush=True)
            if state["handled"] == target:
                reactor.callLater(0, reactor.stop)
            return {}

        @Slow.responder
        def slow(self, blob):
            # One box at a time, 1 ms each, using its blob: AMP reads on, so boxes wait in memory.
            return self.lock.run(task.deferLater, reactor, 0.001, self.handle, blob)

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(SlowServer), interface="127.0.0.1")
    print("listening tcp 127.0.0.1 %d" % port.getHost().port, flush=True)
    reactor.run()
    return {"handled": state["handled"], "peak_rss_mb": peak_rss_mb()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--codec", action="store_true")
    mode.add_argument("--pipelined", action="store_true")
    mode.add_argument("--sequential", action="store_true")
    mode.add_argument("--serve", action="store_true")
    mode.add_argument("--client", nargs=2, metavar=("HOST", "PORT"))
    mode.add_argument("--memory", action="store_true")
    mode.add_argument("--large", choices=["echo", "big"])
    mode.add_argument("--check", nargs=2, metavar=("HOST", "PORT"))
    ap.add_argument("--inflight", type=int, default=100)
    ap.add_argument("--calls", type=int, default=0, help="calls per run (instead of --seconds); with --memory, the total")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of a timed run")
    ap.add_argument("--runs", type=int, help="timed runs (default 5; 1 with --calls)")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds")
    ap.add_argument("--warmup-calls", type=int, default=50000, help="--memory: calls before the first measurement")
    ap.add_argument("--parse-string", action="store_true", help="--codec: also time amp.parseString on the small-box stream")
    ap.add_argument("--slow", type=int, metavar="COUNT", help="--serve: the slow Slow responder, stop after COUNT boxes")
    ap.add_argument("--echo", action="store_true", help="--serve: the Echo (and Sum) server")
    ap.add_argument("--big", action="store_true", help="--serve: the Echo, BigEcho and BigCheck server")
    ap.add_argument("--slow-warm", type=int, default=32, metavar="N", help="--slow: report RSS after N boxes")
    opts = ap.parse_args()
    if opts.runs is None:
        opts.runs = 1 if opts.calls else 5

    if opts.codec:
        result = codec(opts)
    elif opts.pipelined:
        result = in_process(opts)
    elif opts.sequential:
        opts.inflight = 1
        result = in_process(opts, sequential=True)
    elif opts.serve:
        result = serve(opts)
    elif opts.client:
        result = client(opts)
    elif opts.large:
        result = large(opts)
    elif opts.check:
        result = check(opts)
    else:
        result = memory(opts)
    if result is not None:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
