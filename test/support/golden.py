"""Golden AMP byte streams from Twisted, for the codec tests. Run with /usr/bin/python3.

Boxes in JSON are lists of [key_b64, value_b64] pairs; wire bytes are base64.

  golden.py             prints [{"name", "boxes": [box...], "wireB64", "parsed": [box...]}]
                        "wireB64" is b"".join(amp.AmpBox(...).serialize()) of the boxes;
                        "boxes" lists each box's pairs in serialize() order (sorted keys),
                        "parsed" is amp.parseString(wire), in wire order.
  golden.py parse       reads base64 wire bytes on stdin; prints what amp.parseString
                        makes of them: [box...]
  golden.py serialize   reads JSON [box...] on stdin; prints [wireB64...], one
                        amp.AmpBox(dict(pairs)).serialize() per box
  golden.py feed        reads JSON [{"wireB64", "chunk"}...] on stdin; feeds each stream to a
                        fresh BinaryBoxProtocol over a fake transport, `chunk` bytes per
                        dataReceived (0: all at once); prints per stream
                        {"boxes": [box...], "lengthLimitExceeded": bool, "disconnected": bool}:
                        what a live Twisted connection delivers and whether it hangs up.

Twisted's semantics worth knowing: a lone 00 00 is an empty box; a duplicate key keeps
its first position and the last value (a dict); parseString drops a trailing partial box
silently; a key length prefix over 255 makes the connection drop after the boxes before it.
"""
import base64
import json
import random
import sys

from twisted.protocols import amp


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s)


def box_json(box):
    return [[b64(k), b64(v)] for k, v in box.items()]


def cases():
    rnd = random.Random(1234)

    def rbytes(n):
        return bytes(rnd.getrandbits(8) for _ in range(n))

    yield "sum (DESIGN.md)", [{b"_command": b"Sum", b"_ask": b"1f", b"a": b"13", b"b": b"81"}]
    yield "answer", [{b"_answer": b"1f", b"total": b"94"}]
    yield "error", [{b"_error": b"2a", b"_error_code": b"ZERO_DIVISION", b"_error_description": b"float division by zero"}]
    yield "empty value", [{b"k": b""}]
    yield "only empty values", [{b"a": b"", b"b": b"", b"c": b""}]
    yield "1-byte key", [{b"x": b"y"}]
    yield "255-byte key", [{b"k" * 255: b"v"}]
    yield "255-byte keys of every byte", [{bytes([i]) * 255: bytes([i]) for i in range(0, 256, 17)}]
    yield "65535-byte value", [{b"big": rbytes(65535)}]
    yield "three 65535-byte values", [{b"a": rbytes(65535), b"b": b"\x00" * 65535, b"c": b"\xff" * 65535}]
    yield "65535-byte value under a 255-byte key", [{b"\xfe" * 255: rbytes(65535)}]
    yield "binary key and value", [{bytes([0, 255, 128, 10]): bytes([0xFF, 0xFE, 0, 1])}]
    yield "key of one zero byte", [{b"\x00": b"zero"}]
    yield "key and value of two zero bytes", [{b"\x00\x00": b"\x00\x00"}]
    yield "non-UTF-8 keys and values", [{bytes([0x80 + i]): bytes([0xC0, 0x80 + i, 0xFF]) for i in range(20)}]
    yield "UTF-8 keys", [{"\u00e9t\u00e9".encode(): "\U0001f40d".encode(), "\u4e2d".encode(): b"zh"}]
    yield "every single-byte key", [{bytes([i]): bytes([255 - i]) for i in range(256)}]
    yield "many keys", [{b"key%d" % i: b"%d" % (i * i) for i in range(300)}]
    yield "random keys and values", [{rbytes(1 + rnd.randrange(255)): rbytes(rnd.randrange(3000)) for _ in range(40)}]
    yield "several boxes", [{b"a": b"1"}, {b"b": b"2", b"c": b"3"}, {b"_answer": b"ff"}]
    yield "no keys", [{}]
    yield "two empty boxes", [{}, {}]
    yield "empty box between boxes", [{b"a": b"1"}, {}, {b"b": b"2"}]
    yield "100 boxes", [{b"_command": b"Sum", b"_ask": b"%x" % i, b"a": b"%d" % i, b"b": b"%d" % (2 * i)} for i in range(100)]
    yield "no boxes", []


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "golden"
    if mode == "parse":
        data = unb64(sys.stdin.read())
        print(json.dumps([box_json(box) for box in amp.parseString(data)]))
    elif mode == "serialize":
        boxes = json.loads(sys.stdin.read())
        print(json.dumps([b64(amp.AmpBox({unb64(k): unb64(v) for k, v in pairs}).serialize()) for pairs in boxes]))
    elif mode == "feed":
        print(json.dumps([feed(unb64(s["wireB64"]), s.get("chunk", 0)) for s in json.loads(sys.stdin.read())]))
    elif mode == "golden":
        out = []
        for name, boxes in cases():
            wire = b"".join(amp.AmpBox(box).serialize() for box in boxes)
            out.append({
                "name": name,
                "boxes": [[[b64(k), b64(v)] for k, v in sorted(box.items())] for box in boxes],
                "wireB64": b64(wire),
                "parsed": [box_json(box) for box in amp.parseString(wire)],
            })
        print(json.dumps(out))
    else:
        raise SystemExit("golden.py: unknown mode %s (golden, parse, serialize, feed)" % mode)


class FakeTransport:
    """Just enough of a transport for BinaryBoxProtocol."""

    def __init__(self):
        self.disconnecting = False

    def loseConnection(self):
        self.disconnecting = True

    def write(self, data):
        pass

    def writeSequence(self, data):
        pass

    def getPeer(self):
        return "golden"

    def getHost(self):
        return "golden"


class Receiver:
    def __init__(self):
        self.boxes = []

    def startReceivingBoxes(self, sender):
        pass

    def ampBoxReceived(self, box):
        self.boxes.append(box)

    def stopReceivingBoxes(self, reason):
        pass


def feed(data, chunk):
    receiver = Receiver()
    proto = amp.BinaryBoxProtocol(receiver)
    transport = FakeTransport()
    proto.makeConnection(transport)
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        if transport.disconnecting:
            break  # a real reactor stops reading once the connection is being dropped
        proto.dataReceived(data[i:i + step])
    return {
        "boxes": [box_json(box) for box in receiver.boxes],
        "lengthLimitExceeded": bool(proto._keyLengthLimitExceeded),
        "disconnected": transport.disconnecting,
    }


main()
