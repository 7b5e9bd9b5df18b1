"""2-D convolutions whose double backward computes only what is asked for.

Gradient-matching attacks differentiate a gradient: the candidate's parameter gradient is
built with ``create_graph=True`` and then differentiated w.r.t. the images only. PyTorch's
stock double backward of a convolution (``_convolution_double_backward``) still computes
the weight gradient of the input-gradient term whenever that term exists, i.e. one wasted
convolution per layer after the first, about one pass in eight. Inside
``with lean_convolutions():`` every ``conv2d`` becomes three small autograd functions (the
convolution, its input gradient and its weight gradient, each the derivative of the others)
that ask the autograd engine which of their inputs it will actually need. The values are
the same kernels' values; only the unneeded convolution is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.overrides import TorchFunctionMode

aten = torch.ops.aten
Settings = tuple[tuple[int, int], tuple[int, int], tuple[int, int], int]


def _needed(ctx, index: int) -> bool:
    """Whether the running backward pass needs the gradient of input ``index``.

    Inputs reach these functions as views (see :func:`_lean_conv2d`), so the next node is
    never a leaf's accumulator, which the engine cannot be asked about inside
    ``autograd.grad``."""
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0]
    return node is not None and torch._C._will_engine_execute_node(node)


def _as_view(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return tensor.view_as(tensor) if tensor is not None and tensor.requires_grad else tensor


def _input_grad(grad: torch.Tensor, weight: torch.Tensor, input_shape: torch.Size,
                settings: Settings) -> torch.Tensor:
    stride, padding, dilation, groups = settings
    return aten.convolution_backward(
        grad, grad.new_empty(input_shape), weight, None, stride, padding, dilation, False,
        (0, 0), groups, (True, False, False))[0]


def _weight_grad(grad: torch.Tensor, inputs: torch.Tensor, weight_shape: torch.Size,
                 settings: Settings) -> torch.Tensor:
    stride, padding, dilation, groups = settings
    return aten.convolution_backward(
        grad, inputs, inputs.new_empty(weight_shape), None, stride, padding, dilation, False,
        (0, 0), groups, (False, True, False))[1]


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, weight, bias, settings: Settings):
        ctx.save_for_backward(inputs, weight)
        ctx.settings = settings
        stride, padding, dilation, groups = settings
        return aten.convolution(inputs, weight, bias, stride, padding, dilation, False,
                                (0, 0), groups)

    @staticmethod
    def backward(ctx, grad):
        inputs, weight = ctx.saved_tensors
        d_inputs = (_InputGrad.apply(grad, weight, inputs.shape, ctx.settings)
                    if _needed(ctx, 0) else None)
        d_weight = (_WeightGrad.apply(grad, inputs, weight.shape, ctx.settings)
                    if _needed(ctx, 1) else None)
        d_bias = grad.sum((0, 2, 3)) if _needed(ctx, 2) else None
        return d_inputs, d_weight, d_bias, None


class _InputGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, weight, input_shape, settings: Settings):
        ctx.save_for_backward(grad, weight)
        ctx.settings = settings
        return _input_grad(grad, weight, input_shape, settings)

    @staticmethod
    def backward(ctx, upstream):
        grad, weight = ctx.saved_tensors
        d_grad = (_Conv.apply(upstream, weight, None, ctx.settings)
                  if _needed(ctx, 0) else None)
        d_weight = (_WeightGrad.apply(grad, upstream, weight.shape, ctx.settings)
                    if _needed(ctx, 1) else None)
        return d_grad, d_weight, None, None


class _WeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, inputs, weight_shape, settings: Settings):
        ctx.save_for_backward(grad, inputs)
        ctx.settings = settings
        return _weight_grad(grad, inputs, weight_shape, settings)

    @staticmethod
    def backward(ctx, upstream):
        grad, inputs = ctx.saved_tensors
        d_grad = (_Conv.apply(inputs, upstream, None, ctx.settings)
                  if _needed(ctx, 0) else None)
        d_inputs = (_InputGrad.apply(grad, upstream, inputs.shape, ctx.settings)
                    if _needed(ctx, 1) else None)
        return d_grad, d_inputs, None, None


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def _lean_conv2d(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride=1, padding=0, dilation=1, groups: int = 1) -> torch.Tensor | None:
    """The lean convolution, or None where the stock one must run (string padding, no
    autograd, not a batched 2-D convolution)."""
    if (isinstance(padding, str) or inputs.dim() != 4 or not torch.is_grad_enabled()
            or not (inputs.requires_grad or weight.requires_grad)):
        return None
    settings = (_pair(stride), _pair(padding), _pair(dilation), groups)
    return _Conv.apply(_as_view(inputs), _as_view(weight), _as_view(bias), settings)


class lean_convolutions(TorchFunctionMode):  # noqa: N801 - used like a function: `with ...():`
    """Within this context, ``conv2d`` (eager modules and exported graphs alike) records the
    lean autograd functions; everything else runs unchanged."""

    _CONV2D = (torch.nn.functional.conv2d, aten.conv2d.default)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._CONV2D:
            result = _lean_conv2d(*args, **kwargs)
            if result is not None:
                return result
        return func(*args, **kwargs)
