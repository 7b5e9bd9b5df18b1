"""Throughput of gradient matching solved together vs one by one (printed, never asserted).

    python benchmarks/batched_attacks.py [--device auto] [--iterations 20]
                                         [--counts 1 4 16 64] [--cases digits cifar]

For K independent problems (each its own model draw and image, as a privacy job's cases),
Inverting Gradients runs them one by one (K ``reconstruct`` calls, the unbatched path) and
together (one ``reconstruct_all``: ``attacks.batched_updates``), on LeNet with 16x16 digits
(the default grid's case; passive IG undefended, and the defense-aware IG behind DGP 0.8,
each problem's own defense-aware distance applied in a loop) and on ConvNet with 32x32
cifar10-mini images (where ../shared/data/cifar10-mini exists). Printed per case and K:
problem-iterations per second of both and their ratio. On a GPU the CPU is measured as
well. Target: at K = 16 at least 4x the one-by-one throughput on the default case on 2 CPU
cores. The ratio to breaching's
time per iteration is ``benchmarks/peer_breaching.py --together``'s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from attacks import AttackTarget, create_attack
from defenses import create_defense
from dgp.data import ImageData, load_dataset
from dgp.device import resolve_device
from dgp.gradients import parameter_gradients
from dgp.models import build_model

CIFAR10_MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-mini"
DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}
CIFAR = {"name": "imagefolder", "model": "convnet", "root": str(CIFAR10_MINI),
         "mean": (0.4914672, 0.4822617, 0.4467702), "std": (0.2470322, 0.2434851, 0.2615879)}
# case -> (model, dataset, attack, defense and ratio)
CASES = {
    "digits": ("lenet", DIGITS, "ig", ("none", 0.0)),
    "digits-dgp": ("lenet", DIGITS, "ig_adaptive", ("dgp", 0.8)),
    "cifar": ("convnet", CIFAR, "ig", ("none", 0.0)),
}


def problems(model_name: str, data: ImageData, count: int, device: torch.device,
             defense: tuple[str, float] = ("none", 0.0)) -> list[AttackTarget]:
    """``count`` targets: image k of the test split under model draw k, FedSGD, its
    gradient shared through ``defense`` (name, ratio)."""
    shield = create_defense(*defense)
    zeros = torch.zeros(1, data.channels, 1, 1)
    box = (data.normalize(zeros).to(device), data.normalize(zeros + 1).to(device))
    targets = []
    for k in range(count):
        images, labels = data.samples([k % len(data.dataset)])
        model = build_model(model_name, data.channels, data.num_classes, data.image_size,
                            k).to(device).eval()
        gradients = parameter_gradients(model, data.normalize(images).to(device),
                                        labels.to(device))
        shared = shield.share_round([gradients], torch.Generator().manual_seed(k))[0]
        targets.append(AttackTarget(model, shared, 1, tuple(images.shape[1:]),
                                    data.num_classes, box, defense=shield))
    return targets


def streams(count: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(k) for k in range(count)]


def seconds(work, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began


def measure(case: str, counts: list[int], iterations: int, device: torch.device) -> None:
    model_name, spec, attack_name, defense = CASES[case]
    data = load_dataset(spec, "test")
    attack = create_attack(attack_name, {"iterations": iterations, "tv_weight": 0.0})
    warm = problems(model_name, data, 2, device, defense)
    attack.reconstruct_all(warm, [None, None])  # first calls pay for tracing and allocation
    attack.reconstruct(warm[0])
    print(f"\n{case}: {model_name} {data.image_size}x{data.image_size}, {attack_name} against "
          f"{defense[0]} {defense[1]:g}, {iterations} iterations, {device}")
    print(f"{'K':>4} {'one by one':>12} {'together':>12} {'ratio':>7}   (problem-iterations/s)")
    for count in counts:
        targets = problems(model_name, data, count, device, defense)
        alone = seconds(lambda targets=targets: [
            attack.reconstruct(t, g) for t, g in zip(targets, streams(len(targets)), strict=True)],
            device)
        together = seconds(lambda targets=targets: attack.reconstruct_all(
            targets, streams(len(targets))), device)
        work = count * iterations
        print(f"{count:>4} {work / alone:>12.1f} {work / together:>12.1f} "
              f"{alone / together:>6.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    device = resolve_device(args.device)
    devices = [device, torch.device("cpu")] if device.type != "cpu" else [device]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for case in args.cases:
        if CASES[case][1] is CIFAR and not CIFAR10_MINI.is_dir():
            print(f"\ncifar: skipped, {CIFAR10_MINI} not found")
            continue
        for each in devices:
            measure(case, args.counts, args.iterations, each)


if __name__ == "__main__":
    main()
