"""A Twisted client calling Divide on a list of operands. Run it with /usr/bin/python3:

  divide_client.py tcp:HOST:PORT < operands.json

operands.json is a JSON list of [numerator, denominator], each a decimal string.
Prints "listening client" (so it starts like the other peers), then one JSON line:
a list with, per pair, one of
  {"result": repr(float)}
  {"error": "ZERO_DIVISION", "description": "..."}
  {"error": "UNKNOWN", "closed": true | false}   (whether the server then closed, within 10 s)
  {"error": "<exception type>", "description": "..."}
A closed connection is opened again for the next pair.
"""
import json
import sys

from twisted.internet import defer, endpoints, reactor
from twisted.protocols import amp


class ZeroDivision(Exception):
    pass


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivision: b"ZERO_DIVISION"}


class Client(amp.AMP):
    def connectionMade(self):
        amp.AMP.connectionMade(self)
        self.lost = defer.Deferred()

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if not self.lost.called:
            self.lost.callback(True)


def within(d, seconds):
    """d's result, or False after `seconds`."""
    out = defer.Deferred()
    timer = reactor.callLater(seconds, lambda: out.called or out.callback(False))

    def fire(v):
        if timer.active():
            timer.cancel()
        if not out.called:
            out.callback(v)

    d.addBoth(fire)
    return out


@defer.inlineCallbacks
def run(where, pairs):
    kind, _, rest = where.partition(":")
    host, _, port = rest.rpartition(":")
    assert kind == "tcp", where
    ep = endpoints.TCP4ClientEndpoint(reactor, host, int(port))
    proto = None
    results = []
    for n, d in pairs:
        if proto is None or proto.lost.called:
            proto = yield endpoints.connectProtocol(ep, Client())
        try:
            r = yield proto.callRemote(Divide, numerator=int(n), denominator=int(d))
            results.append({"result": repr(r["result"])})
        except ZeroDivision as e:
            results.append({"error": "ZERO_DIVISION", "description": str(e)})
        except amp.UnknownRemoteError:
            closed = yield within(proto.lost, 10)
            results.append({"error": "UNKNOWN", "closed": closed})
        except Exception as e:
            results.append({"error": type(e).__name__, "description": str(e)})
    if proto is not None and not proto.lost.called:
        proto.transport.loseConnection()
    print(json.dumps(results), flush=True)


def main():
    print("listening client", flush=True)
    pairs = json.loads(sys.stdin.read())
    status = {"code": 0}

    def failed(f):
        print(json.dumps({"failed": f.getErrorMessage(), "type": f.type.__name__}), flush=True)
        status["code"] = 1

    run(sys.argv[1], pairs).addErrback(failed).addBoth(lambda _: reactor.stop())
    reactor.run()
    sys.exit(status["code"])


if __name__ == "__main__":
    main()
