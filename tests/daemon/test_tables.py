from __future__ import annotations

import pytest

from daemon.tables import display_width, render_table


def test_basic_table():
    out = render_table(["NAME", "SERIAL", "DAYS LEFT"],
                       [["www", "0a1b", 60], ["api-long-name", None, ""], ["x", "ff", True]])
    assert out == (
        "NAME           SERIAL  DAYS LEFT\n"
        "-------------  ------  ---------\n"
        "www            0a1b    60\n"
        "api-long-name  -       -\n"
        "x              ff      yes\n"
    )


def test_short_rows_padded_long_rows_refused():
    assert render_table(["A", "B"], [["1"]]).splitlines()[-1] == "1  -"
    with pytest.raises(ValueError):
        render_table(["A"], [["1", "2"]])


def test_newlines_flattened_and_no_trailing_spaces():
    out = render_table(["A", "B"], [["multi\nline", ""]])
    assert out.splitlines()[2] == "multi line  -"
    assert all(line == line.rstrip() for line in out.splitlines())


def test_wide_characters():
    assert display_width("证书") == 4
    out = render_table(["N", "X"], [["证书", "a"], ["ab", "b"]])
    assert out.splitlines()[2:] == ["证书  a", "ab    b"]


def test_empty():
    assert render_table(["NAME"], []) == "NAME\n----\n"
