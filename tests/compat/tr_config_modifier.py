# Copied verbatim from apache/hamilton tests/resources/config_modifier.py
# at commit 4e5dfdf0b730266863a430ef1d2205eca198af13; only these two header lines were added.
from hamilton.function_modifiers import config


def new_param() -> str:
    return "dummy"


@config.when(fn_1_version=0)
def fn() -> str:
    pass


@config.when(fn_1_version=1)
def fn__v1() -> str:
    return "version_1"


@config.when(fn_1_version=2)
def fn__v2(new_param: str) -> str:
    return "version_2"


@config.when(fn_1_version=3, name="fn")
def fn_to_rename() -> str:
    return "version_3"
