"""cnncore.optim: SGD (momentum, weight decay) and Adam take the same steps as torch.optim on the
same parameters and gradients (float64, 1e-12), and schedule_lr gives the documented values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch  # the oracle `make test` installs: a missing one fails, never skips

from cnncore.optim import SGD, Adam, make_optimizer, schedule_lr

TOL = 1e-12
SHAPES = [{"w": (3, 2, 3, 3), "b": (3,)}, {}, {"w": (4, 12), "b": (4,)}]


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [{k: rng.normal(size=s) for k, s in layer.items()} for layer in SHAPES]


def _grads(rng):
    return [{k: rng.normal(size=s) for k, s in layer.items()} for layer in SHAPES]


def _run_both(torch, make_mine, make_theirs, steps=6, lr_changes=None):
    params = _params()
    arrays = [v for p in params for v in p.values()]  # the very arrays the optimizer owns
    tparams = [torch.tensor(v.copy(), requires_grad=True) for v in arrays]
    mine, theirs = make_mine(params), make_theirs(tparams)
    rng = np.random.default_rng(1)
    for step in range(steps):
        if lr_changes and step in lr_changes:
            mine.lr = lr_changes[step]
            for group in theirs.param_groups:
                group["lr"] = lr_changes[step]
        grads = _grads(rng)
        for t, g in zip(tparams, [v for p in grads for v in p.values()], strict=True):
            t.grad = torch.tensor(g)
        mine.step(grads)
        theirs.step()
        now = [v for p in params for v in p.values()]
        assert all(a is b for a, b in zip(now, arrays, strict=True)), "updates must be in place"
        for i, (a, t) in enumerate(zip(arrays, tparams, strict=True)):
            np.testing.assert_allclose(
                a, t.detach().numpy(), rtol=TOL, atol=TOL, err_msg=f"step {step}, tensor {i}"
            )
    start = [v for p in _params() for v in p.values()]
    assert any(np.max(np.abs(a - s)) > 1e-3 for a, s in zip(arrays, start, strict=True))


@pytest.mark.parametrize(
    "lr,momentum,weight_decay",
    [(0.1, 0.0, 0.0), (0.05, 0.9, 0.0), (0.05, 0.0, 0.01), (0.02, 0.9, 5e-4), (0.3, 0.5, 0.1)],
)
def test_sgd_matches_torch(lr, momentum, weight_decay):
    _run_both(
        torch,
        lambda p: SGD(p, lr=lr, momentum=momentum, weight_decay=weight_decay),
        lambda t: torch.optim.SGD(t, lr=lr, momentum=momentum, weight_decay=weight_decay),
        lr_changes={3: lr / 10},
    )


@pytest.mark.parametrize(
    "lr,betas,eps,weight_decay",
    [
        (1e-3, (0.9, 0.999), 1e-8, 0.0),
        (1e-2, (0.8, 0.99), 1e-6, 0.0),
        (5e-3, (0.9, 0.999), 1e-8, 1e-2),
        (1e-1, (0.5, 0.9), 1e-3, 0.1),
    ],
)
def test_adam_matches_torch(lr, betas, eps, weight_decay):
    _run_both(
        torch,
        lambda p: Adam(p, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay),
        lambda t: torch.optim.Adam(
            t, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False
        ),
        steps=8,
        lr_changes={4: lr / 3},
    )


def test_sgd_momentum_by_hand():
    p = [{"w": np.array([1.0, -2.0])}]
    opt = SGD(p, lr=0.1, momentum=0.9)
    opt.step([{"w": np.array([1.0, 1.0])}])  # v = g = [1, 1]
    np.testing.assert_allclose(p[0]["w"], [0.9, -2.1], rtol=0, atol=1e-15)
    opt.step([{"w": np.array([0.0, 2.0])}])  # v = 0.9*[1, 1] + [0, 2] = [0.9, 2.9]
    np.testing.assert_allclose(p[0]["w"], [0.81, -2.39], rtol=0, atol=1e-15)


def test_adam_first_step_is_lr_times_sign():
    p = [{"w": np.array([0.0, 1.0, -1.0])}]
    Adam(p, lr=0.01, eps=0.0).step([{"w": np.array([3.0, -0.5, 1e-3])}])
    np.testing.assert_allclose(p[0]["w"], [-0.01, 1.01, -1.01], rtol=0, atol=1e-15)


def test_make_optimizer():
    p = _params()
    adam = make_optimizer("adam", p, lr=0.01, weight_decay=0.1)
    assert isinstance(adam, Adam) and adam.lr == 0.01 and adam.weight_decay == 0.1
    sgd = make_optimizer("sgd", p, lr=0.1)
    assert isinstance(sgd, SGD) and sgd.momentum == 0.9 and sgd.lr == 0.1
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", p, lr=0.1)


# --------------------------------------------------------------------------- schedules


def test_schedule_constant_and_step():
    assert [schedule_lr("constant", 0.1, e, 8) for e in range(8)] == [0.1] * 8
    step = [schedule_lr("step", 1.0, e, 8) for e in range(8)]
    assert step == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01], rel=1e-12)
    step10 = [schedule_lr("step", 0.5, e, 10) for e in range(10)]  # milestones 5 and 7
    assert step10 == pytest.approx([0.5] * 5 + [0.05] * 2 + [0.005] * 3, rel=1e-12)


def test_schedule_cosine_with_warmup():
    lrs = [schedule_lr("cosine", 0.2, e, 5, warmup=1) for e in range(5)]
    expected = [0.1, 0.2] + [0.1 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    warm = [schedule_lr("cosine", 1.0, e, 10, warmup=3) for e in range(4)]
    assert warm == pytest.approx([0.25, 0.5, 0.75, 1.0], rel=1e-12)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))  # decays after warmup
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        schedule_lr("linear", 0.1, 0, 5)


def test_schedules_match_torch_schedulers():
    epochs, base = 12, 0.3

    def torch_lrs(make):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
        sched = make(opt)
        out = []
        for _ in range(epochs):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    cosine = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs))
    mine = [schedule_lr("cosine", base, e, epochs, warmup=0) for e in range(epochs)]
    assert mine == pytest.approx(cosine, rel=1e-9, abs=1e-15)
    milestones = [epochs // 2, 3 * epochs // 4]
    step = torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones, gamma=0.1))
    mine = [schedule_lr("step", base, e, epochs) for e in range(epochs)]
    assert mine == pytest.approx(step, rel=1e-12)
