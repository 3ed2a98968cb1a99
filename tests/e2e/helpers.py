"""Drawing with the mouse and moving through the stepper, for the e2e tests."""

from __future__ import annotations

import math

# Strokes in pad coordinates (0..1). A "1" is one vertical stroke; a "0" an ellipse.
ONE = [[(0.52, 0.16 + 0.68 * k / 24) for k in range(25)]]
ZERO = [
    [
        (0.5 + 0.2 * math.sin(2 * math.pi * k / 40), 0.5 - 0.32 * math.cos(2 * math.pi * k / 40))
        for k in range(42)
    ]
]


def draw(page, strokes) -> None:
    """Draw `strokes` on the pad with real mouse events."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.up()


def wait_settled(page, timeout: float = 10000) -> None:
    """Wait until the bars show the pad's latest drawing and the trace that follows has arrived."""
    page.wait_for_function(
        "() => document.querySelector('#probs').dataset.version"
        " === document.querySelector('#pad').dataset.version"
        " && document.body.dataset.tracing === 'false'",
        timeout=timeout,
    )


def wait_traced(page, timeout: float = 20000) -> None:
    """Wait until no trace is scheduled or in flight (the views show the latest one)."""
    page.wait_for_function("() => document.body.dataset.tracing === 'false'", timeout=timeout)


def step_total(page) -> int:
    return int(page.locator("#step-counter").get_attribute("data-total"))


def go_to_step(page, index: int) -> None:
    """Click the step's dot in the track and wait for the detail view to show it."""
    page.locator("#step-track button").nth(index).click()
    page.wait_for_function(
        f"() => document.querySelector('#step-counter').dataset.index === '{index}'"
    )


def find_step(page, kind: str, layer: int | None = None) -> int:
    """Index of the first step of `kind` (and layer), by walking the stepper."""
    for i in range(step_total(page)):
        go_to_step(page, i)
        d = page.locator("#detail")
        if d.get_attribute("data-kind") == kind and (
            layer is None or d.get_attribute("data-layer") == str(layer)
        ):
            return i
    raise AssertionError(f"no step {kind} (layer {layer})")


def pause_sweep(page) -> None:
    """Stop the detail animation where it is (the focus then stays put)."""
    if page.locator("#detail").get_attribute("data-sweeping") == "true":
        page.locator("#sweep-toggle").click()
    page.wait_for_function("() => document.querySelector('#detail').dataset.sweeping === 'false'")
