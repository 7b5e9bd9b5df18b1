"""One privacy job: attack a defended gradient and score the reconstructions.

For one (dataset, model, defense, ratio, attack, seed), the seed fixes the attacked test
images; each case (one user's batch, or every aggregated user's) is one attack run with its
own model draw (the initial weights from the seed and the case's index, so that runs are
independent samples: the report's unit; a trained checkpoint is shared by the seed's runs,
``model_draw`` says so), its own stream for the defense's randomness and the user's other
data, and another for the attack's starting noise. Every attack of the grid therefore sees
the same defended update in a run, whatever it draws. The user's batch goes through the
defense's data transform (if any), its gradient through the defense; reconstructions are
always scored against the user's original images and labels, the data the defense is meant
to protect. Each batch of ``batch_size`` images
yields one shared gradient and one attack; every image becomes one row. Writes a JSON file
with the rows and a PNG with originals (top row) over reconstructions (bottom row), both
atomically.

Usable by hand: ``python -m jobs.privacy --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attacks import Attack, AttackTarget, create_attack
from defenses import Defense, create_defense
from dgp.attack import Reconstruction
from dgp.columns import checked_accounting
from dgp.communication import shared_cost
from dgp.data import ImageData, encoding_center, load_dataset
from dgp.device import resolve_device
from dgp.io import load_state_dict, write_json
from dgp.metrics import image_metrics, lpips_note
from dgp.models import build_model, dense_reference_bytes
from dgp.mosaic import save_grid
from dgp.protocol import Protocol
from dgp.scenario import attacked_indices, partner_draw, public_samples, with_training_images
from dgp.scoring import (
    match_labels,
    match_to_originals,
    psnr_by_iteration_share,
    reconstruction_scores,
)
from dgp.types import DrawSamples, PublicKnowledge, SharedGradient, UserBatch, summed
from dgp.updates import user_update
from jobs.options import add_setting_options
from jobs.plan import dataset_id
from jobs.quick_exit import run_and_exit


def _box(data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    zeros = torch.zeros(1, data.channels, 1, 1)
    return data.normalize(zeros), data.normalize(zeros + 1)


@dataclass
class _Job:
    """What every case of a job shares: data, defense, attack, the public knowledge."""

    data: ImageData
    model_spec: dict[str, Any]  # model name, device, trained state, public images (_case)
    defense: Defense
    attack: Attack
    reference_bytes: int
    indices: list[int]  # the attacked test images
    mean_image: torch.Tensor  # the public data's mean image, [1, C, H, W] in [0, 1]
    class_means: torch.Tensor  # the public data's per-class mean images, [K, C, H, W], [0, 1]
    seed: int
    center: torch.Tensor  # the normalised encoding's origin in pixel space (InstaHide)
    public: PublicKnowledge  # the public data's class means, for defense-aware attacks
    protocol: Protocol  # what each user computes and what the server sees of it


@dataclass
class _Case:
    """One attack run's own draws: the model the server sends, the defense's and user's
    stream (``noise``, ``draw``), the attack's stream, and which model draw it is."""

    model: torch.nn.Module
    noise: torch.Generator
    draw: DrawSamples
    attack_noise: torch.Generator
    stream: int
    model_draw: str


def case_stream(seed: int, case: int) -> int:
    """The seed of one case's draws (as the label job seeds its batches)."""
    return seed * 1_000_003 + case


def _case(job: _Job, case: int) -> _Case:
    """A case's model and streams; every role of a case gets the same draws (each role of
    a defense's round sees the same model)."""
    spec = job.model_spec
    stream = case_stream(job.seed, case)
    torch.manual_seed(stream)  # layers that sample (PRECODE) draw from the global generator
    state = spec["state"]
    model = build_model(spec["name"], job.data.channels, job.data.num_classes,
                        job.data.image_size, stream, job.defense.wrap_model)
    if state is not None:
        model.load_state_dict(state)
    model = model.to(spec["device"]).eval()
    if job.attack.active:
        model = job.attack.prepare_model(model, spec["public"]).eval()
    noise = torch.Generator().manual_seed(2 * stream)
    draw = partner_draw(job.data, job.indices, noise)
    model_draw = f"seed {job.seed}" if state is not None else f"seed {job.seed} case {case}"
    return _Case(model, noise, draw, torch.Generator().manual_seed(2 * stream + 1), stream,
                 model_draw)


