"""Twisted's side of the hostile suite: the demo commands `effect-amp serve`
answers (Sum, Divide, Echo; no StartTLS responder), served by
twisted.protocols.amp, so that each hostile case can be run against Twisted
beside effect-amp. Run it with /usr/bin/python3.

  twisted_demo.py          prints "listening on tcp:127.0.0.1:PORT" (as `effect-amp serve`
                           does), serves until killed; Twisted's log goes to stderr
"""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols import amp
from twisted.python import log


class ZeroDivision(Exception):
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


class Demo(amp.AMP):
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


def main():
    log.startLogging(sys.stderr, setStdout=False)
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Demo), interface="127.0.0.1")
    print("listening on tcp:127.0.0.1:%d" % port.getHost().port, flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
