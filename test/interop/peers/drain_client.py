"""A Twisted AMP client for effect-amp's drain test. Run it with /usr/bin/python3.

  drain_client.py PORT N MS

Connects to 127.0.0.1:PORT, prints "listening client", sends N calls of
Slow(ms=MS) at once and prints {"sent": N}. Once every call has an outcome and
the connection has closed, prints one JSON line and exits 0:
  {"answers": <calls answered with ms == MS>,
   "errors": {<exception type>: <count>},
   "descriptions": [<distinct error descriptions>],
   "closed": <the type of the connectionLost reason>}
"""
import json
import sys

from twisted.internet import defer, protocol, reactor
from twisted.protocols import amp


class Slow(amp.Command):
    arguments = [(b"ms", amp.Integer())]
    response = [(b"ms", amp.Integer())]


class Client(amp.AMP):
    def __init__(self):
        amp.AMP.__init__(self)
        self.closed = defer.Deferred()

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if not self.closed.called:
            self.closed.callback(reason.type.__name__)


@defer.inlineCallbacks
def run(port, n, ms):
    client = yield protocol.ClientCreator(reactor, Client).connectTCP("127.0.0.1", port)
    calls = [client.callRemote(Slow, ms=ms) for _ in range(n)]
    print(json.dumps({"sent": n}), flush=True)
    outcomes = yield defer.DeferredList(calls, consumeErrors=True)
    answers = 0
    errors = {}
    descriptions = set()
    for ok, value in outcomes:
        if ok:
            answers += 1 if value.get("ms") == ms else 0
        else:
            name = value.type.__name__
            errors[name] = errors.get(name, 0) + 1
            descriptions.add(str(value.value))
    closed = yield client.closed
    print(json.dumps({"answers": answers, "errors": errors, "descriptions": sorted(descriptions), "closed": closed}), flush=True)


def main():
    port, n, ms = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    print("listening client", flush=True)

    def done(result):
        reactor.stop()
        return result

    def failed(failure):
        print(json.dumps({"error": failure.getErrorMessage()}), flush=True)
        reactor.stop()

    reactor.callWhenRunning(lambda: run(port, n, ms).addCallbacks(done, failed))
    reactor.run()


if __name__ == "__main__":
    main()
