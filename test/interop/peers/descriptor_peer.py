"""
A Twisted peer that passes file descriptors over a UNIX socket (AMP's
Descriptor argument), for test/interop/Descriptor.test.ts.

  descriptor_peer.py server PATH   listens on PATH, prints "listening unix PATH", serves until killed
  descriptor_peer.py client PATH N connects to PATH, runs the client script, prints
                                   one line per check ("ok NAME" or "FAIL NAME ..."), exits 0 when all passed
"""
import os
import sys
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientCreator, Factory
from twisted.protocols import amp


class OpenFile(amp.Command):
    arguments = [(b"text", amp.Unicode())]
    response = [(b"fd", amp.Descriptor())]


class WriteTo(amp.Command):
    arguments = [(b"fd", amp.Descriptor()), (b"text", amp.Unicode())]
    response = []


class ReadFd(amp.Command):
    arguments = [(b"fd", amp.Descriptor())]
    response = [(b"text", amp.Unicode())]


class ReadThree(amp.Command):
    arguments = [(b"a", amp.Descriptor()), (b"b", amp.Descriptor()), (b"c", amp.Descriptor())]
    response = [(b"text", amp.Unicode())]


class MakePipe(amp.Command):
    arguments = []
    response = [(b"fd", amp.Descriptor())]


class ReadPipe(amp.Command):
    arguments = []
    response = [(b"text", amp.Unicode())]


def file_with(text):
    f = tempfile.TemporaryFile()
    f.write(text.encode("utf-8"))
    f.flush()
    f.seek(0)
    fd = os.dup(f.fileno())
    f.close()
    return fd


def read_and_close(fd):
    os.lseek(fd, 0, os.SEEK_SET) if not _is_pipe(fd) else None
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks).decode("utf-8")


def _is_pipe(fd):
    import stat
    return stat.S_ISFIFO(os.fstat(fd).st_mode)


def pipe_with(text):
    r, w = os.pipe()
    os.write(w, text.encode("utf-8"))
    os.close(w)
    return r


class Peer(amp.AMP):
    """Twisted's responders: what our client calls."""

    def __init__(self):
        amp.AMP.__init__(self)
        self.given = []

    @OpenFile.responder
    def open_file(self, text):
        fd = file_with(text)
        self.given.append(fd)  # Twisted sends the number itself: it must stay open until written
        return {"fd": fd}

    @WriteTo.responder
    def write_to(self, fd, text):
        os.write(fd, text.encode("utf-8"))
        os.close(fd)
        return {}

    @ReadFd.responder
    def read_fd(self, fd):
        return {"text": read_and_close(fd)}

    @ReadThree.responder
    def read_three(self, a, b, c):
        return {"text": read_and_close(a) + read_and_close(b) + read_and_close(c)}


def serve(path):
    f = Factory()
    f.protocol = Peer
    reactor.listenUNIX(path, f)
    print("listening unix", path, flush=True)
    reactor.run()


@defer.inlineCallbacks
def client_script(proto, n):
    failures = 0

    def check(name, ok, detail=""):
        nonlocal failures
        if ok:
            print("ok", name, flush=True)
        else:
            failures += 1
            print("FAIL", name, detail, flush=True)

    # A file opened by Twisted, read by effect-amp.
    fd = file_with("from twisted")
    r = yield proto.callRemote(ReadFd, fd=fd)
    os.close(fd)
    check("file", r["text"] == "from twisted", repr(r))

    # A pipe made by effect-amp, written by Twisted.
    r = yield proto.callRemote(MakePipe)
    os.write(r["fd"], "written by twisted".encode("utf-8"))
    os.close(r["fd"])
    r = yield proto.callRemote(ReadPipe)
    check("pipe", r["text"] == "written by twisted", repr(r))

    # Three in one box.
    fds = [pipe_with("one "), pipe_with("two "), pipe_with("three")]
    r = yield proto.callRemote(ReadThree, a=fds[0], b=fds[1], c=fds[2])
    for x in fds:
        os.close(x)
    check("three", r["text"] == "one two three", repr(r))

    # n descriptors, pipelined: all calls made at once, the socket fills up.
    fds = [pipe_with("#%d" % i) for i in range(n)]
    results = yield defer.gatherResults([proto.callRemote(ReadFd, fd=fd) for fd in fds])
    for x in fds:
        os.close(x)
    texts = [x["text"] for x in results]
    wrong = [i for i, t in enumerate(texts) if t != "#%d" % i]
    check("burst", not wrong, "%d wrong, first %r" % (len(wrong), [(i, texts[i]) for i in wrong[:3]]))
    return failures


def client(path, n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    outcome = {"failures": 1}
    print("listening client", flush=True)

    @defer.inlineCallbacks
    def run():
        try:
            proto = yield ClientCreator(reactor, amp.AMP).connectUNIX(path)
            outcome["failures"] = yield client_script(proto, n)
            proto.transport.loseConnection()
        except Exception as e:
            print("FAIL error", repr(e), flush=True)
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    sys.exit(1 if outcome["failures"] else 0)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(sys.argv[2])
    else:
        client(sys.argv[2], int(sys.argv[3]))
