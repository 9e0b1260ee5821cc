"""Twisted's own argument types, as a test oracle for src/Argument.ts.

Run with /usr/bin/python3 (Debian's python3-twisted). Three modes:

  argument_vectors.py            print edge-value vectors: a JSON list of
                                 {"type", "repr", "value", "wire_b64"}, the wire
                                 bytes made by Twisted's own Argument.toString.
  argument_vectors.py decode     read a JSON list of {"type", "wire_b64"} on stdin;
                                 print, for each, what Twisted's fromString makes of
                                 the bytes: {"ok": true, "repr", "value"} or
                                 {"ok": false, "error"}.
  argument_vectors.py encode     read a JSON list of {"type", "value"} on stdin;
                                 print, for each, {"ok": true, "wire_b64"} or
                                 {"ok": false, "error"}.

"value" is a JSON spelling that both sides build independently of either
side's wire format:
  Integer          decimal string
  Float            the 8 IEEE-754 bytes, big-endian, as hex (exact, NaN included)
  Boolean          true / false
  String           base64
  Unicode, Path    the text
  Decimal          {"sign": 0|1, "digits": "123", "exponent": "-2" | "F" | "n" | "N"}
                   (Python's Decimal.as_tuple(); F = Infinity, n = NaN, N = sNaN)
  DateTime         [year, month, day, hour, minute, second, microsecond, offsetMinutes]
  ListOf(T)        a list of T's spellings
  AmpList(...)     a list of objects, field name -> spelling, absent optional omitted
"""
import base64
import datetime
import decimal
import json
import struct
import sys

from twisted.protocols import amp
from twisted.python.filepath import FilePath

SCALARS = {
    "Integer": amp.Integer(),
    "Float": amp.Float(),
    "Boolean": amp.Boolean(),
    "String": amp.String(),
    "Unicode": amp.Unicode(),
    "Path": amp.Path(),
    "Decimal": amp.Decimal(),
    "DateTime": amp.DateTime(),
}

# AmpList shapes the TypeScript side declares the same way (see ArgumentTwisted.test.ts).
POINT = [(b"x", amp.Integer()), (b"label-text", amp.Unicode(optional=True)), (b"f", amp.Float())]
NESTED = [(b"name", amp.Unicode()), (b"points", amp.AmpList(POINT)), (b"tags", amp.ListOf(amp.Unicode()))]
AMPLISTS = {"AmpList:point": POINT, "AmpList:nested": NESTED}


def argument(kind):
    if kind in SCALARS:
        return SCALARS[kind]
    if kind in AMPLISTS:
        return amp.AmpList(AMPLISTS[kind])
    if kind.startswith("ListOf(") and kind.endswith(")"):
        return amp.ListOf(argument(kind[len("ListOf("):-1]))
    raise KeyError(kind)


