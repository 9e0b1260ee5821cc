"""A Twisted AMP worker on fds 3 (read) and 4 (write), as ampoule starts its children.
Run it with /usr/bin/python3. Commands: Sum, Quit (a QuitBox), Crash (exits 3 mid-call),
Hang (never answers), CallBack (calls the parent's Sum(n, 1) and answers its total).
It exits 0 once the parent closes its end of fd 3."""
import os

from twisted.internet import defer, reactor, stdio
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Quit(amp.Command):
    response = [(b"bye", amp.Unicode())]
    responseType = amp.QuitBox


class Crash(amp.Command):
    pass


class Hang(amp.Command):
    pass


class CallBack(amp.Command):
    arguments = [(b"n", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Worker(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Quit.responder
    def quit(self):
        return {"bye": "so long"}

    @Crash.responder
    def crash(self):
        os._exit(3)

    @Hang.responder
    def hang(self):
        return defer.Deferred()

    @CallBack.responder
    def call_back(self, n):
        return self.callRemote(Sum, a=n, b=1)

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if reactor.running:
            reactor.stop()


stdio.StandardIO(Worker(), stdin=3, stdout=4)
reactor.run()
