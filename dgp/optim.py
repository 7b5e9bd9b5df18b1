"""Adam and SGD on torch's own update kernels, and torch's L-BFGS, without
``torch.optim.Optimizer``'s constructor.

Why: the first call into any ``torch.optim.Optimizer`` (its ``add_param_group``, ``step`` and
``zero_grad`` are wrapped to keep ``torch.compile`` out) imports ``torch._dynamo``, about 1 s
of every job's start on a 2-core CPU, for a compiler no job uses. These classes keep the
state ``torch.optim.Adam`` / ``torch.optim.SGD`` keep (per-parameter step count, moments,
momentum buffer), with their defaults, and hand it to the functions those optimizers call
(``torch.optim.adam.adam``, ``torch.optim.sgd.sgd``), so the iterates are the same bit for
bit (``tests/test_optim.py`` checks this against torch's classes). ``lr`` is a plain
attribute; the two schedules below set it after each step as torch's ``MultiStepLR`` and
``LambdaLR`` set a param group's lr (torch's schedulers accept only torch's optimizers).
L-BFGS has no such kernel: ``lbfgs`` returns torch's own ``LBFGS``, with the fields its
``step`` reads, set without the constructor.
"""

from __future__ import annotations

import inspect
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from dgp.lazy import torch


class _Optimizer:
    """The parameters and their state; ``step`` reads each parameter's ``.grad``."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.lr = lr
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        """Drop the gradients (set to None, as torch's ``zero_grad()`` by default)."""
        for p in self.params:
            p.grad = None

    def _with_grad(self) -> list[torch.Tensor]:
        return [p for p in self.params if p.grad is not None]


class Adam(_Optimizer):
    """``torch.optim.Adam(params, lr, betas, eps, weight_decay, fused)``, its other flags at
    their defaults (no amsgrad, not maximising; unfused: the kernel torch picks for the
    device). ``fused`` is several times faster on a CPU for large parameters (an MLP's
    weights), with iterates equal to the unfused ones within float rounding."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, fused: bool = False) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.fused = fused

    def step(self) -> None:
        """One Adam step on every parameter that has a gradient."""
        from torch.optim.adam import adam  # a torch module: not read by validation

        params = self._with_grad()
        for p in params:
            if p not in self.state:  # torch keeps the step count as a CPU float tensor
                self.state[p] = {"step": torch.tensor(0.0, dtype=torch.get_default_dtype()),
                                 "exp_avg": torch.zeros_like(p),
                                 "exp_avg_sq": torch.zeros_like(p)}
        states = [self.state[p] for p in params]
        with torch.no_grad():
            adam(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                 [s["exp_avg_sq"] for s in states], [], [s["step"] for s in states],
                 has_complex=any(torch.is_complex(p) for p in params), amsgrad=False,
                 beta1=self.betas[0], beta2=self.betas[1], lr=self.lr,
                 weight_decay=self.weight_decay, eps=self.eps, maximize=False,
                 **({"fused": True} if self.fused else {}))


class SGD(_Optimizer):
    """``torch.optim.SGD(params, lr, momentum, weight_decay)``, no dampening or Nesterov."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay

    def step(self) -> None:
        """One SGD step; the momentum buffer starts as the first step's gradient."""
        from torch.optim.sgd import sgd

        params = self._with_grad()
        # as torch.optim.SGD: momentum buffers are passed (and kept) only with momentum
        buffers = ([self.state.get(p, {}).get("momentum_buffer") for p in params]
                   if self.momentum != 0 else [])
        with torch.no_grad():
            sgd(params, [p.grad for p in params], buffers,
                has_sparse_grad=any(p.grad.is_sparse for p in params),
                weight_decay=self.weight_decay, momentum=self.momentum, lr=self.lr,
                dampening=0.0, nesterov=False, maximize=False)
        if self.momentum != 0:
            for p, buffer in zip(params, buffers, strict=True):
                self.state[p] = {"momentum_buffer": buffer}


# The hook tables ``Optimizer.__init__`` sets: read by a patched ``step`` (torch patches a
# class's step when its constructor first runs) and by ``state_dict``; kept, empty.
_HOOK_TABLES = ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks",
               "_optimizer_state_dict_pre_hooks", "_optimizer_state_dict_post_hooks",
               "_optimizer_load_state_dict_pre_hooks", "_optimizer_load_state_dict_post_hooks")


def lbfgs(params: Iterable[torch.Tensor], **options: Any) -> torch.optim.LBFGS:
    """``torch.optim.LBFGS(params, **options)``: torch's class, ``step`` and defaults, with the
    fields ``LBFGS.__init__`` sets (one param group, the state, ``_params``) but not through
    it, whose ``Optimizer.__init__`` imports the compiler. ``tests/test_optim.py`` checks the
    iterates against torch's constructor, so a torch release whose ``step`` reads more fails
    there. Call no ``zero_grad`` on it (that imports the compiler too): set ``.grad``."""
    arguments = inspect.signature(torch.optim.LBFGS.__init__).bind(None, None, **options)
    arguments.apply_defaults()
    defaults = {k: v for k, v in arguments.arguments.items() if k not in ("self", "params")}
    if defaults["max_eval"] is None:  # as LBFGS.__init__
        defaults["max_eval"] = defaults["max_iter"] * 5 // 4
    optimizer = torch.optim.LBFGS.__new__(torch.optim.LBFGS)
    for hooks in _HOOK_TABLES:
        setattr(optimizer, hooks, OrderedDict())
    optimizer.defaults = defaults
    optimizer.state = defaultdict(dict)
    optimizer.param_groups = [{"params": list(params), **defaults}]
    optimizer._params = optimizer.param_groups[0]["params"]
    optimizer._numel_cache = None
    if not optimizer._params:
        raise ValueError("optimizer got an empty parameter list")
    return optimizer


class MultiStepLR:
    """``torch.optim.lr_scheduler.MultiStepLR``: after the step that reaches a milestone the
    lr is multiplied by ``gamma`` (``gamma ** k`` for a milestone listed k times)."""

    def __init__(self, optimizer: _Optimizer, milestones: Iterable[int], gamma: float) -> None:
        self.optimizer, self.milestones, self.gamma = optimizer, Counter(milestones), gamma
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps in self.milestones:
            self.optimizer.lr = self.optimizer.lr * self.gamma ** self.milestones[self.steps]


class LambdaLR:
    """``torch.optim.lr_scheduler.LambdaLR``: the lr after ``t`` steps is the initial lr
    times ``factor(t)``."""

    def __init__(self, optimizer: _Optimizer, factor: Callable[[int], float]) -> None:
        self.optimizer, self.factor, self.initial, self.steps = optimizer, factor, optimizer.lr, 0
        optimizer.lr = self.initial * factor(0)

    def step(self) -> None:
        self.steps += 1
        self.optimizer.lr = self.initial * self.factor(self.steps)
