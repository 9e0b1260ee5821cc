"""A Twisted parent that drives a child over the child's stdin/stdout with amp.AMP.

Run it with /usr/bin/python3:
  stdio_parent.py CMD ARGS...

prints "listening parent" (so it starts like the other peers), spawns CMD, then
calls Sum(a=2, b=3) and Boom() on the child, waits for the child to exit, and
prints one JSON line:
  {"sum": 5 | "<exception type>: <message>",
   "boom": "UNKNOWN" | "answered" | "<exception type>: <message>",
   "lost": "<why the AMP connection ended>", "exit": CODE, "stderr": "<child's stderr>"}
Sum goes first: a stream corrupted from its start fails both.
"""
import json
import os
import sys

from twisted.internet import defer, protocol, reactor
from twisted.protocols import amp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amp_peer import ChildTransport  # noqa: E402  (one definition for both peers)


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Boom(amp.Command):
    arguments = []
    response = []


class Parent(amp.AMP):
    def __init__(self):
        amp.AMP.__init__(self)
        self.lost = defer.Deferred()

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if not self.lost.called:
            self.lost.callback("%s: %s" % (reason.type.__name__, reason.getErrorMessage()))


def describe(e):
    return "%s: %s" % (type(e).__name__, e)


class Child(protocol.ProcessProtocol):
    def __init__(self):
        self.amp = Parent()
        self.stderr = b""
        self.ended = defer.Deferred()

    def connectionMade(self):
        self.amp.makeConnection(ChildTransport(self.transport))

    def outReceived(self, data):
        self.amp.dataReceived(data)

    def errReceived(self, data):
        self.stderr += data

    def outConnectionLost(self):
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure
        self.amp.connectionLost(Failure(ConnectionDone("child closed its stdout")))

    def processEnded(self, reason):
        self.ended.callback(reason.value.exitCode)


@defer.inlineCallbacks
def run(child):
    result = {}
    try:
        r = yield child.amp.callRemote(Sum, a=2, b=3)
        result["sum"] = r["total"]
    except Exception as e:
        result["sum"] = describe(e)
    try:
        yield child.amp.callRemote(Boom)
        result["boom"] = "answered"
    except amp.UnknownRemoteError:
        result["boom"] = "UNKNOWN"
    except Exception as e:
        result["boom"] = describe(e)
    result["lost"] = yield child.amp.lost
    result["exit"] = yield child.ended
    result["stderr"] = child.stderr.decode("utf-8", "replace")
    print(json.dumps(result), flush=True)


def main():
    print("listening parent", flush=True)
    child = Child()
    reactor.spawnProcess(child, sys.argv[1], sys.argv[1:], env=None)

    def stop(_):
        reactor.stop()

    def failed(f):
        print(json.dumps({"error": f.getErrorMessage()}), flush=True)
        reactor.stop()

    run(child).addCallbacks(stop, failed)
    reactor.run()


if __name__ == "__main__":
    main()
