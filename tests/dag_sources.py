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
