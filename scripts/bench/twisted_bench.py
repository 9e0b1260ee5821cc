"""Twisted's side of `npm run bench`: the same workloads with twisted.protocols.amp.

  twisted_bench.py codec N                      -> {"encode_small":..., "decode_small":..., "decode_64k_mbps":...}
  twisted_bench.py pipelined INFLIGHT CALLS     -> {"calls_per_s":...}  (client and server in one reactor)
  twisted_bench.py sequential CALLS             -> {"calls_per_s":..., "p50_us":..., "p99_us":...}
  twisted_bench.py serve                        -> prints "listening tcp 127.0.0.1 PORT", serves Sum
  twisted_bench.py client PORT INFLIGHT CALLS   -> {"calls_per_s":...}
"""
import json, sys, time
from twisted.internet import defer, protocol, reactor
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Server(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}


def codec(n):
    box = amp.AmpBox({b"_command": b"Sum", b"_ask": b"1f", b"a": b"13", b"b": b"81"})
    t = time.perf_counter()
    for _ in range(n):
        box.serialize()
    enc = n / (time.perf_counter() - t)
    data = box.serialize() * 1000

    class Count:
        count = 0

        def startReceivingBoxes(self, s):
            pass

        def ampBoxReceived(self, b):
            Count.count += 1

        def stopReceivingBoxes(self, r):
            pass

    p = amp.BinaryBoxProtocol(Count())
    p.makeConnection(type("T", (), {"write": lambda *a: None, "loseConnection": lambda *a: None})())
    rounds = max(1, n // 1000)
    t = time.perf_counter()
    for _ in range(rounds):
        p.dataReceived(data)
    dec = Count.count / (time.perf_counter() - t)
    big = amp.AmpBox({b"v": b"x" * 65535}).serialize()
    Count.count = 0
    t = time.perf_counter()
    for _ in range(2000):
        p.dataReceived(big)
    mbps = len(big) * 2000 / (time.perf_counter() - t) / 1e6
    return {"encode_small": enc, "decode_small": dec, "decode_64k_mbps": mbps}


@defer.inlineCallbacks
def drive(proto, inflight, calls, sequential=False):
    lat = []
    state = {"next": 0}

    @defer.inlineCallbacks
    def worker():
        while state["next"] < calls:
            state["next"] += 1
            t0 = time.perf_counter()
            yield proto.callRemote(Sum, a=13, b=81)
            if sequential:
                lat.append(time.perf_counter() - t0)

    t = time.perf_counter()
    yield defer.gatherResults([worker() for _ in range(inflight)])
    el = time.perf_counter() - t
    out = {"calls_per_s": calls / el}
    if sequential:
        lat.sort()
        out["p50_us"] = lat[len(lat) // 2] * 1e6
        out["p99_us"] = lat[int(len(lat) * 0.99)] * 1e6
    return out


def in_process(inflight, calls, sequential=False):
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Server), interface="127.0.0.1")
    result = {}

    @defer.inlineCallbacks
    def go():
        from twisted.internet import endpoints

        ep = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        p = yield endpoints.connectProtocol(ep, amp.AMP())
        yield drive(p, inflight, max(1000, calls // 10), sequential)  # warm-up
        r = yield drive(p, inflight, calls, sequential)
        result.update(r)
        reactor.stop()

    reactor.callWhenRunning(go)
    reactor.run()
    return result


def main():
    mode = sys.argv[1]
    if mode == "codec":
        print(json.dumps(codec(int(sys.argv[2]))))
    elif mode == "pipelined":
        print(json.dumps(in_process(int(sys.argv[2]), int(sys.argv[3]))))
    elif mode == "sequential":
        print(json.dumps(in_process(1, int(sys.argv[2]), True)))
    elif mode == "serve":
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Server), interface="127.0.0.1")
        print("listening tcp 127.0.0.1 %d" % port.getHost().port, flush=True)
        reactor.run()
    elif mode == "client":
        from twisted.internet import endpoints

        result = {}

        @defer.inlineCallbacks
        def go():
            ep = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", int(sys.argv[2]))
            p = yield endpoints.connectProtocol(ep, amp.AMP())
            calls = int(sys.argv[4])
            yield drive(p, int(sys.argv[3]), max(1000, calls // 10))
            result.update((yield drive(p, int(sys.argv[3]), calls)))
            reactor.stop()

        reactor.callWhenRunning(go)
        reactor.run()
        print(json.dumps(result))


main()
