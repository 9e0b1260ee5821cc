"""The Twisted worker of the pool benchmark (pool.ts): AMP on fds 3 (read) and 4 (write),
as ampoule starts its children. Run with /usr/bin/python3.

  Sum(a: Integer, b: Integer) -> total: Integer
  Burn(n: Integer) -> result: Integer     n rounds of a 32-bit LCG step and an xorshift,
                                          the same steps as poolCommands.ts's burn

It exits once the parent closes its end of fd 3. `pool_worker.py --burn N` prints burn(N)
and the milliseconds one call takes, for sizing."""
import sys
import time

from twisted.protocols import amp


def burn(n):
    x = n & 0xFFFFFFFF
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        x ^= x >> 13
    return x


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Burn(amp.Command):
    arguments = [(b"n", amp.Integer())]
    response = [(b"result", amp.Integer())]


class Worker(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Burn.responder
    def burn(self, n):
        return {"result": burn(n)}

    def connectionLost(self, reason):
        from twisted.internet import reactor

        amp.AMP.connectionLost(self, reason)
        if reactor.running:
            reactor.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--burn"]:
        n = int(sys.argv[2])
        t0, k = time.perf_counter(), 0
        while time.perf_counter() - t0 < 1:
            burn(n)
            k += 1
        print(burn(n), f"{(time.perf_counter() - t0) / k * 1000:.2f} ms")
        sys.exit(0)
    from twisted.internet import reactor, stdio

    stdio.StandardIO(Worker(), stdin=3, stdout=4)
    reactor.run()
