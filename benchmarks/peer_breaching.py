"""Side by side with the reference: breaching's Inverting Gradients and ours, same case.

Needs a second environment with PyPI ``breaching`` (0.1.2) beside the same torch, e.g.

    python3 -m venv .peer-venv
    .peer-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 breaching

then, from this project's environment:

    python benchmarks/peer_breaching.py --peer-python .peer-venv/bin/python \
        --model ConvNet --iterations 200 --num-images 8 --image-seed 0 --out peer.json

Images are not hand-picked: ``--num-images`` (default 8) are drawn as the first entries of a
permutation, seeded by ``--image-seed``, of the whole test split under ``--root`` (default
../shared/data/cifar10-mini/test, ImageFolder layout; labels are the alphabetical class
indices, which are CIFAR-10's). Per image the difference ours - breaching varies by several
dB, so a mean over fewer than 8 images says little (a warning is printed).
``--images`` is an explicit override with hand-picked files (relative to ``--root``), for
debugging only.

For each image, breaching builds its model (seeded by ``--seed``, untrained), the server
payload and the user's shared gradient with its own classes and runs its IG (cosine, TV 0.2,
signed Adam, boxed, step decay, 1 restart). The very same model (exported with
``torch.export`` after the user loaded the payload: the same graph of aten operations on our
side), gradient and iteration count then go to our ``ig``. Printed: one row per image
(PSNR/SSIM of both, with our metrics on both; their PSNR difference; seconds per iteration of
both and ours over one plain training step), then the mean PSNR difference (ours - breaching)
with its standard deviation, min/max and a 95% percentile-bootstrap interval that resamples
images (n = number of images), and the time-per-iteration ratio. ``--out`` writes the same
as JSON.
Targets: our PSNR >= breaching's - 0.5 dB on average; our time per iteration <= 0.8x
breaching's and <= 4x a training step. Stretch: breaching's PSNR in at most half its
iterations (``--our-iterations 500 --iterations 1000``). ``--together N`` then attacks all
the images at once with our IG (one batched problem, ``attacks.batched_updates``), N
iterations each, and prints its mean PSNR and wall time per image beside breaching's
(target: breaching's 1,000-iteration PSNR in at most a third of its time per image, 8
images together). Figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CIFAR10_MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-mini"
MEAN = (0.4914672, 0.4822617, 0.4467702)
STD = (0.2470322, 0.2434851, 0.2615879)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
MIN_IMAGES = 8  # below this a mean difference is within a +-1.5 dB band of chance
TARGET_DB = -0.5  # ours >= breaching - 0.5 dB on average
BOOTSTRAP_SAMPLES = 10_000


def split_files(root: Path) -> list[str]:
    """Every image of an ImageFolder split, as ``class/file`` relative to ``root``, sorted."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if classes != CLASSES:
        raise ValueError(f"{root}: expected the CIFAR-10 class folders {CLASSES}, found {classes}")
    files = [f"{c}/{f.name}" for c in classes for f in sorted((root / c).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"{root}: no images")
    return files


def draw_images(root: Path, count: int, seed: int) -> list[str]:
    """``count`` images of the whole split: the head of a permutation seeded by ``seed``."""
    files = split_files(root)
    if not 0 < count <= len(files):
        raise ValueError(f"--num-images must be in 1..{len(files)} for {root}, got {count}")
    order = np.random.default_rng(seed).permutation(len(files))
    return [files[i] for i in order[:count]]


def summarize(rows: list[dict]) -> dict:
    """Mean PSNR difference (ours - breaching) over images with its spread: standard
    deviation, min/max and a 95% percentile-bootstrap interval resampling images."""
    from scipy.stats import bootstrap

    diff = np.array([r["our_psnr"] - r["breaching_psnr"] for r in rows], dtype=float)

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    if len(diff) >= 2 and np.ptp(diff) > 0:
        ci = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=BOOTSTRAP_SAMPLES,
                       method="percentile", rng=np.random.default_rng(0)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    else:
        low = high = float(diff.mean())
    return {
        "n_images": len(rows), "resampled_unit": "image",
        "breaching_psnr_mean": mean("breaching_psnr"), "our_psnr_mean": mean("our_psnr"),
        "breaching_ssim_mean": mean("breaching_ssim"), "our_ssim_mean": mean("our_ssim"),
        "psnr_diff_mean": float(diff.mean()),
        "psnr_diff_std": float(diff.std(ddof=1)) if len(diff) > 1 else 0.0,
        "psnr_diff_min": float(diff.min()), "psnr_diff_max": float(diff.max()),
        "psnr_diff_ci95": [low, high], "bootstrap": f"percentile, {BOOTSTRAP_SAMPLES} resamples",
        "target_db": TARGET_DB, "target_met": bool(diff.mean() >= TARGET_DB),
        "breaching_s_per_it_mean": mean("breaching_s_per_it"),
        "our_s_per_it_mean": mean("our_s_per_it"), "step_s_mean": mean("step_s"),
        "time_ratio": mean("our_s_per_it") / mean("breaching_s_per_it"),
        "our_it_over_step": mean("our_s_per_it") / mean("step_s"),
    }


def load_image(root: Path, relative: str) -> tuple[torch.Tensor, int]:
    """A test image in [0, 1] and its CIFAR-10 label (ImageFolder's alphabetical order)."""
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    path = root / relative
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
    from dgp.metrics import image_metrics
    from dgp.types import SharedGradient

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", help="python of the environment with breaching")
    parser.add_argument("--model", default="ConvNet", choices=["ConvNet", "resnet18"])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--our-iterations", type=int,
                        help="iterations of ours (default: --iterations); e.g. half of them "
                             "for the stretch target: breaching's PSNR in <= half the steps")
    parser.add_argument("--seed", type=int, default=0, help="breaching's model seed")
    parser.add_argument("--root", type=Path, default=CIFAR10_MINI / "test",
                        help="test split, ImageFolder layout (default: cifar10-mini/test)")
    parser.add_argument("--image-seed", type=int, default=0,
                        help="seed of the permutation of the whole split the images are "
                             "drawn from")
    parser.add_argument("--num-images", type=int, default=MIN_IMAGES,
                        help=f"images drawn (default {MIN_IMAGES}; fewer prints a warning)")
    parser.add_argument("--images", nargs="+", metavar="CLASS/FILE",
                        help="OVERRIDE, debugging only: hand-picked files relative to --root "
                             "instead of the seeded draw")
    parser.add_argument("--out", type=Path, help="write per-image rows and summary as JSON")
    parser.add_argument("--together", type=int, metavar="ITERATIONS",
                        help="then our IG on all the images at once, this many iterations "
                             "each: its mean PSNR and wall time per image beside breaching's")
    parser.add_argument("--peer-job", help=argparse.SUPPRESS)  # internal: the peer side
    return parser


