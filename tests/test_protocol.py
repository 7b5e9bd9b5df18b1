"""The threat model as data: FedAvg updates, sums of users' updates, BatchNorm's mode, and
the attacks and configs built on them (issue 16)."""

from __future__ import annotations

import copy

import pytest
import torch

from attacks import ATTACKS, AttackTarget
from attacks.objectives import candidate_update
from conftest import privacy_row
from defenses import create_defense
from dgp.models import build_model
from dgp.protocol import Protocol
from dgp.types import SharedGradient, summed
from dgp.updates import batched_user_updates, user_update
from jobs.config import validate_config
from jobs.plan import ConfigError, images_per_job, privacy_jobs, protocol_runs
from jobs.privacy import run
from tests.test_config import SMOKE

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}
FEDAVG = {"algorithm": "fedavg", "local_steps": 2, "local_lr": 0.1}


def _batch(count: int = 4, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(count, 1, 16, 16, generator=generator),
            torch.randint(0, 10, (count,), generator=generator))


def test_one_fedavg_step_is_the_gradient_times_the_lr_and_more_steps_differ() -> None:
    model = build_model("lenet", 1, 10, 16, 0)
    images, labels = _batch()
    gradient = user_update(model, images, labels, Protocol())
    one_step = user_update(model, images, labels, Protocol("fedavg", 1, 0, 0.1))
    two_steps = user_update(model, images, labels, Protocol("fedavg", 2, 0, 0.1))
    for g, u in zip(gradient, one_step, strict=True):
        torch.testing.assert_close(u, 0.1 * g, rtol=1e-5, atol=1e-7)
    difference = sum((u2 - 2 * u1).norm() for u1, u2 in zip(one_step, two_steps, strict=True))
    assert difference > 1e-4  # the second step is taken at the moved weights