def _setup(dataset: dict[str, Any], defense: str, ratio: float,
           defense_params: dict[str, Any], attack: str, attack_params: dict[str, Any],
           seed: int, num_images: int, torch_device: torch.device,
           checkpoint: str | Path | None, protocol: Protocol) -> _Job:
    data = load_dataset(dataset, split="test")
    indices = attacked_indices(len(data.dataset), num_images, seed)
    defense_impl = create_defense(defense, ratio, defense_params)
    checked_accounting(defense, defense_impl.accounting(releases=1))  # before any attack
    attack_impl = create_attack(attack, attack_params)
    train = load_dataset(dataset, split="train")
    state = load_state_dict(checkpoint) if checkpoint is not None else None
    return build_job(data, indices, train, dataset["model"], defense_impl, attack_impl, seed,
                     torch_device, state, protocol)


def build_job(data: ImageData, indices: list[int], train: ImageData, model: str,
              defense: Defense, attack: Attack, seed: int, torch_device: torch.device,
              state: dict[str, torch.Tensor] | None, protocol: Protocol) -> _Job:
    """A job attacking ``data``'s images ``indices`` (the users' split; the tuning job's
    is the attacker's own, jobs.tune), with public knowledge from ``train``."""
    public, public_labels = public_samples(train)
    model_spec = {"name": model, "device": torch_device, "state": state,
                  "public": data.normalize(public).to(torch_device)}
    reference = dense_reference_bytes(model, data.channels, data.num_classes,
                                      data.image_size)
    center = encoding_center(data.normalize, data.channels)
    knowledge = PublicKnowledge.from_samples(
        data.normalize(public).to(torch_device), public_labels.to(torch_device),
        data.num_classes, data.normalize(center).to(torch_device), data.normalize,
        data.denormalize)
    if attack.public_training_images:
        knowledge = with_training_images(knowledge, train, attack.public_training_images,
                                         torch_device)
    return _Job(data, model_spec, defense, attack, reference, indices,
                public.mean(0, keepdim=True), data.denormalize(knowledge.class_means.cpu()),
                seed, center, knowledge, protocol)


def roles(defense: Defense | type[Defense], protocol: Protocol | None = None) -> list[str]:
    """Whose upload a job attacks: with one user, each of the defense's roles (ADGP: the
    round's broadcaster, masked by its own band as DGP, and a member, masked by the band of
    another user's batch of the same round). Under aggregation the server sees only the
    sum: one role, whoever led the round."""
    if protocol is not None and protocol.users > 1:
        return ["aggregate"]
    return list(defense.roles)


def _update(case: _Case, protocol: Protocol, inputs: torch.Tensor,
            targets: torch.Tensor) -> list[torch.Tensor]:
    """One user's update under the job's protocol, on the CPU (where defenses run)."""
    return [u.cpu() for u in user_update(case.model, inputs, targets.to(inputs.device),
                                          protocol)]


def _leader_update(job: _Job, case: _Case,
                   count: int) -> tuple[list[torch.Tensor], UserBatch]:
    """The update of the round's leader when the attacked user follows it: another user of
    the round, whose batch is drawn from data the job does not attack."""
    images, labels = case.draw(count)
    other, other_targets = job.defense.transform_batch(images, labels, job.data.num_classes,
                                                       case.noise, case.draw, job.center)
    device = next(case.model.parameters()).device
    inputs = job.data.normalize(other).to(device)
    return _update(case, job.protocol, inputs, other_targets), UserBatch(case.model, inputs)


def _shared_gradient(job: _Job, case: _Case, inputs: list[torch.Tensor],
                     targets: list[torch.Tensor],
                     role: str) -> tuple[SharedGradient, SharedGradient]:
    """(what the server sees, the first user's upload) of the users' (``inputs``,
    ``targets``: one entry per user) defended updates, shared as in training
    (``Defense.share_round``, the first user leading): one user's upload, or under
    aggregation the sum of all of them. A follower role's user is shared beside a leader."""
    updates = [_update(case, job.protocol, x, y) for x, y in zip(inputs, targets, strict=True)]
    batches = [UserBatch(case.model, x) for x in inputs]
    if role in job.defense.roles[1:]:
        leader, leader_batch = _leader_update(job, case, len(inputs[0]))
        upload = job.defense.share_round([leader, updates[0]], case.noise,
                                         [leader_batch, batches[0]])[1]
        return upload, upload
    uploads = job.defense.share_round(updates, case.noise, batches)
    return (uploads[0] if len(uploads) == 1 else summed(uploads)), uploads[0]


