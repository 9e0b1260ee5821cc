"""Exact wire bytes Twisted writes for edge values of each argument type.

Prints JSON: [{"type": T, "value": <our JSON spelling>, "wire_b64": ...}]. Reads nothing.
"""
import base64, datetime, decimal, json
from twisted.protocols import amp

def tz(m):
    return amp._FixedOffsetTZInfo.fromSignHoursMinutes("+" if m >= 0 else "-", abs(m) // 60, abs(m) % 60)

out = []
def add(kind, spelled, arg, value):
    out.append({"type": kind, "value": spelled, "wire_b64": base64.b64encode(arg.toString(value)).decode()})

for n in [0, -1, 1, 2 ** 53 + 1, -(2 ** 64) - 1, 10 ** 40]:
    add("Integer", str(n), amp.Integer(), n)
for f in ["0.0", "-0.0", "1.0", "0.1", "1e-300", "1e+300", "1.5e+16", "1e+16", "123456789012345680.0", "1e-05", "0.0001",
          "inf", "-inf", "nan", "2.5", "-3.75", "1e+22", "5e-324", "1.7976931348623157e+308", "100.0", "9999999999999998.0"]:
    add("Float", f, amp.Float(), float(f))
for b in [True, False]:
    add("Boolean", b, amp.Boolean(), b)
for d in ["0", "-0", "1.10", "1E+2", "-1.10E-7", "123.4500", "0.000001", "0.0000001", "Infinity", "-Infinity", "NaN", "sNaN", "-NaN", "1e-2", "+5", "0E+3"]:
    add("Decimal", d, amp.Decimal(), decimal.Decimal(d))
for parts in [(2000, 1, 1, 0, 0, 0, 0, 0), (2026, 11, 24, 23, 59, 59, 999999, 345), (1, 1, 1, 0, 0, 0, 1, -570), (9999, 12, 31, 23, 59, 59, 0, -1), (2024, 2, 29, 12, 0, 0, 500, 840)]:
    *dt, off = parts
    add("DateTime", list(parts), amp.DateTime(), datetime.datetime(*dt, tzinfo=tz(off)))
add("ListOf(Integer)", ["1", "-2", str(2 ** 70)], amp.ListOf(amp.Integer()), [1, -2, 2 ** 70])
add("ListOf(Unicode)", ["", "\U0001f600", "abc"], amp.ListOf(amp.Unicode()), ["", "\U0001f600", "abc"])
add("Unicode", "h\u00e9llo \U0001f40d", amp.Unicode(), "h\u00e9llo \U0001f40d")
print(json.dumps(out))