def tz(minutes):
    sign = "+" if minutes >= 0 else "-"
    return amp._FixedOffsetTZInfo.fromSignHoursMinutes(sign, abs(minutes) // 60, abs(minutes) % 60)


def spell(arg, value):
    """A Python value as its JSON spelling."""
    if isinstance(arg, amp.AmpList):
        return [
            {amp._wireNameToPythonIdentifier(name): spell(sub, record[amp._wireNameToPythonIdentifier(name)])
             for name, sub in arg.subargs if record.get(amp._wireNameToPythonIdentifier(name)) is not None}
            for record in value
        ]
    if isinstance(arg, amp.ListOf):
        return [spell(arg.elementType, v) for v in value]
    if isinstance(arg, amp.Boolean):
        return value
    if isinstance(arg, amp.Integer):
        return str(value)
    if isinstance(arg, amp.Float):
        return struct.pack(">d", value).hex()
    if isinstance(arg, amp.Path):
        return value.path
    if isinstance(arg, amp.Unicode):
        return value
    if isinstance(arg, amp.String):
        return base64.b64encode(value).decode()
    if isinstance(arg, amp.Decimal):
        t = value.as_tuple()
        return {"sign": t.sign, "digits": "".join(map(str, t.digits)), "exponent": str(t.exponent)}
    if isinstance(arg, amp.DateTime):
        off = value.utcoffset()
        return [value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
                (off.days * 86400 + off.seconds) // 60]
    raise TypeError(arg)


def unspell(arg, spelled):
    """The Python value of a JSON spelling."""
    if isinstance(arg, amp.AmpList):
        out = []
        for record in spelled:
            d = {}
            for name, sub in arg.subargs:
                field = amp._wireNameToPythonIdentifier(name)
                d[field] = unspell(sub, record[field]) if field in record else None
            out.append(d)
        return out
    if isinstance(arg, amp.ListOf):
        return [unspell(arg.elementType, v) for v in spelled]
    if isinstance(arg, amp.Boolean):
        return spelled
    if isinstance(arg, amp.Integer):
        return int(spelled)
    if isinstance(arg, amp.Float):
        return struct.unpack(">d", bytes.fromhex(spelled))[0]
    if isinstance(arg, amp.Path):
        return FilePath(spelled)
    if isinstance(arg, amp.Unicode):
        return spelled
    if isinstance(arg, amp.String):
        return base64.b64decode(spelled)
    if isinstance(arg, amp.Decimal):
        e = spelled["exponent"]
        digits = tuple(int(c) for c in spelled["digits"])
        return decimal.Decimal((spelled["sign"], digits, e if e in ("F", "n", "N") else int(e)))
    if isinstance(arg, amp.DateTime):
        *fields, off = spelled
        return datetime.datetime(*fields, tzinfo=tz(off))
    raise TypeError(arg)


def to_wire(arg, value):
    # AmpList needs the protocol-aware entry point; the others ignore `proto`.
    return arg.toStringProto(value, None)


def from_wire(arg, wire):
    return arg.fromStringProto(wire, None)


def vectors():
    out = []

    def add(kind, value):
        arg = argument(kind)
        wire = to_wire(arg, value)
        out.append({"type": kind, "repr": repr(value), "value": spell(arg, value),
                    "wire_b64": base64.b64encode(wire).decode()})

    for n in [0, 1, -1, 7, -42, 2 ** 31, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 1, -(2 ** 53) - 1, 2 ** 63, 2 ** 64,
              2 ** 64 + 1, -(2 ** 64) - 1, 10 ** 40, -(10 ** 100)]:
        add("Integer", n)
    for f in ["0.0", "-0.0", "1.0", "-1.0", "0.1", "0.2", "0.30000000000000004", "1e-300", "1e+300", "1.5e+16",
              "1e+16", "9999999999999998.0", "123456789012345680.0", "1e-05", "0.0001", "0.00012345", "inf", "-inf",
              "nan", "2.5", "-3.75", "1e+22", "1e+21", "5e-324", "2.2250738585072014e-308",
              "1.7976931348623157e+308", "100.0", "1234567.125", "3.141592653589793", "-1.5e-07", "123.456"]:
        add("Float", float(f))
    for b in [True, False]:
        add("Boolean", b)
    for s in [b"", b"x", bytes(range(256)), b"\x00\x00", b"\xff" * 65535]:
        add("String", s)
    for s in ["", "hello", "h\u00e9llo", "\u4e2d\u6587", "\U0001f40d snake", "\U0010ffff", "\ufeffbom", "\x00nul",
              "a" * 65535, "\u00e9" * 32767]:
        add("Unicode", s)
    for p in ["/tmp/x", "/home/\u00e9l\u00e8ve/\U0001f4c1", "relative/path", ""]:
        add("Path", FilePath(p))
    for d in ["0", "-0", "1", "-1", "1.10", "1.1", "1E+2", "1e2", "100", "-1.10E-7", "1.23E-7", "123.4500",
              "0.000001", "0.0000001", "0E+3", "0E-7", "-0.00", "0.000000", "1234567890123456789012345678901234567890.5",
              "1.5", "12345E-10", "Infinity", "-Infinity", "NaN", "-NaN", "sNaN", "-sNaN", "NaN123", "sNaN45",
              "1e-2", "+5", "  7.50  ", "1_000.000_1", "1E+999999999"]:
        add("Decimal", decimal.Decimal(d))
    for parts in [(2000, 1, 1, 0, 0, 0, 0, 0), (2026, 11, 24, 23, 59, 59, 999999, 345),
                  (1, 1, 1, 0, 0, 0, 1, -570), (9999, 12, 31, 23, 59, 59, 0, -1), (2024, 2, 29, 12, 0, 0, 500, 840),
                  (2024, 2, 29, 12, 0, 0, 500, -720), (1970, 1, 1, 0, 0, 0, 0, 1439), (1999, 12, 31, 23, 59, 59, 123456, -1439),
                  (12, 3, 4, 5, 6, 7, 8, 60)]:
        *dt, off = parts
        add("DateTime", datetime.datetime(*dt, tzinfo=tz(off)))
    add("ListOf(Integer)", [])
    add("ListOf(Integer)", [1, -2, 2 ** 70, 0])
    add("ListOf(Unicode)", ["", "\U0001f600", "abc"])
    add("ListOf(Float)", [0.1, float("inf"), -0.0, 1e300])
    add("ListOf(String)", [b"", b"\x00", b"x" * 1000])
    add("ListOf(Boolean)", [True, False, True])
    add("ListOf(Decimal)", [decimal.Decimal("1.10"), decimal.Decimal("-Infinity")])
    add("ListOf(DateTime)", [datetime.datetime(2020, 5, 6, 7, 8, 9, 10, tzinfo=tz(-90))])
    add("ListOf(ListOf(Integer))", [[1, 2], [], [3]])
    add("AmpList:point", [])
    add("AmpList:point", [{"x": 1, "label_text": "one", "f": 0.5}, {"x": -(2 ** 64), "label_text": None, "f": float("-inf")}])
    add("AmpList:point", [{"x": 0, "label_text": None, "f": 0.0}])
    add("AmpList:nested", [
        {"name": "a", "points": [{"x": 1, "label_text": "p", "f": 1.0}], "tags": ["t1", "t2"]},
        {"name": "\U0001f40d", "points": [], "tags": []},
    ])
    return out


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "vectors"
    if mode == "vectors":
        print(json.dumps(vectors()))
        return
    requests = json.load(sys.stdin)
    answers = []
    for req in requests:
        try:
            arg = argument(req["type"])
            if mode == "decode":
                value = from_wire(arg, base64.b64decode(req["wire_b64"]))
                answers.append({"ok": True, "repr": repr(value), "value": spell(arg, value)})
            elif mode == "encode":
                wire = to_wire(arg, unspell(arg, req["value"]))
                answers.append({"ok": True, "wire_b64": base64.b64encode(wire).decode()})
            else:
                raise SystemExit(f"unknown mode {mode!r}")
        except Exception as e:  # report, per request, what Twisted refused
            answers.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