def guessing_floor(job: _Job, case: _Case, images: torch.Tensor,
                   labels: list[int]) -> dict[str, list]:
    """What needs no reconstruction, per attacked image: the public mean image
    (``floor_psnr``, ``floor_ssim``); the public class-mean image of the label the attack
    recovered (``class_floor_psnr``, ``class_floor_ssim``: what the label alone gives away,
    which iDLG's sign rule reads off almost every single-image gradient); and a random start
    like the attacks' own, N(0, 1) in the normalised space, boxed (``start_psnr``; a stream
    of its own). An attack that does not beat the higher floor has not shown that more than
    the label leaked."""
    guess = image_metrics(job.mean_image.expand_as(images), images, lpips=False)
    by_class = image_metrics(job.class_means[labels], images, lpips=False)
    start = torch.randn(images.shape, generator=torch.Generator().manual_seed(case.stream))
    start = job.data.denormalize(start).clamp(0, 1)
    return {"floor_psnr": guess["psnr"], "floor_ssim": guess["ssim"],
            "class_floor_psnr": by_class["psnr"], "class_floor_ssim": by_class["ssim"],
            "start_psnr": image_metrics(start, images, lpips=False)["psnr"]}


def _user_inputs(job: _Job, case: _Case, images: torch.Tensor, labels: torch.Tensor,
                 ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Each aggregated user's part of the case through the defense's data transform: (the
    images as trained on, in pixel space; the model inputs and targets per user)."""
    users = job.protocol.users
    per_user = len(images) // users
    device = next(case.model.parameters()).device
    transformed, inputs, targets = [], [], []
    for user in range(users):
        part = slice(user * per_user, (user + 1) * per_user)
        shown, target_part = job.defense.transform_batch(
            images[part], labels[part], job.data.num_classes, case.noise, case.draw,
            job.center)
        transformed.append(shown)
        inputs.append(job.data.normalize(shown).to(device))
        targets.append(target_part)
    return torch.cat(transformed), inputs, targets


@dataclass
class _Attacked:
    """One attack run set up (one case in one role): what the attack gets and what its
    reconstruction is scored against."""

    case: _Case
    batch: int
    indices: list[int]
    role: str
    target: AttackTarget
    images: torch.Tensor  # the user's originals, pixel space
    labels: torch.Tensor
    transformed: torch.Tensor  # as trained on (the defense's data transform), pixel space
    upload: SharedGradient  # the first user's upload (its bytes)
    random_state: torch.Tensor  # torch's global generator when the attack begins


def _prepare(job: _Job, batch: int, batch_indices: list[int], role: str) -> _Attacked:
    """Set up one case (one user's batch, or every aggregated user's) in one role."""
    data = job.data
    case = _case(job, batch)
    images, labels = data.samples(batch_indices)
    transformed, inputs, targets = _user_inputs(job, case, images, labels)
    shared, upload = _shared_gradient(job, case, inputs, targets, role)
    oracle = labels.clone() if job.attack.needs_true_labels else None  # labels-known model
    # Further rounds of the same user on the same images, each with fresh defense draws
    # (the model as it was: each round is inverted on its own), for attacks that watch them.
    later = tuple(_shared_gradient(job, case, *_user_inputs(job, case, images, labels)[1:],
                                   role)[0]
                  for _ in range(job.attack.observed_rounds - 1))
    target = AttackTarget(case.model, shared, len(batch_indices) // job.protocol.users,
                          tuple(images.shape[1:]), data.num_classes, _box(data), job.defense,
                          job.public, oracle, job.protocol, later, role)
    return _Attacked(case, batch, batch_indices, role, target, images, labels, transformed,
                     upload, torch.get_rng_state())


def _reconstruct(job: _Job, runs: list[_Attacked]) -> list[tuple[Reconstruction, float]]:
    """Each run's reconstruction and attack seconds: all runs as one batched problem where
    the attack solves them together (the seconds shared evenly), else one after another,
    each from the global random state its case left (layers that sample draw from it)."""
    targets = [run.target for run in runs]
    if len(runs) > 1 and job.attack.solves_together(targets):
        began = time.perf_counter()
        results = job.attack.reconstruct_all(targets, [run.case.attack_noise for run in runs])
        seconds = (time.perf_counter() - began) / len(runs)
        return [(result, seconds) for result in results]
    timed = []
    for run in runs:
        torch.set_rng_state(run.random_state)
        began = time.perf_counter()
        result = job.attack.reconstruct(run.target, generator=run.case.attack_noise)
        timed.append((result, time.perf_counter() - began))
    return timed


def _score(job: _Job, run: _Attacked, result: Reconstruction, seconds: float,
           ) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """One run's rows and (clamped) reconstructions, matched to the originals."""
    data, images, labels, case = job.data, run.images, run.labels, run.case
    per_user = run.target.batch_size
    # Bytes are one user's upload (every user of a sum sends as many under each defense).
    cost = shared_cost(run.upload)
    recovered = data.denormalize(result.images.detach().cpu())
    recovered = recovered[match_to_originals(recovered, images)]
    rec_labels = match_labels(result.labels.cpu().tolist(), labels.tolist())
    metrics = {**reconstruction_scores(recovered, images, run.transformed.clamp(0, 1)),
               **guessing_floor(job, case, images, rec_labels),
               **psnr_by_iteration_share(data, result, images)}
    shared_row = {
        "role": run.role, "model_draw": case.model_draw, "status": result.status,
        "phase": result.phase, "attack_loss": result.loss, "attack_iterations": result.iterations,
        "attack_seconds": seconds / len(run.indices),
        "dense_bytes": job.reference_bytes, "model_dense_bytes": cost.dense_bytes,
        "sent_bytes": cost.sent_bytes, "index_bytes": cost.index_bytes,
        "index_entropy_bytes": round(cost.index_entropy_bytes, 1),
        "sent_values": cost.sent_values,
        "compression": job.reference_bytes / cost.sent_bytes if cost.sent_bytes else math.inf,
        **checked_accounting(job.defense.name, job.defense.accounting(releases=1)),
    }
    rows = [{"sample": index, "user": i // per_user, "batch": run.batch,
             "label": int(labels[i]), "predicted_label": rec_labels[i],
             "label_acc": float(rec_labels[i] == int(labels[i])),
             **{name: values[i] for name, values in metrics.items()}, **shared_row}
            for i, index in enumerate(run.indices)]
    return rows, recovered.clamp(0, 1).nan_to_num(0.0)


def attack_all(job: _Job, batch_size: int) -> tuple[list[dict[str, Any]], list[torch.Tensor],
                                                  dict[str, list[torch.Tensor]]]:
    """Attack every case of ``job`` (``batch_size`` images per user) in every role: the
    rows, the originals and each role's reconstructions, case by case. Every run is set
    up first, so that an attack that solves runs together gets them all at once."""
    indices = job.indices
    case = batch_size * job.protocol.users
    runs = [_prepare(job, batch, indices[start:start + case], role)
            for batch, start in enumerate(range(0, len(indices), case))
            for role in roles(job.defense, job.protocol)]
    rows, originals = [], {}
    reconstructions: dict[str, list[torch.Tensor]] = {
        role: [] for role in roles(job.defense, job.protocol)}
    for run, (result, seconds) in zip(runs, _reconstruct(job, runs), strict=True):
        run_rows, recovered = _score(job, run, result, seconds)
        rows += run_rows
        reconstructions[run.role].append(recovered)
        originals[run.batch] = run.images
    return rows, list(originals.values()), reconstructions


def run(dataset: dict[str, Any], defense: str, ratio: float, defense_params: dict[str, Any],
        attack: str, attack_params: dict[str, Any], seed: int, num_images: int,
        batch_size: int, device: str = "auto", model_round: int = 0,
        checkpoint: str | Path | None = None, protocol: dict[str, Any] | None = None,
        tuned: dict[str, Any] | None = None) -> tuple[dict[str, Any], torch.Tensor]:
    """Run the job; return its record (rows + notes) and the image grid (originals first,
    then the reconstructions of each role).

    The attacked model is each case's own initial draw, or the training ``checkpoint``
    written at ``model_round`` (shared by the job's cases). ``protocol`` (a
    ``dgp.protocol.Protocol`` as a dict; default FedSGD, one user) says what each user sends
    and how many users' updates are summed: each case attacked is ``users`` batches of
    ``batch_size`` images. ``tuned``: parameters a tuning job chose on public data
    (``tuned_params``), which override ``attack_params``.
    """
    torch_device = resolve_device(device)
    threat = Protocol.from_dict(protocol or {})
    job = _setup(dataset, defense, ratio, defense_params, attack,
                 {**attack_params, **(tuned or {})}, seed, num_images, torch_device,
                 checkpoint, threat)
    rows, originals, reconstructions = attack_all(job, batch_size)
    notes = [note for note in [lpips_note()] if note]
    diverged = sum(r["status"] == "diverged" for r in rows)
    if diverged:
        notes.append(f"{diverged} of {len(rows)} images: the attack diverged (non-finite loss)")
    record = {
        "job": {"dataset": dataset_id(dataset), "model": dataset["model"],
                "protocol": threat.id, "batch_size": batch_size, **threat.as_dict(),
                "labels": "given" if job.attack.needs_true_labels else "inferred",
                "server": "malicious" if job.attack.active else "honest-but-curious",
                "knowledge": ", ".join(job.attack.knowledge(
                    job.defense, threat, batch_size * threat.users)) or "none",
                "tuned": tuned is not None,
                "defense": defense, "ratio": ratio, "attack": attack,
                "model_round": model_round, "seed": seed,
                "device": str(torch_device)},
        "tuned_params": tuned or {},
        "rows": rows,
        "notes": notes,
    }
    grid = torch.cat([torch.cat(originals)] + [torch.cat(r) for r in reconstructions.values()])
    return record, grid


def tuned_params(path: str | Path) -> dict[str, Any]:
    """The parameters a tuning job's JSON (``jobs.tune``) chose."""
    return json.loads(Path(path).read_text())["tuned"]["params"]


def main(argv: list[str] | None = None) -> None:
    # The module's imports are done: from here on the process does the job's own work, whose
    # seconds (``job_seconds``) set apart what start-up costs (`benchmarks/startup.py`).
    began = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setting_options(parser)
    parser.add_argument("--attack", required=True)
    parser.add_argument("--attack-params", type=json.loads, default={})
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--round", type=int, default=0, dest="model_round",
                        help="training round of the attacked model (0: initial model)")
    parser.add_argument("--protocol", type=json.loads, default={},
                        help='the federated protocol as JSON (dgp.protocol), e.g. '
                             '\'{"algorithm": "fedavg", "local_steps": 2}\'; default FedSGD')
    parser.add_argument("--checkpoint", default=None,
                        help="state dict of the trained model at --round (from jobs.train)")
    parser.add_argument("--num-images", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--tuned", default=None,
                        help="a tuning job's JSON (jobs.tune): its parameters, chosen on "
                             "public data, override --attack-params")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--out-png", required=True)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    record, grid = run(args.dataset, args.defense, args.ratio, args.defense_params,
                       args.attack, args.attack_params, args.seed, args.num_images,
                       args.batch_size, args.device, args.model_round, args.checkpoint,
                       args.protocol, tuned_params(args.tuned) if args.tuned else None)
    save_grid(args.out_png, grid, per_row=args.num_images)
    record["job"]["job_seconds"] = round(time.perf_counter() - began, 3)
    write_json(args.out_json, record)
    for row in record["rows"]:
        print(f"sample {row['sample']}: psnr={row['psnr']:.2f} ssim={row['ssim']:.3f} "
              f"label_acc={row['label_acc']:.0f} status={row['status']} "
              f"({row['attack_seconds']:.1f}s)")
    if not math.isfinite(sum(r["psnr"] for r in record["rows"])):
        print("some reconstructions have no finite PSNR (see status)")


if __name__ == "__main__":
    run_and_exit(main)
