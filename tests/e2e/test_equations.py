"""Every printed equation holds as printed (issue 10, part 1).

The real page is driven through every step of the digit model and of every worked example. At a
few focus positions of each step the formula's MathML is read back *as printed* (the digits on
screen, not the data-value attributes), turned into arithmetic and recomputed here: every
numeric side of an `=` (or `≈`) must round to the printed result at the result's printed
precision. Sides with symbols (∂C/∂z, a_k, ∑ …) are skipped; a note (mtext), `→`, `:` and `;`
end an equation.
"""

from __future__ import annotations

import ast
import math
import re

import httpx
import pytest

from .conftest import ROOT
from .helpers import ONE, draw, go_to_step, pause_sweep, step_total, wait_settled

pytestmark = pytest.mark.e2e

HAS_DIGITS = (ROOT / "cnncore" / "models" / "digits.json").exists()

# The formula as arithmetic text: numbers as printed, symbols as "§", breaks as "|".
READ_FORMULA = r"""() => {
  const FUNCS = new Set(['log', 'exp', 'max', 'relu', 'sigmoid', 'tanh', 'identity']);
  const OPS = {'+': '+', '−': '-', '-': '-', '·': '*', '×': '*', '/': '/', '(': '(', ')': ')',
               ',': ',', '=': '=', '≈': '~'};
  const BREAK = new Set(['→', '↔', ':', ';', '⋯']);
  const num = (e) => {
    // A printed number: <mn>1.234</mn>, or 1.234 × 10^−5 wrapped in an mrow carrying data-value.
    if (e.tagName === 'mn') return e.textContent.replace('−', '-').replace('∞', 'inf').trim();
    const mns = e.querySelectorAll('mn');
    const txt = (k) => mns[k].textContent.replace('−', '-');
    return mns.length === 3 ? txt(0) + 'e' + txt(2) : txt(0);
  };
  function walk(e, out) {
    const tag = e.tagName;
    if (e.hasAttribute && e.hasAttribute('data-value')) { out.push(num(e)); return; }
    if (tag === 'mn') { out.push(num(e)); return; }
    if (tag === 'mtext') { out.push('|'); return; }
    if (tag === 'mi') {
      const s = e.textContent.trim();
      out.push(FUNCS.has(s) ? s : s === 'e' ? 'E' : '§');
      return;
    }
    if (tag === 'mo') {
      const s = e.textContent.trim();
      if (s === '′') { out[out.length - 1] += '_d'; return; }
      if (BREAK.has(s)) { out.push('|'); return; }
      out.push(s in OPS ? OPS[s] : '§');
      return;
    }
    if (tag === 'msub') { out.push('§'); return; }
    if (tag === 'mfrac') {
      const [a, b] = e.children;
      out.push('('); walk(a, out); out.push(')/('); walk(b, out); out.push(')');
      return;
    }
    if (tag === 'msup') {
      const [a, b] = e.children;
      out.push('('); walk(a, out); out.push(')**('); walk(b, out); out.push(')');
      return;
    }
    if (tag === 'munder') { walk(e.children[0], out); return; }
    for (const c of e.children) walk(c, out);
  }
  const groups = [];
  for (const g of document.querySelectorAll('#formula > *')) {
    const out = [];
    for (const m of g.querySelectorAll('math')) { walk(m, out); out.push(' '); }
    groups.push(out.join(' '));
  }
  return groups;
}"""

FUNCS = {
    "log": math.log,
    "exp": math.exp,
    "max": max,
    "relu": lambda z: max(0.0, z),
    "relu_d": lambda z: 1.0 if z > 0 else 0.0,
    "sigmoid": lambda z: 1 / (1 + math.exp(-z)),
    "sigmoid_d": lambda z: (1 / (1 + math.exp(-z))) * (1 - 1 / (1 + math.exp(-z))),
    "tanh": math.tanh,
    "tanh_d": lambda z: 1 - math.tanh(z) ** 2,
    "identity": lambda z: z,
    "identity_d": lambda z: 1.0,
    "E": math.e,
    "inf": math.inf,
}
NUMBER = re.compile(r"^-?\d+(\.\d+)?(e-?\d+)?$")
ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Call,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.USub,
    ast.UAdd,
)