def _chosen_images(args: argparse.Namespace,
                   parser: argparse.ArgumentParser) -> tuple[list[str], str]:
    """The images to compare on, and how they were chosen."""
    if args.images:
        names, drawn = args.images, "hand-picked (--images override)"
    else:
        try:
            names = draw_images(args.root, args.num_images, args.image_seed)
        except ValueError as error:
            parser.error(str(error))
        drawn = (f"drawn by --image-seed {args.image_seed} from all "
                 f"{len(split_files(args.root))} images of {args.root}")
    if len(names) < MIN_IMAGES:
        print(f"WARNING: {len(names)} images (< {MIN_IMAGES}): per image the difference spans "
              f"several dB, so this mean can land anywhere in a +-1.5 dB band", file=sys.stderr)
    print(f"images {drawn}: {' '.join(names)}", flush=True)

    return names, drawn


def _compare(args: argparse.Namespace, names: list[str], our_iterations: int) -> list[dict]:
    """Both attacks on each image, one printed row each; with ``--together``, ours then
    attacks all the images at once (one batched problem) and prints that too."""
    header = (f"{'image':<20} {'label':>5} {'brch dB':>8} {'ours dB':>8} {'diff dB':>8} "
              f"{'brch SSIM':>9} {'ours SSIM':>9} {'brch s/it':>9} {'ours s/it':>9} "
              f"{'step s':>7}")
    print(header, flush=True)
    rows, cases = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(names):
            image, label = load_image(args.root, name)
            inputs, labels = normalize(image), torch.tensor([label])
            job = {"model": args.model, "seed": args.seed, "iterations": args.iterations,
                   "images": f"{tmp}/images{index}.pt", "out": f"{tmp}/peer{index}.pt",
                   "model_out": f"{tmp}/model{index}.pt2"}
            torch.save({"inputs": inputs, "labels": labels}, job["images"])
            peer = subprocess.run([args.peer_python, __file__, "--peer-job", json.dumps(job)],
                                  capture_output=True, text=True)
            if peer.returncode:
                sys.stderr.write(peer.stderr)
                raise SystemExit(f"breaching's side failed on {name} (exit {peer.returncode})")
            results = torch.load(job["out"], weights_only=True)
            cases.append((Path(job["model_out"]), results, inputs))
            row = our_side(Path(job["model_out"]), results, inputs, labels, our_iterations)
            row = {"image": name, "label": label, **row,
                   "breaching_s_per_it": results["seconds"] / args.iterations}
            row["psnr_diff"] = row["our_psnr"] - row["breaching_psnr"]
            rows.append(row)
            print(f"{name:<20} {label:>5} {row['breaching_psnr']:>8.2f} {row['our_psnr']:>8.2f} "
                  f"{row['psnr_diff']:>+8.2f} {row['breaching_ssim']:>9.3f} "
                  f"{row['our_ssim']:>9.3f} {row['breaching_s_per_it']:>9.3f} "
                  f"{row['our_s_per_it']:>9.3f} {row['step_s']:>7.3f}", flush=True)
        if args.together:
            together = our_side_together(cases, args.together)
            for row, (psnr, ssim) in zip(rows, together["images"], strict=True):
                row["together_psnr"], row["together_ssim"] = psnr, ssim
                row["together_s_per_image"] = together["s_per_image"]
    return rows


