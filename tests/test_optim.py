"""Our Adam and SGD take exactly torch.optim's steps (they call the same kernels), and our
L-BFGS, torch's class built without its constructor, takes its steps."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from dgp import optim


def _iterates(make, lr_at, steps: int = 12) -> list[torch.Tensor]:
    """Minimise a fixed smooth function from a fixed start; the lr follows ``lr_at(step)``."""
    torch.manual_seed(0)
    weights = [torch.randn(5, 3).requires_grad_(True), torch.randn(3).requires_grad_(True)]
    optimizer = make(weights)
    trace = []
    for step in range(steps):
        loss = sum((w ** 2 + w.sin()).sum() for w in weights)
        optimizer.zero_grad()
        loss.backward()
        if isinstance(optimizer, torch.optim.Optimizer):
            optimizer.param_groups[0]["lr"] = lr_at(step)
        else:
            optimizer.lr = lr_at(step)
        optimizer.step()
        trace.extend(w.detach().clone() for w in weights)
    return trace


def _same(ours, theirs) -> None:
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def _schedule(step: int) -> float:
    return 0.1 * 0.1 ** (step // 5)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_takes_torchs_steps(weight_decay):
    _same(_iterates(lambda w: optim.Adam(w, lr=0.1, weight_decay=weight_decay), _schedule),
          _iterates(lambda w: torch.optim.Adam(w, lr=0.1, weight_decay=weight_decay),
                    _schedule))


def test_fused_adam_takes_torchs_fused_steps():
    _same(_iterates(lambda w: optim.Adam(w, lr=0.1, fused=True), _schedule),
          _iterates(lambda w: torch.optim.Adam(w, lr=0.1, fused=True), _schedule))


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 1e-4)])
def test_sgd_takes_torchs_steps(momentum, weight_decay):
    def ours(w):
        return optim.SGD(w, lr=0.1, momentum=momentum, weight_decay=weight_decay)

    def theirs(w):
        return torch.optim.SGD(w, lr=0.1, momentum=momentum, weight_decay=weight_decay)

    _same(_iterates(ours, _schedule), _iterates(theirs, _schedule))


def _lbfgs_iterates(make, steps: int = 4) -> list[torch.Tensor]:
    """L-BFGS steps on a fixed non-convex function, its gradient set as the attacks set it."""
    torch.manual_seed(0)
    weights = [torch.randn(4, 3).requires_grad_(True), torch.randn(3).requires_grad_(True)]
    optimizer = make(weights)

    def closure() -> torch.Tensor:
        loss = sum((w ** 2 + 3 * w.sin()).sum() + (w ** 4).sum() for w in weights)
        for weight, grad in zip(weights, torch.autograd.grad(loss, weights), strict=True):
            weight.grad = grad
        return loss

    trace = []
    for _ in range(steps):
        trace.append(optimizer.step(closure).detach().clone())
        trace.extend(w.detach().clone() for w in weights)
    return trace


@pytest.mark.parametrize("options", [{"lr": 1.0, "max_iter": 5},
                                     {"lr": 0.5, "max_iter": 7, "history_size": 3},
                                     {"line_search_fn": "strong_wolfe"}])
def test_lbfgs_takes_torchs_steps(options):
    # ours before and after torch's constructor has patched LBFGS.step (it does so once)
    before = _lbfgs_iterates(lambda w: optim.lbfgs(w, **options))
    theirs = _lbfgs_iterates(lambda w: torch.optim.LBFGS(w, **options))
    _same(before, theirs)
    _same(_lbfgs_iterates(lambda w: optim.lbfgs(w, **options)), theirs)
    assert optim.lbfgs([torch.ones(1)], **options).defaults == torch.optim.LBFGS(
        [torch.ones(1)], **options).defaults
    with pytest.raises(TypeError):
        optim.lbfgs([torch.ones(1)], iterations=3)


def test_a_parameter_without_gradient_is_left_alone():
    used, unused = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    optimizer = optim.Adam([used, unused], lr=0.5)
    used.sum().backward()
    optimizer.step()
    assert torch.equal(unused, torch.ones(2)) and not torch.equal(used, torch.ones(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)


def test_stepping_imports_no_compiler():
    """The reason these classes exist: torch.optim's first call imports torch._dynamo."""
    code = ("import sys, torch; from dgp import optim\n"
            "w = torch.ones(3, requires_grad=True)\n"
            "for o in (optim.Adam([w], lr=0.1), optim.SGD([w], lr=0.1, momentum=0.9)):\n"
            "    o.zero_grad(); (w ** 2).sum().backward(); o.step()\n"
            "def closure():\n"
            "    loss = (w ** 2).sum(); w.grad = torch.autograd.grad(loss, [w])[0]; return loss\n"
            "optim.lbfgs([w], max_iter=3).step(closure)\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def _lrs(optimizer, scheduler, steps: int = 20) -> list[float]:
    lrs = []
    for _ in range(steps):
        scheduler.step()
        lrs.append(optimizer.lr if isinstance(optimizer, optim.Adam)
                   else optimizer.param_groups[0]["lr"])
    return lrs


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step()`")
def test_schedules_follow_torchs_schedulers():
    """The same floats: MultiStepLR chains its decays (a repeated milestone counts twice),
    LambdaLR multiplies the initial lr."""
    milestones, w = [3, 7, 7, 12], [torch.ones(1, requires_grad=True)]
    ours, theirs = optim.Adam(w, lr=0.1), torch.optim.Adam(w, lr=0.1)
    assert _lrs(ours, optim.MultiStepLR(ours, milestones, gamma=0.3)) == _lrs(
        theirs, torch.optim.lr_scheduler.MultiStepLR(theirs, milestones, gamma=0.3))

    def factor(step):
        return min(1.0, (step + 1) / 5) * 0.97 ** step

    ours, theirs = optim.Adam(w, lr=0.1), torch.optim.Adam(w, lr=0.1)
    assert _lrs(ours, optim.LambdaLR(ours, factor)) == _lrs(
        theirs, torch.optim.lr_scheduler.LambdaLR(theirs, factor))
