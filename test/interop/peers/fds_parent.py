"""A Twisted parent that starts a child with AMP on the child's fds 3 (it reads) and 4 (it
writes), as ampoule's ProcessPool does (childFDs {0: 'w', 1: 'r', 2: 2, 3: 'w', 4: 'r'}).
Run it with /usr/bin/python3: fds_parent.py CMD ARGS... It calls Sum(2, 3), then Quit, waits
for the child to end and prints one JSON line: {"total", "bye", "exit", "stdout"}."""
import json
import os
import sys

from twisted.internet import defer, protocol, reactor
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Quit(amp.Command):
    response = [(b"bye", amp.Unicode())]


class ToChild:
    """What the AMP protocol writes goes to the child's fd 3."""

    def __init__(self, process):
        self.process = process

    def write(self, data):
        self.process.transport.writeToChild(3, data)

    def writeSequence(self, seq):
        self.write(b"".join(seq))

    def loseConnection(self):
        self.process.transport.closeChildFD(3)

    def getPeer(self):
        return ("child",)

    def getHost(self):
        return ("parent",)


class AmpOverFds(protocol.ProcessProtocol):
    def __init__(self):
        self.amp = amp.AMP()
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self.stdout = b""

    def connectionMade(self):
        self.amp.makeConnection(ToChild(self))
        self.ready.callback(None)

    def childDataReceived(self, fd, data):
        if fd == 4:
            self.amp.dataReceived(data)
        elif fd == 1:
            self.stdout += data

    def processEnded(self, reason):
        self.amp.connectionLost(reason)
        self.ended.callback(reason.value.exitCode)


@defer.inlineCallbacks
def main():
    p = AmpOverFds()
    reactor.spawnProcess(p, sys.argv[1], sys.argv[1:], env=os.environ, childFDs={0: "w", 1: "r", 2: 2, 3: "w", 4: "r"})
    yield p.ready
    r = yield p.amp.callRemote(Sum, a=2, b=3)
    q = yield p.amp.callRemote(Quit)
    code = yield p.ended
    print(json.dumps({"total": r["total"], "bye": q["bye"], "exit": code, "stdout": p.stdout.decode()}), flush=True)


def run():
    d = main()
    d.addErrback(lambda f: print(json.dumps({"error": str(f.value)}), flush=True))
    d.addBoth(lambda _: reactor.stop())


reactor.callWhenRunning(run)
reactor.run()