def our_side_together(cases: list[tuple[Path, dict, torch.Tensor]], iterations: int) -> dict:
    """Our IG on every image's case at once (``reconstruct_all``: one batched problem),
    ``iterations`` each: per image its PSNR and SSIM, and the wall time per image."""
    from attacks import AttackTarget, create_attack
    from dgp.metrics import image_metrics
    from dgp.types import SharedGradient

    box = (normalize(torch.zeros(1, 3, 1, 1)), normalize(torch.ones(1, 3, 1, 1)))
    targets = []
    for exported, results, _ in cases:
        gradients = results["gradients"]
        targets.append(AttackTarget(torch.export.load(str(exported)).module(),
                                    SharedGradient(gradients, [None] * len(gradients)), 1,
                                    (3, 32, 32), 10, box))
    attack = create_attack("ig", {"iterations": iterations, "tv_weight": 0.2, "lr": 0.1})
    if not attack.solves_together(targets):
        raise SystemExit("these cases cannot be solved as one batched problem")
    began = time.perf_counter()
    found = attack.reconstruct_all(targets, [torch.Generator().manual_seed(0) for _ in cases])
    seconds = time.perf_counter() - began
    scores = [image_metrics(denormalize(r.images), denormalize(inputs))
              for r, (_, _, inputs) in zip(found, cases, strict=True)]
    return {"images": [(s["psnr"][0], s["ssim"][0]) for s in scores],
            "s_per_image": seconds / len(cases)}


def _print_summary(args: argparse.Namespace, rows: list[dict], our_iterations: int) -> dict:
    summary = summarize(rows)
    low, high = summary["psnr_diff_ci95"]
    print(f"\n{args.model}, breaching {args.iterations} iterations, ours {our_iterations}, "
          f"{len(rows)} images, torch threads {torch.get_num_threads()}")
    print(f"mean PSNR: breaching {summary['breaching_psnr_mean']:.2f} dB, ours "
          f"{summary['our_psnr_mean']:.2f} dB; mean SSIM: breaching "
          f"{summary['breaching_ssim_mean']:.3f}, ours {summary['our_ssim_mean']:.3f}")
    print(f"PSNR difference ours - breaching: mean {summary['psnr_diff_mean']:+.2f} dB, "
          f"sd {summary['psnr_diff_std']:.2f}, min {summary['psnr_diff_min']:+.2f}, max "
          f"{summary['psnr_diff_max']:+.2f}, 95% bootstrap interval [{low:+.2f}, {high:+.2f}] "
          f"(unit resampled = image, n = {len(rows)}, {summary['bootstrap']})")
    print(f"target mean difference >= {TARGET_DB:+.1f} dB: "
          f"{'met' if summary['target_met'] else 'NOT met'}")
    print(f"seconds per iteration: breaching {summary['breaching_s_per_it_mean']:.3f}, ours "
          f"{summary['our_s_per_it_mean']:.3f} (ratio {summary['time_ratio']:.2f})")
    print(f"ours per iteration / one training step: {summary['our_it_over_step']:.2f}")
    if "together_psnr" in rows[0]:
        breaching_image = summary["breaching_s_per_it_mean"] * args.iterations
        summary["together"] = {
            "iterations": args.together,
            "psnr_mean": float(np.mean([r["together_psnr"] for r in rows])),
            "s_per_image": rows[0]["together_s_per_image"],
            "time_ratio": rows[0]["together_s_per_image"] / breaching_image}
        together = summary["together"]
        print(f"ours, all {len(rows)} images at once, {args.together} iterations: mean PSNR "
              f"{together['psnr_mean']:.2f} dB (breaching {summary['breaching_psnr_mean']:.2f}"
              f" at {args.iterations}); {together['s_per_image']:.1f} s per image vs "
              f"breaching's {breaching_image:.1f} s ({together['time_ratio']:.2f}x; target: "
              "breaching's PSNR in <= 1/3 of its time)")
    return summary


def _write_record(args: argparse.Namespace, rows: list[dict], summary: dict, drawn: str,
                  our_iterations: int) -> None:
    record = {"model": args.model, "iterations": args.iterations,
              "our_iterations": our_iterations, "seed": args.seed,
              "image_seed": None if args.images else args.image_seed,
              "root": str(args.root), "images_drawn": drawn,
              "torch_threads": torch.get_num_threads(), "rows": rows, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, args.out)


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    if args.peer_job:
        peer_side(json.loads(args.peer_job))
        return
    if not args.peer_python:
        parser.error("--peer-python is required (see the module docstring)")
    names, drawn = _chosen_images(args, parser)
    our_iterations = args.our_iterations or args.iterations
    rows = _compare(args, names, our_iterations)
    summary = _print_summary(args, rows, our_iterations)
    if args.out:
        _write_record(args, rows, summary, drawn, our_iterations)

if __name__ == "__main__":
    sys.exit(main())
