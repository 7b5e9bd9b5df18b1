"""Side by side with the reference: breaching's Inverting Gradients and ours, same case.

Needs a second environment with PyPI ``breaching`` (0.1.2) beside the same torch, e.g.

    python3 -m venv .peer-venv
    .peer-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 breaching

then, from this project's environment:

    python benchmarks/peer_breaching.py --peer-python .peer-venv/bin/python \
        --model ConvNet --iterations 1000 --images cat/0000.jpg ship/0000.jpg truck/0000.jpg

For each CIFAR-10 test image (from ../shared/data/cifar10-mini), breaching builds its model
(seeded, untrained), the server payload and the user's shared gradient with its own classes
and runs its IG (cosine, TV 0.2, signed Adam, boxed, step decay, 1 restart). The very same
model (exported with ``torch.export`` after the user loaded the payload: the same graph of
aten operations on our side), gradient and iteration count then go to our ``ig``. Printed:
PSNR/SSIM of both (our metrics on both), seconds per iteration of both and their ratio,
and ours over one plain training step of the model.
Targets: our PSNR >= breaching's - 0.5 dB on average; our time per iteration <= 0.8x
breaching's and <= 4x a training step. Stretch: breaching's PSNR in at most half its
iterations (``--our-iterations 500 --iterations 1000``). Figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CIFAR10_MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-mini"
MEAN = (0.4914672, 0.4822617, 0.4467702)
STD = (0.2470322, 0.2434851, 0.2615879)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def load_image(relative: str) -> tuple[torch.Tensor, int]:
    """A test image in [0, 1] and its CIFAR-10 label (ImageFolder's alphabetical order)."""
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    path = CIFAR10_MINI / "test" / relative
    return to_tensor(Image.open(path).convert("RGB")).unsqueeze(0), CLASSES.index(path.parent.name)


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)


def peer_side(job: dict) -> None:
    """Runs in breaching's environment: build the case with its classes, attack, export."""
    import breaching
    from breaching.cases.users import UserSingleStep

    setup = {"device": torch.device("cpu"), "dtype": torch.float}
    cfg = breaching.get_case_config("1_single_image_small", overrides=[
        f"model={job['model']}", "server.model_state=untrained", "user.provide_labels=True"])
    breaching.utils.set_random_seed(job["seed"])
    model, loss = breaching.cases.construct_model(cfg.model, cfg.data, pretrained=False)
    server = breaching.cases.construct_server(model, loss, cfg, setup)
    model = server.vet_model(model)
    payload = server.distribute_payload()
    user = UserSingleStep(model, loss, None, setup, idx=0, cfg_user=cfg.user)
    user.data_key = "inputs"
    images = torch.load(job["images"], weights_only=True)
    shared, _ = user.compute_local_updates(
        payload, custom_data={"inputs": images["inputs"], "labels": images["labels"]})
    cfg_attack = breaching.get_attack_config(
        "invertinggradients", overrides=[f"optim.max_iterations={job['iterations']}"])
    attacker = breaching.attacks.prepare_attack(server.model, server.loss, cfg_attack, setup)
    began = time.perf_counter()
    reconstruction, _ = attacker.reconstruct([payload], [shared], server.secrets, dryrun=False)
    seconds = time.perf_counter() - began
    user.model.eval()
    torch.export.save(torch.export.export(user.model, (images["inputs"],)), job["model_out"])
    torch.save({"gradients": [g.detach() for g in shared["gradients"]],
                "reconstruction": reconstruction["data"].detach(), "seconds": seconds},
               job["out"])


