"""The reader of dlib's serialisation (adapters/dlib_torch/reader.py) on hand-made bytes (the
two networks of the ``face_recognition_models`` wheel: tests/integration/test_dlib_reader_networks.py)."""

from __future__ import annotations

import pytest

from scenedex.adapters.dlib_torch.reader import DlibFormatError, _Stream


@pytest.mark.parametrize(
    ("data", "value"),
    [(b"\x01\x00", 0), (b"\x01\x05", 5), (b"\x81\x05", -5), (b"\x02\x00\x01", 256), (b"\x01\x50", 80)],
)
def test_integers_as_dlib_packs_them(data: bytes, value: int) -> None:
    assert _Stream(data).int() == value


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"\x01\x10\x81\x04", 1.0),  # float_details of 1.0: mantissa 16, exponent -4
        (b"\x01\x10\x81\x05", 0.5),
        (b"\x81\x03\x01\x00", -3.0),
        (b"\x01\x00\x02\x00\x7d", float("inf")),  # exponent 32000 = is_inf
    ],
)
def test_portable_floats(data: bytes, value: float) -> None:
    assert _Stream(data).float() == value


def test_truncated_and_ascii_floats_are_refused() -> None:
    with pytest.raises(DlibFormatError, match="end of file"):
        _Stream(b"\x02\x00").int()
    with pytest.raises(DlibFormatError, match="ASCII"):
        _Stream(b"1.5 ").float()
