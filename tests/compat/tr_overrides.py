# Copied verbatim from apache/hamilton tests/resources/overrides.py
# at commit 4e5dfdf0b730266863a430ef1d2205eca198af13; only these two header lines were added.
def b(a: int) -> int:
    return a + 1


def c(b: int) -> int:
    return b + 1


def d(c: int) -> int:
    return c + 1
