"""Cell sources shared by several test modules."""

# Two nodes that log each computation to `hnb_calls.log` (see conftest's `calls` fixture).
A_TO_B = """
def a() -> int:
    hnb_calls.log.append("a")
    return 1

def b(a: int) -> int:
    hnb_calls.log.append("b")
    return a + 1
"""


def chain_cell(i: int, const: int = 7) -> str:
    """Cell ``i`` of a chain notebook: ``a_i`` (from ``c_{i-1}``), ``b_i``, ``c_i`` (+ const)."""
    up = f"c_{i - 1}: int" if i else ""
    first = f"c_{i - 1} + 1" if i else "1"
    return (
        f"def a_{i}({up}) -> int:\n    return {first}\n\n\n"
        f"def b_{i}(a_{i}: int) -> int:\n    return a_{i} * 2\n\n\n"
        f"def c_{i}(b_{i}: int) -> int:\n    return b_{i} + {const}\n"
    )


def expected_c(n: int, edits: dict[int, int] | None = None) -> int:
    """``c_n`` of the chain, with cell ``i``'s constant ``edits[i]`` where given (else 7)."""
    c = 0
    for i in range(n + 1):
        a = 1 if i == 0 else c + 1
        c = a * 2 + (edits or {}).get(i, 7)
    return c
