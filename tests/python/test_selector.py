"""Label selectors as docs/selectors.md has them."""

import pytest

from jumpstarter_testing.selector import SelectorError, parse_selector, selector_matches

LABELS = {"vendor": "acme", "model": "widget-v2", "site": "lab", "empty": ""}


@pytest.mark.parametrize("selector, want", [
    ("", True),
    ("vendor=acme,model=widget-v2", True),
    ("vendor==acme", True),
    ("vendor=other", False),
    ("vendor!=other", True),
    ("missing!=x", True),
    ("site in (lab, desk)", True),
    ("site notin (lab)", False),
    ("missing notin (lab)", True),
    ("vendor", True),
    ("!vendor", False),
    ("!broken, vendor", True),
    ("empty=", True),
    ("empty in (,x)", True),
    (" a = 1 , b in ( x , y ) ", False),
    ("in in (in)", False),
    ("jumpstarter.dev/owner notin (ci), vendor", True),
])
def test_matches(selector, want):
    assert selector_matches(selector, LABELS) is want


@pytest.mark.parametrize("selector, message", [
    ("board in rpi4", 'column 10: expected "(" after "in", found "rpi4"'),
    ("board in ()", 'column 10: empty value set after "in"'),
    ("board=rpi4,", 'column 12: expected a key or "!", found end of input'),
    ("Board.com/x=1", "column 1:"),
    ("a=1 b=2", 'column 5: expected ","'),
    ("a in (x y)", 'expected "," or ")"'),
])
def test_errors_name_the_column(selector, message):
    with pytest.raises(SelectorError) as e:
        parse_selector(selector)
    assert message in str(e.value)


def test_limits():
    with pytest.raises(SelectorError, match="4096"):
        parse_selector("a" * 4097)
    with pytest.raises(SelectorError, match="128"):
        parse_selector(",".join("k%d" % i for i in range(129)))
    with pytest.raises(SelectorError):
        parse_selector(None)