def our_side(exported: Path, results: dict, inputs: torch.Tensor, labels: torch.Tensor,
             iterations: int) -> dict:
    """Our IG on breaching's exported model and shared gradient."""
    from attacks import AttackTarget, create_attack
    from defenses import SharedGradient
    from dgp.metrics import image_metrics

    model = torch.export.load(str(exported)).module()
    gradients = results["gradients"]
    assert [g.shape for g in gradients] == [p.shape for p in model.parameters()]
    shared = SharedGradient(gradients, [None] * len(gradients))
    box = (normalize(torch.zeros(1, 3, 1, 1)), normalize(torch.ones(1, 3, 1, 1)))
    target = AttackTarget(model, shared, 1, (3, 32, 32), 10, box)
    attack = create_attack("ig", {"iterations": iterations, "tv_weight": 0.2, "lr": 0.1})
    began = time.perf_counter()
    ours = attack.reconstruct(target, torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - began

    def step() -> None:  # one plain training step of the same model and batch
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        torch.autograd.grad(loss, list(model.parameters()))

    step()
    began = time.perf_counter()
    for _ in range(5):
        step()
    step_seconds = (time.perf_counter() - began) / 5
    original = denormalize(inputs)
    theirs = image_metrics(denormalize(results["reconstruction"]), original)
    mine = image_metrics(denormalize(ours.images), original)
    return {"breaching_psnr": theirs["psnr"][0], "breaching_ssim": theirs["ssim"][0],
            "our_psnr": mine["psnr"][0], "our_ssim": mine["ssim"][0],
            "our_s_per_it": seconds / iterations, "step_s": step_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", help="python of the environment with breaching")
    parser.add_argument("--model", default="ConvNet", choices=["ConvNet", "resnet18"])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--our-iterations", type=int,
                        help="iterations of ours (default: --iterations); e.g. half of them "
                             "for the stretch target: breaching's PSNR in <= half the steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", nargs="+",
                        default=["cat/0000.jpg", "ship/0000.jpg", "truck/0000.jpg"])
    parser.add_argument("--peer-job", help=argparse.SUPPRESS)  # internal: the peer side
    args = parser.parse_args()
    if args.peer_job:
        peer_side(json.loads(args.peer_job))
        return
    if not args.peer_python:
        parser.error("--peer-python is required (see the module docstring)")

    our_iterations = args.our_iterations or args.iterations
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.images:
            image, label = load_image(name)
            inputs, labels = normalize(image), torch.tensor([label])
            job = {"model": args.model, "seed": args.seed, "iterations": args.iterations,
                   "images": f"{tmp}/images.pt", "out": f"{tmp}/peer.pt",
                   "model_out": f"{tmp}/model.pt2"}
            torch.save({"inputs": inputs, "labels": labels}, job["images"])
            subprocess.run([args.peer_python, __file__, "--peer-job", json.dumps(job)],
                           check=True, capture_output=True, text=True)
            results = torch.load(job["out"], weights_only=True)
            row = our_side(Path(job["model_out"]), results, inputs, labels, our_iterations)
            row["breaching_s_per_it"] = results["seconds"] / args.iterations
            rows.append(row)
            print(f"{name}: breaching {row['breaching_psnr']:.2f} dB / SSIM "
                  f"{row['breaching_ssim']:.3f} at {row['breaching_s_per_it']:.3f} s/it; ours "
                  f"{row['our_psnr']:.2f} dB / {row['our_ssim']:.3f} at "
                  f"{row['our_s_per_it']:.3f} s/it; training step {row['step_s']:.3f} s")

    def mean(key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    print(f"\n{args.model}, breaching {args.iterations} iterations, ours {our_iterations}, "
          f"{len(rows)} images, "
          f"torch threads {torch.get_num_threads()}")
    print(f"mean PSNR: breaching {mean('breaching_psnr'):.2f} dB, ours {mean('our_psnr'):.2f} "
          f"dB (difference {mean('our_psnr') - mean('breaching_psnr'):+.2f} dB)")
    ratio = mean("our_s_per_it") / mean("breaching_s_per_it")
    print(f"seconds per iteration: breaching {mean('breaching_s_per_it'):.3f}, ours "
          f"{mean('our_s_per_it'):.3f} (ratio {ratio:.2f})")
    print(f"ours per iteration / one training step: {mean('our_s_per_it') / mean('step_s'):.2f}")


if __name__ == "__main__":
    sys.exit(main())
