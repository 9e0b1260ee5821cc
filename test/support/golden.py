"""Golden AMP byte streams from Twisted, for the codec tests.

  golden.py            prints JSON: [{name, boxes: [[key_b64, value_b64]...], wire_b64}]
  golden.py parse      reads base64 wire bytes on stdin, prints what amp.parseString
                       makes of them (a list of boxes of [key_b64, value_b64] pairs)
"""
import base64, json, random, sys
from twisted.protocols import amp

b64 = lambda b: base64.b64encode(b).decode()

def cases():
    rnd = random.Random(1234)
    yield "sum", [[(b"_command", b"Sum"), (b"_ask", b"1f"), (b"a", b"13"), (b"b", b"81")]]
    yield "empty value", [[(b"k", b"")]]
    yield "255-byte key", [[(b"k" * 255, b"v")]]
    yield "65535-byte value", [[(b"big", bytes(rnd.getrandbits(8) for _ in range(65535)))]]
    yield "binary key and value", [[(bytes([0, 255, 128, 10]), bytes([0xff, 0xfe, 0, 1]))]]
    yield "many keys", [[(b"key%d" % i, b"%d" % (i * i)) for i in range(300)]]
    yield "several boxes", [[(b"a", b"1")], [(b"b", b"2"), (b"c", b"3")], [(b"_answer", b"ff")]]
    yield "no keys", [[]]

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "parse":
        data = base64.b64decode(sys.stdin.read())
        boxes = amp._ParserHelper.parseString(data) if hasattr(amp, "_ParserHelper") else amp.parseString(data)
        print(json.dumps([[[b64(k), b64(v)] for k, v in box.items()] for box in boxes]))
        return
    out = []
    for name, boxes in cases():
        wire = b"".join(amp.AmpBox(dict(pairs)).serialize() for pairs in boxes)
        # AmpBox is a dict: its order is insertion order, which serialize() keeps.
        out.append({"name": name, "boxes": [[[b64(k), b64(v)] for k, v in dict(pairs).items()] for pairs in boxes], "wire_b64": b64(wire)})
    print(json.dumps(out))

main()
