"""How the kernels are compiled (``engine.core.compiled.layout``): what it keeps must be true."""

from __future__ import annotations

from engine.core.compiled.layout import _Flags


def test_compile_flags_forget_their_gathered_values_when_an_option_changes() -> None:
    flags = _Flags()
    assert flags.values()["nrt"] is False  # gathered
    flags.nrt = True
    assert flags.values()["nrt"] is True
    flags.discard("nrt")
    assert flags.values()["nrt"] is False
    flags.nrt = True
    flags.values()
    del flags.nrt
    assert flags.values()["nrt"] is False


def test_compile_flags_compare_and_hash_as_numbas_own() -> None:
    flags = _Flags()
    flags.nrt = True
    copy = flags.copy()
    assert type(copy) is _Flags
    assert copy == flags and hash(copy) == hash(flags)
    copy.nrt = False
    assert copy != flags
    copy.values()["nrt"] = True  # a caller's dict, not the gathered one
    assert copy.values()["nrt"] is False