def evaluate(expr: str) -> float:
    # "log 0.5" as printed without parentheses
    expr = re.sub(r"\b(log|exp) (-?[\d.]+(?:e-?\d+)?)", r"\1(\2)", expr)
    # implicit multiplication as printed: "½ (…)"
    expr = re.sub(r"([\d)])\s+\(", r"\1*(", expr)
    tree = ast.parse(expr, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, ALLOWED):
            raise ValueError(f"not arithmetic: {ast.dump(node)[:60]}")
        if isinstance(node, ast.Name) and node.id not in FUNCS:
            raise ValueError(f"unknown name {node.id}")
    return float(eval(compile(tree, "<formula>", "eval"), {"__builtins__": {}}, FUNCS))


def half_ulp(text: str) -> float:
    """Half a unit in the last printed digit of a number literal."""
    mant, _, exp = text.lstrip("-").partition("e")
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    if "." not in mant:
        decimals = -(len(mant) - len(mant.rstrip("0"))) if mant.strip("0") else 0
    return 0.5 * 10.0 ** (-decimals + (int(exp) if exp else 0))


def problems_in(text: str) -> list[str]:
    """The equations of one formula group that do not hold as printed."""
    bad = []
    for chain in text.split("|"):
        sides = [s.strip() for s in re.split(r"=|~", chain)]
        numeric = [s for s in sides if s and "§" not in s]
        if len(numeric) < 2:
            continue
        result = numeric[-1].replace(" ", "")
        if not NUMBER.match(result):
            continue
        want = float(result)
        tol = half_ulp(result) * (1 + 1e-9) + 1e-300
        for side in numeric[:-1]:
            try:
                got = evaluate(side)
            except (ValueError, SyntaxError, TypeError, ZeroDivisionError, OverflowError) as exc:
                bad.append(f"cannot evaluate {side!r}: {exc}")
                continue
            if not abs(got - want) <= tol:
                bad.append(f"{side} = {got!r}, printed {result}")
    return bad


def set_position(page, pos: int) -> None:
    page.evaluate(
        """(p) => { const s = document.querySelector('#position');
           s.value = String(p); s.dispatchEvent(new Event('input')); }""",
        pos,
    )
    page.wait_for_function(
        "(p) => document.querySelector('#position').value === String(p)", arg=pos
    )
    page.wait_for_timeout(40)  # the focus moves on the next animation frame


def check_steps(page, label: str, positions_per_step: int) -> tuple[list[str], int]:
    failures = []
    checked = 0
    for i in range(step_total(page)):
        go_to_step(page, i)
        page.wait_for_selector("#formula .fline")
        pause_sweep(page)
        kind = page.locator("#detail").get_attribute("data-kind")
        n = int(page.locator("#position").get_attribute("max")) + 1
        last = max(1, positions_per_step - 1)
        picks = sorted({round(k * (n - 1) / last) for k in range(positions_per_step)})
        for pos in picks if n > 1 else [0]:
            if n > 1:
                set_position(page, pos)
            for group in page.evaluate(READ_FORMULA):
                checked += 1
                where = f"{label} step {i + 1} ({kind}) pos {pos}"
                failures += [f"{where}: {p}" for p in problems_in(group)]
    return failures, checked


def test_the_checker_catches_a_rounded_operand():
    # Today's bug: the operand 0.9999906 printed as 1.
    assert problems_in("§ = 1 - 1 = -9.358e-6")
    assert problems_in("§ = - log ( 1 ) = 9.358e-6")
    assert not problems_in("§ = 0.9999906418 - 1 = -9.358e-6")
    assert not problems_in("§ = ( 0.5 ) * ( 2 ) + ( 0.25 ) = 1.25 | § = 7")
    assert not problems_in("§ = relu ( -0.5 ) = 0 | relu_d ( 2 ) = 1")


@pytest.mark.skipif(not HAS_DIGITS, reason="the trained digit model is not there yet")
def test_every_equation_of_the_digit_model_balances(page):
    draw(page, ONE)  # a confident 1: the tiny-gradient regime, where rounding bit before
    wait_settled(page)
    failures, checked = check_steps(page, "digits", 3)
    assert checked > 60
    assert not failures, "\n".join(failures[:40])


def test_every_equation_of_every_worked_example_balances(page, server):
    scenarios = httpx.get(server + "/api/scenarios", timeout=10).json()
    ids = [s["id"] for s in (scenarios if isinstance(scenarios, list) else scenarios["scenarios"])]
    failures = []
    checked = 0
    for sid in ids:
        before = page.locator("body").get_attribute("data-traces")
        page.select_option("#source-select", f"scenario:{sid}")
        page.wait_for_function(f"() => document.body.dataset.traces !== '{before}'")
        f, c = check_steps(page, sid, 4)
        failures += f
        checked += c
    assert checked > 100
    assert not failures, "\n".join(failures[:40])