def test_local_batches_cycle_through_the_users_images() -> None:
    """With local_batch_size 2 of 4 images, two steps see each image once: the same change
    as two steps on the halves taken by hand."""
    model = build_model("lenet", 1, 10, 16, 0)
    images, labels = _batch()
    protocol = Protocol("fedavg", 2, 2, 0.1)
    change = user_update(model, images, labels, protocol)
    by_hand = copy.deepcopy(model)
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.1)
    for part in (slice(0, 2), slice(2, 4)):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(by_hand(images[part]), labels[part]).backward()
        optimizer.step()
    for c, p0, p1 in zip(change, model.parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(c, (p0 - p1).detach(), rtol=1e-4, atol=1e-6)


def test_batchnorm_train_mode_uses_batch_statistics_and_leaves_the_model_alone() -> None:
    model = build_model("convnet", 1, 10, 16, 0).eval()
    images, labels = _batch()
    buffers = [b.clone() for b in model.buffers()]
    in_eval = user_update(model, images, labels, Protocol())
    in_train = user_update(model, images, labels, Protocol(batchnorm="train"))
    assert sum((a - b).norm() for a, b in zip(in_eval, in_train, strict=True)) > 1e-3
    assert not model.training
    for before, after in zip(buffers, model.buffers(), strict=True):
        torch.testing.assert_close(before, after)


def test_the_attackers_simulated_update_of_the_true_batch_is_what_was_sent() -> None:
    """candidate_update simulates FedAvg's local steps and a sum over users exactly: at the
    user's own images it reproduces the observation, so matching can reach zero."""
    model = build_model("lenet", 1, 10, 16, 0).eval()
    images, labels = _batch(4)
    protocol = Protocol("fedavg", 2, 0, 0.1, users=2)
    sent = [sum(parts) for parts in zip(
        user_update(model, images[:2], labels[:2], protocol),
        user_update(model, images[2:], labels[2:], protocol), strict=True)]
    target = AttackTarget(model, SharedGradient(sent, [None] * len(sent)), 2, (1, 16, 16), 10,
                          (torch.full((1, 1, 1, 1), -9.0), torch.full((1, 1, 1, 1), 9.0)),
                          protocol=protocol)
    assert target.num_images == 4
    for a, b in zip(candidate_update(target, images, labels), sent, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-5, atol=1e-7)


def test_fedavg_inversion_recovers_the_image_of_two_local_steps() -> None:
    """Dimitrov et al.'s setting on the undefended LeNet/digits: the user sends its weight
    change after 2 local steps; iDLG, simulating those steps, rebuilds the image (measured
    69 dB; stated bar 30 dB, far above the guessing floor of about 14 dB)."""
    record, _ = run(DIGITS, "none", 0, {}, "idlg", {"iterations": 20}, 0, 1, 1, "cpu",
                    protocol=FEDAVG)
    (row,) = record["rows"]
    assert record["job"]["protocol"] == "fedavg-s2-lr0.1"
    assert record["job"]["local_steps"] == 2
    assert row["psnr"] > 30 and row["psnr"] > row["floor_psnr"] + 10


def test_passive_attack_on_an_aggregate_of_four_users_scores_each_users_image() -> None:
    record, _ = run(DIGITS, "none", 0, {}, "idlg", {"iterations": 20}, 0, 4, 1, "cpu",
                    protocol={"users": 4})
    rows = record["rows"]
    assert record["job"]["protocol"] == "fedsgd-n4"
    assert sorted(r["user"] for r in rows) == [0, 1, 2, 3]
    assert {r["role"] for r in rows} == {"aggregate"}
    assert all(r["psnr"] > 30 for r in rows), [r["psnr"] for r in rows]


def test_an_aggregate_marks_sent_what_any_user_sent() -> None:
    ones, zeros = torch.ones(3), torch.zeros(3)
    first = SharedGradient([torch.tensor([1.0, 0, 0])], [torch.tensor([1.0, 0, 0])],
                           side={"norms": [1.0]})
    second = SharedGradient([torch.tensor([0, 2.0, 0])], [torch.tensor([0, 1.0, 0])],
                            side={"norms": [2.0]})
    total = summed([first, second])
    torch.testing.assert_close(total.tensors[0], torch.tensor([1.0, 2.0, 0]))
    torch.testing.assert_close(total.masks[0], torch.tensor([1.0, 1.0, 0]))
    assert total.side == {"norms": [1.0, 2.0]}
    dense_one = SharedGradient([ones], [None])
    assert summed([dense_one, SharedGradient([zeros], [torch.ones(3)])]).masks == [None]


def test_under_aggregation_adgp_sends_one_support_and_dgp_the_union_of_many() -> None:
    """ADGP's members use the broadcaster's band, so the sum of 4 users has exactly one
    user's support; DGP masks each user on its own, so the sum reveals more entries. The
    bytes recorded are one user's upload, the same count under both."""
    from jobs import privacy

    protocol = Protocol(users=4)
    support, upload = {}, {}
    for name in ("dgp", "adgp"):
        job = privacy._setup(DIGITS, name, 0.8, {}, "idlg", {"iterations": 1}, 0, 4,
                             torch.device("cpu"), None, protocol)
        images, labels = job.data.samples(job.indices)
        inputs = [job.data.normalize(images[u:u + 1]) for u in range(4)]
        shared, first = privacy._shared_gradient(job, privacy._case(job, 0), inputs,
                                                 [labels[u:u + 1] for u in range(4)],
                                                 "aggregate")
        support[name] = sum(int(m.sum()) for m in shared.masks)
        upload[name] = sum(int(m.sum()) for m in first.masks)
    assert upload["dgp"] == upload["adgp"]
    assert support["adgp"] == upload["adgp"]
    assert support["dgp"] > 2 * upload["dgp"]
    assert privacy.roles(create_defense("adgp", 0.8), protocol) == ["aggregate"]
    record, _ = run(DIGITS, "dgp", 0.8, {}, "idlg", {"iterations": 1}, 0, 4, 1, "cpu",
                    protocol={"users": 4})
    assert record["rows"][0]["sent_values"] == upload["dgp"]


def _config_with(protocols: list[dict], attacks: list[dict] | None = None) -> dict:
    config = copy.deepcopy(SMOKE)
    config["privacy"] = {**config.get("privacy", {}), "protocols": protocols,
                         "num_images": 4, "batch_size": 1}
    # Without multi_round, which fits the data defenses only: an entry without an attacks
    # filter would run it on every defense, which validation refuses.
    config["attacks"] = attacks if attacks is not None else [
        a for a in config["attacks"] if a["name"] != "multi_round"]
    return config


def test_config_refuses_an_attack_on_a_protocol_it_cannot_handle() -> None:
    config = _config_with([{"algorithm": "fedavg", "local_steps": 2}],
                          attacks=[{"name": "rtf"}])
    with pytest.raises(ConfigError, match=r"privacy.protocols\[0\].*'rtf'.*fedavg"):
        validate_config(config)
    assert not ATTACKS["rtf"].protocol_error(Protocol(users=4))  # rtf reads sums


@pytest.mark.parametrize("entry, message", [
    ({"algorithm": "fedprox"}, "algorithm must be one of"),
    ({"users": 3}, "multiple of users x batch_size"),
    ({"algorithm": "fedsgd", "local_steps": 3}, "local_steps must be 1"),
    ({"batchnorm": "train"}, "without BatchNorm"),
    ({"users": 2, "defenses": ["nope"]}, r"defenses: unknown defense 'nope'"),
    ({"users": 2, "attacks": ["ig_adaptve"]}, r"attacks: unknown attack 'ig_adaptve'"),
])
def test_config_refuses_bad_protocols(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(_config_with([entry]))


def test_each_protocol_runs_its_own_defenses_and_attacks() -> None:
    """A filter may name a registered defense the config does not run (an overlay config
    dropped it): it is skipped."""
    config = _config_with([
        {"algorithm": "fedsgd"},
        {"algorithm": "fedavg", "local_steps": 2, "defenses": ["none", "dgp", "precode"],
         "attacks": ["idlg_adaptive"]},
    ])
    config["defenses"] = [d for d in config["defenses"] if d["name"] != "precode"]
    config = validate_config(config)
    jobs = privacy_jobs(config)
    fedavg = [j for j in jobs if j["protocol"] == "fedavg-s2-lr0.1"]
    assert {j["defense"] for j in fedavg} == {"none", "dgp"}
    assert {j["attack"] for j in fedavg} == {"idlg_adaptive"}
    fedsgd = _config_with([{}])
    fedsgd["defenses"] = config["defenses"]
    assert len(jobs) - len(fedavg) == len(privacy_jobs(validate_config(fedsgd)))


@pytest.mark.parametrize("name", ["dgp", "topk", "adgp", "none"])
def test_the_defense_aware_view_of_a_sum_is_exact_at_the_users_images(name: str) -> None:
    """Each user's defended upload, summed, is what the server sees; the defense-aware
    attacker's per-user view (recomputed bands for dgp and topk, the one broadcast band for
    adgp) reproduces that sum at the true images, so matching can reach zero; the passive
    raw sum does not under pruning."""
    from attacks.adaptive import AdaptiveImprovedDeepLeakage

    model = build_model("lenet", 1, 10, 16, 0).eval()
    images, labels = _batch(3)
    defense = create_defense(name, 0 if name == "none" else 0.8)
    updates = [user_update(model, images[u:u + 1], labels[u:u + 1], Protocol())
               for u in range(3)]
    shared = summed(defense.share_round(updates))
    protocol = Protocol(users=3)
    target = AttackTarget(model, shared, 1, (1, 16, 16), 10,
                          (torch.full((1, 1, 1, 1), -9.0), torch.full((1, 1, 1, 1), 9.0)),
                          defense=defense, protocol=protocol)
    attack = AdaptiveImprovedDeepLeakage()
    view = attack.user_view(target, steps=2)  # soft masks on the first of 2
    view.begin_step(2)  # the second half: the exact, hard masks
    viewed = candidate_update(target, images, labels, view)
    for a, b in zip(viewed, shared.tensors, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-4, atol=1e-6)
    raw = candidate_update(target, images, labels)
    gap = sum(float((a.detach() - b).norm()) for a, b in zip(raw, shared.tensors, strict=True))
    assert (gap < 1e-5) == (name == "none")


def test_a_job_attacks_batchnorm_in_train_mode() -> None:
    """With batch statistics the attacker's candidate is normalised by its own batch, as the
    user's was; the job records the mode and leaves the model's running statistics alone."""
    convnet = {**DIGITS, "model": "convnet"}
    record, _ = run(convnet, "none", 0, {}, "ig", {"iterations": 3}, 0, 2, 2, "cpu",
                    protocol={"batchnorm": "train"})
    assert record["job"]["protocol"] == "fedsgd-bntrain"
    assert {r["status"] for r in record["rows"]} == {"ok"}
    assert record["job"]["batchnorm"] == "train"


def test_the_report_says_each_sections_threat_model() -> None:
    """The words name the protocol, the users summed and any malicious (model-changing)
    attack."""
    import pandas as pd

    from report.threat import describe

    rows = pd.DataFrame([privacy_row("ig"), privacy_row("trap_weights")])
    words = describe(rows)
    assert words.startswith("fedsgd: FedSGD, the gradient of one user")
    assert "malicious: trap_weights" in words
    fedavg = Protocol(algorithm="fedavg", local_steps=2, local_lr=0.05, users=3)
    summed_rows = pd.DataFrame([privacy_row("idlg", protocol=fedavg.id, **fedavg.as_dict())])
    words = describe(summed_rows)
    assert "2 local SGD steps (lr 0.05, the whole batch each step)" in words
    assert "summed over 3 users" in words and "honest-but-curious" in words


def test_utility_claims_are_judged_once_under_the_default_protocol() -> None:
    import pandas as pd

    from report.claims import _sections

    privacy = pd.DataFrame({"dataset": ["d", "d", "d", "d", "e"],
                            "protocol": ["fedavg-s2-lr0.1", "fedsgd", "fedsgd", "fedsgd",
                                         "fedsgd-n3"],
                            "batch_size": [1, 4, 1, 1, 1], "model_round": [0, 0, 9, 0, 0]})
    utility = pd.DataFrame({"dataset": ["d", "f"]})
    assert _sections(privacy, utility) == {
        ("d", "fedavg-s2-lr0.1", 1, 0): ("fedsgd", 1, 0),
        ("d", "fedsgd", 1, 0): ("fedsgd", 1, 0), ("d", "fedsgd", 1, 9): ("fedsgd", 1, 0),
        ("d", "fedsgd", 4, 0): ("fedsgd", 1, 0), ("e", "fedsgd-n3", 1, 0): ("fedsgd-n3", 1, 0),
        ("f", "fedsgd", 1, 0): ("fedsgd", 1, 0)}


def test_each_attack_declares_what_it_knows_beyond_the_model_and_the_update() -> None:
    """The SoK's adversary knowledge per row (``Attack.knowledge``): public data where a
    label rule, an active attack or a data defense's estimate reads it; BatchNorm
    statistics for GradInversion's prior; a FedAvg user's local hyperparameters; the
    defense's protocol for the defense-aware variants."""
    from attacks import create_attack

    fedsgd, fedavg = Protocol(), Protocol(algorithm="fedavg", local_steps=2)
    dgp, mixup = create_defense("dgp", 0.8), create_defense("mixup", 4)
    assert create_attack("ig").knowledge(None, fedsgd, 1) == []
    assert create_attack("ig").knowledge(dgp, fedsgd, 4) == ["public data"]  # auto: bias
    assert create_attack("ig", {"label_rule": "yin"}).knowledge(dgp, fedsgd, 4) == []
    assert create_attack("idlg_adaptive").knowledge(dgp, fedavg, 1) == [
        "local hyperparameters", "defense protocol"]
    assert create_attack("idlg_adaptive").knowledge(mixup, fedsgd, 1) == [
        "public data", "defense protocol"]
    assert create_attack("trap_weights").knowledge(None, fedsgd, 8) == ["public data"]
    assert create_attack("gradinversion").knowledge(None, fedsgd, 2) == [
        "BatchNorm statistics"]


def test_the_privacy_record_and_the_report_say_what_the_attacker_used() -> None:
    import pandas as pd

    from report.threat import describe

    record, _ = run({"name": "digits", "model": "lenet", "image_size": 16}, "dgp", 0.8, {},
                    "idlg_adaptive", {"iterations": 1}, 0, 1, 1, "cpu")
    assert record["job"]["knowledge"] == "defense protocol"
    rows = pd.DataFrame([
        privacy_row(attack, knowledge=knowledge) for attack, knowledge in
        [("ig", "none"), ("idlg_adaptive", "defense protocol"),
         ("idlg_adaptive", "public data, defense protocol")]])
    assert describe(rows).endswith("besides the model and the update, idlg_adaptive used "
                                   "defense protocol, public data; ig used nothing else")


def test_soft_band_masks_tend_to_the_hard_band_and_let_entries_cross_its_ends() -> None:
    """``soft_band_mask``: near 1 inside the band and near 0 outside at a small
    temperature, and (unlike the hard mask) a gradient on an entry just outside the band."""
    from dgp.pruning import rank_band_mask, soft_band_mask

    values = torch.linspace(0.1, 2.0, 20)[torch.randperm(20, generator=torch.Generator()
                                                         .manual_seed(0))]
    hard = rank_band_mask(values, 2, 5).float()  # ranks 2..6: 1.7 .. 1.3
    torch.testing.assert_close(soft_band_mask(values, 2, 5, 0.001), hard, atol=1e-6, rtol=0)
    x = values.clone().requires_grad_(True)
    (x * soft_band_mask(x, 2, 5, 0.1)).sum().backward()
    below = int((values - 1.2).abs().argmin())  # rank 7, just below the band
    assert hard[below] == 0 and x.grad[below].abs() > 0.1
    assert torch.equal(soft_band_mask(values, 0, 20, 0.1), torch.ones(20))


def test_the_annealed_view_is_soft_for_the_first_half_of_the_run_then_exact() -> None:
    from attacks.adaptive import AnnealedBands

    target = AttackTarget(build_model("lenet", 1, 10, 16, 0), None, 1, (1, 16, 16), 10,
                          (torch.zeros(1), torch.ones(1)), defense=create_defense("dgp", 0.8),
                          protocol=Protocol(users=2))
    view = AnnealedBands(target, 1.0, steps=10)  # 5 soft steps, 5 hard
    temperatures, phases = [], []
    for step in range(1, 11):
        view.begin_step(step)
        temperatures.append(view.temperature)
        phases.append(view.phase)
    assert temperatures[0] == 1.0 and all(t == 0 for t in temperatures[5:])
    soft = temperatures[:5]
    assert all(a > b > 0.01 - 1e-9 for a, b in zip(soft, soft[1:], strict=False))
    assert phases == ["soft"] * 5 + ["hard"] * 5
    with view.final():
        assert view.temperature == 0.0
    hard_throughout = AnnealedBands(target, 0.0, 10)
    hard_throughout.begin_step(1)
    assert hard_throughout.temperature == 0.0 and hard_throughout.phase == ""


def test_soft_band_masks_let_the_defense_aware_attack_beat_the_floor_on_a_dgp_sum() -> None:
    """Against the sum of 2 users' DGP 0.8 gradients, the exact per-user model with hard
    masks stays below the guessing floor from a random start (measured: 7.1 / 7.9 dB, floor
    14.6); annealed soft masks (the default) find both images (17.9 / 19.7 dB)."""
    digits = {"name": "digits", "model": "lenet", "image_size": 16}
    params = {"iterations": 400, "tv_weight": 0.0, "lr": 0.1, "band_weight": 0.0}
    mean = {}
    for temperature in (1.0, 0.0):
        record, _ = run(digits, "dgp", 0.8, {}, "ig_adaptive",
                        {**params, "mask_temperature": temperature}, 0, 2, 1, "cpu",
                        protocol={"users": 2})
        rows = record["rows"]
        mean[temperature] = sum(r["psnr"] for r in rows) / 2
        floor = sum(r["floor_psnr"] for r in rows) / 2
    assert mean[0.0] < floor < floor + 2 < mean[1.0]
    assert mean[1.0] > mean[0.0] + 5


@pytest.mark.parametrize("protocol", [Protocol(), Protocol("fedavg", 2, 0, 0.1),
                                      Protocol("fedavg", 2, 1, 0.1)])
@pytest.mark.parametrize("soft_targets", [False, True])
def test_batched_updates_are_each_users_update(protocol, soft_targets) -> None:
    """Many users' updates in one vectorised call equal each user's own, hard or soft
    (mixed) targets alike."""
    model = build_model("lenet", 1, 10, 16, 0)
    images, labels = _batch(count=6)
    inputs, targets = images.view(3, 2, 1, 16, 16), labels.view(3, 2)
    if soft_targets:
        targets = torch.nn.functional.one_hot(targets, 10).float() * 0.7 + 0.03
    batched = batched_user_updates(model, inputs, targets, protocol)
    for user in range(3):
        alone = user_update(model, inputs[user], targets[user], protocol)
        for b, a in zip(batched, alone, strict=True):
            torch.testing.assert_close(b[user], a, rtol=1e-4, atol=1e-6)


def test_batched_updates_decline_a_model_whose_loss_reads_layer_state() -> None:
    """PRECODE's bottleneck adds its KL term from its last forward pass: not vectorisable,
    so the caller loops (None), and a BatchNorm model in training mode likewise."""
    precode = create_defense("precode", 0.001, {"size": 32})
    model = precode.wrap_model(build_model("lenet", 1, 10, 16, 0))
    images, labels = _batch(count=2)
    assert batched_user_updates(model, images.view(2, 1, 1, 16, 16), labels.view(2, 1),
                                Protocol()) is None
    convnet = build_model("convnet", 1, 10, 16, 0)
    assert batched_user_updates(convnet, images.view(2, 1, 1, 16, 16), labels.view(2, 1),
                                Protocol(batchnorm="train")) is None


def test_a_protocol_in_several_entries_runs_each_attack_on_its_own_defenses() -> None:
    """An expensive attack may run on a few defenses of a protocol: a second entry of the
    same protocol; no (defense, attack) pair twice, one list of seeds."""
    attacks = [{"name": "idlg_adaptive"}, {"name": "ig"}]
    config = validate_config(_config_with(
        [{"attacks": ["idlg_adaptive"]}, {"attacks": ["ig"], "defenses": ["dgp"]}], attacks))
    pairs = [(j["defense"], j["attack"]) for j in privacy_jobs(config)]
    assert {a for d, a in pairs if d == "dgp"} == {"idlg_adaptive", "ig"}
    assert {a for d, a in pairs if d != "dgp"} == {"idlg_adaptive"}
    jobs = [tuple(sorted(j.items())) for j in privacy_jobs(config)]
    assert len(jobs) == len(set(jobs))
    with pytest.raises(ConfigError, match=r"protocols\[1\].*defense 'dgp', round 0 already "
                                          r"runs attack 'ig' \(entry 0\)"):
        validate_config(_config_with([{}, {"attacks": ["ig"], "defenses": ["dgp"]}], attacks))
    other_seeds = _config_with([{"attacks": ["idlg_adaptive"]},
                                {"attacks": ["ig"], "seeds": [5]}], attacks)
    other_seeds["seeds"] = [0, 5]
    with pytest.raises(ConfigError, match=r"protocols\[1\].*entry 0 with seeds.*share"):
        validate_config(other_seeds)


def test_entries_attack_at_their_own_batch_sizes_and_rounds() -> None:
    """An entry's batch_size, num_images and model_rounds make jobs of their own (paths
    and options apart); entries that share no setting may differ in seeds."""
    attacks = [{"name": "idlg_adaptive"}, {"name": "ig"}]
    config = _config_with([
        {"attacks": ["idlg_adaptive", "ig"]},
        {"batch_size": 4, "num_images": 8, "defenses": ["none", "dgp"]},
        {"model_rounds": [5], "seeds": [0, 1, 2], "num_images": 1, "defenses": ["dgp"]},
    ], attacks)
    config["seeds"], config["privacy"]["model_rounds"] = [0, 1, 2], [0]
    config = validate_config(config)
    runs = protocol_runs(config)
    assert [(r.batch_size, r.num_images, r.model_rounds) for r in runs] == [
        (1, 4, [0]), (4, 8, [0]), (1, 1, [5])]
    jobs = privacy_jobs(config)
    batch4 = [j for j in jobs if j["batch_size"] == "4"]
    assert {j["defense"] for j in batch4} == {"none", "dgp"}
    assert all("/batch4/" in j["stem"] for j in batch4)
    trained = [j for j in jobs if j["round"] == "5"]
    assert {j["seed"] for j in trained} == {"0", "1", "2"}
    # Each job's image count is its own setting's, though entries share a batch size.
    images = images_per_job(config)
    assert images["fedsgd", "1", "dgp", "0"] == 4 and images["fedsgd", "1", "dgp", "5"] == 1
    assert images["fedsgd", "4", "dgp", "0"] == 8
    assert len({j["stem"] for j in jobs}) == len(jobs)


@pytest.mark.parametrize("entry, message", [
    ({"batch_size": 4, "num_images": 6}, r"num_images \(6\) must be a multiple of users x "
                                         r"batch_size \(4\)"),
    ({"batch_size": 2, "local_batch_size": 3, "algorithm": "fedavg", "local_steps": 2},
     r"local_batch_size \(3\) exceeds the user's batch \(batch_size 2\)"),
    ({"model_rounds": [3], "seeds": [9]}, r"privacy.protocols\[1\].seeds.*\[9\]"),
])
def test_entry_sizes_are_checked_before_any_job(entry, message) -> None:
    config = _config_with([{}, {"attacks": ["ig"], "defenses": ["dgp"], **entry}],
                          [{"name": "idlg_adaptive"}, {"name": "ig"}])
    config["privacy"]["protocols"][0]["attacks"] = ["idlg_adaptive"]
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_the_report_gives_each_batch_size_a_section_and_a_figure_across_them() -> None:
    """Verdicts never pool batch sizes: each is a setting (and a report section) of its
    own, and the protocol's first section draws the strongest attack against batch size."""
    import pandas as pd

    from report.render import _batch_figures
    from report.strongest import with_strongest
    from report.verdicts import verdict_table

    rows = [privacy_row("ig", dataset="d", model="lenet", defense="none", ratio=0.0,
                        seed=seed, batch=case, sample=case, batch_size=size,
                        model_draw=f"seed {seed} case {case}", psnr=20.0 + size + case,
                        ssim=0.5, floor_psnr=12.0, floor_ssim=0.1, class_floor_psnr=13.0,
                        class_floor_ssim=0.1)
            for size in (1, 4) for seed in (0, 1) for case in range(3)]
    data = pd.DataFrame(rows)
    verdicts = verdict_table(data)
    assert sorted(verdicts["batch_size"]) == [1, 4]
    assert set(verdicts["n_runs"]) == {6}
    figures = _batch_figures(with_strongest(data))
    assert list(figures) == [("d", "fedsgd", 1)] and figures["d", "fedsgd", 1]
