"""Twisted's side of the hostile suite: the demo commands `effect-amp serve`
answers (Sum, Divide, Echo; no StartTLS responder), served by
twisted.protocols.amp, so that each hostile case can be run against Twisted
beside effect-amp. Run it with /usr/bin/python3.

  twisted_demo.py [PORT]   prints "listening on tcp:127.0.0.1:PORT" (as `effect-amp serve`
                           does), serves until killed; Twisted's log goes to stderr.
                           PORT defaults to one the system picks (a restarted server passes its old one)
"""
import os
import sys

from twisted.internet import protocol, reactor
from twisted.protocols import amp
from twisted.python import log

# The demo commands, as the interop peer defines them (one definition for both).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "peers"))
from amp_peer import Divide, Echo, Sum, ZeroDivision  # noqa: E402


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
    wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    port = reactor.listenTCP(wanted, protocol.Factory.forProtocol(Demo), interface="127.0.0.1")
    print("listening on tcp:127.0.0.1:%d" % port.getHost().port, flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
