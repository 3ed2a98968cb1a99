"""Every UI string has an English and a Chinese text (static check of static/js/i18n/*.js)."""

from __future__ import annotations

import re
from pathlib import Path

I18N = Path(__file__).resolve().parents[2] / "static" / "js" / "i18n"
JS = Path(__file__).resolve().parents[2] / "static" / "js"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
KEY = re.compile(r'^\s*"([\w.]+)":\s*"(.*)",?\s*$', re.M)


def keys(name: str) -> dict[str, str]:
    return dict(KEY.findall((I18N / f"{name}.js").read_text(encoding="utf-8")))


def test_both_languages_have_the_same_keys_and_no_empty_text():
    en, zh = keys("en"), keys("zh")
    assert len(en) > 100
    assert set(en) == set(zh)
    assert all(v.strip() for v in en.values()) and all(v.strip() for v in zh.values())


def test_placeholders_match_between_languages():
    en, zh = keys("en"), keys("zh")
    for k in en:
        assert set(re.findall(r"\{(\w+)\}", en[k])) == set(re.findall(r"\{(\w+)\}", zh[k])), k


def test_every_key_used_in_templates_exists():
    en = keys("en")
    used = set(
        re.findall(
            r'data-i18n(?:-aria|-title)?="([\w.]+)"',
            "".join(p.read_text(encoding="utf-8") for p in TEMPLATES.glob("*.html")),
        )
    )
    assert used and used <= set(en), used - set(en)


def test_every_literal_key_used_in_scripts_exists():
    en = keys("en")
    src = "".join(p.read_text(encoding="utf-8") for p in JS.rglob("*.js") if p.parent != I18N)
    used = set(re.findall(r'"((?:[a-z]+[A-Za-z]*)\.[A-Za-z_]+)"', src)) - {"cnnviz.lang"}
    missing = {k for k in used if k not in en}
    assert not missing, missing


def test_no_console_calls_left_in_the_front_end():
    src = {p.name: p.read_text(encoding="utf-8") for p in JS.rglob("*.js")}
    assert not [n for n, s in src.items() if "console." in s]
