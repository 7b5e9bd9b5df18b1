"""The baseline defenses of the DGP comparison: each one's defining property, and every
registered defense running end to end (privacy job and one training round)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from defenses import DEFENSES, create_defense
from defenses.ats import OPERATIONS, apply_operation, parse_policy
from defenses.bottleneck import VariationalBottleneck
from defenses.dp_gaussian import gaussian_epsilon
from defenses.qsgd import tent_nll
from defenses.soteria import feature_scores
from dgp.communication import shared_cost
from dgp.data import load_dataset
from dgp.fl.federated import TrainingSettings, train
from dgp.fl.users import FederatedData
from dgp.gradients import loss_and_gradients, parameter_gradients
from dgp.models import build_model
from dgp.pruning import rank_band_mask, sent_count
from dgp.types import UserBatch
from jobs.privacy import run

DIGITS = {"name": "digits", "model": "lenet", "image_size": 8}
# A ratio within each defense's range, small enough to keep the tests fast.
# Each defense declares a fast, valid ratio of its own: a new defense is tested here as is.
TEST_RATIOS = {name: cls.example_ratio for name, cls in DEFENSES.items()}


def test_every_registered_defense_accepts_its_example_ratio():
    for name, ratio in TEST_RATIOS.items():
        assert create_defense(name, ratio).ratio == ratio


def test_random_sends_topk_density_and_is_unbiased_when_rescaled():
    g = torch.randn(50, 40)
    shared = create_defense("random", 0.8).apply([g], torch.Generator().manual_seed(0))
    assert int(shared.masks[0].sum()) == sent_count(g.numel(), 0.8)
    sent = shared.masks[0]
    assert torch.equal(shared.tensors[0][sent], g[sent])
    assert not shared.tensors[0][~sent].any()

    rescaling = create_defense("random", 0.8, {"rescale": True})
    generator = torch.Generator().manual_seed(1)
    draws = 4000
    mean = sum(rescaling.apply([g], generator).tensors[0] for _ in range(draws)) / draws
    # each entry's mean has std |g| * sqrt(4 / draws) ~ 0.032 |g|
    assert (mean - g).abs().max() < 0.2 * g.abs().max()
    assert (mean - g).pow(2).mean() < 0.01 * g.pow(2).mean()


def test_laplace_noise_has_the_configured_scale():
    zero = [torch.zeros(200_000)]
    shared = create_defense("dp_laplace", 0.5, {"clip_norm": 2.0}).apply(
        zero, torch.Generator().manual_seed(0))
    noise = shared.tensors[0]
    scale = 0.5 * 2.0
    assert noise.abs().mean() == pytest.approx(scale, rel=0.02)  # E|X| = b
    assert noise.std() == pytest.approx(math.sqrt(2) * scale, rel=0.02)
    assert noise.mean() == pytest.approx(0.0, abs=0.02)


def _rdp_gaussian_epsilon(sigma: float, releases: int, delta: float) -> float:
    """Independent RDP computation: Gaussian RDP alpha*T/(2 sigma^2), converted with
    Balle et al. (2020), minimised over opacus' default orders."""
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    return min(a * releases / (2 * sigma**2)
               - (math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a)
               for a in orders)


def test_gaussian_accounting_decreases_with_noise_and_matches_rdp():
    epsilons = [gaussian_epsilon(sigma, 10, 1e-5) for sigma in (0.5, 1.0, 2.0, 8.0)]
    assert epsilons == sorted(epsilons, reverse=True)
    assert gaussian_epsilon(1.0, 10, 1e-5) > gaussian_epsilon(1.0, 1, 1e-5)
    assert gaussian_epsilon(0.0, 1, 1e-5) == math.inf
    for sigma, releases in [(1.0, 1), (2.0, 100), (5.0, 10)]:
        assert gaussian_epsilon(sigma, releases, 1e-5) == pytest.approx(
            _rdp_gaussian_epsilon(sigma, releases, 1e-5), rel=1e-6)
    record = create_defense("dp_gaussian", 2.0, {"delta": 1e-6}).accounting(releases=3)
    assert record == {"dp_epsilon": gaussian_epsilon(2.0, 3, 1e-6), "dp_delta": 1e-6}


class _LinearFeatures(nn.Module):
    """r = A x (no activation), then a classifier: Soteria's scores are known in closed
    form, sum_i ||A_f|| / |r_if|."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.features = nn.Linear(rows.shape[1], rows.shape[0], bias=False)
        self.features.weight.data = rows.clone()
        self.fc = nn.Linear(rows.shape[0], 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x.flatten(1)))


def test_soteria_prunes_the_features_with_the_lowest_score():
    torch.manual_seed(0)
    rows = torch.randn(10, 6) * torch.arange(1, 11).unsqueeze(1)  # distinct row norms
    model = _LinearFeatures(rows)
    inputs = torch.randn(4, 1, 2, 3)
    r = inputs.flatten(1) @ rows.T
    expected = (rows.norm(dim=1) / r.abs()).sum(0)
    assert torch.allclose(feature_scores(model, inputs), expected, rtol=1e-4)

    gradients = parameter_gradients(model, inputs, torch.tensor([0, 1, 2, 0]))
    shared = create_defense("soteria", 0.3).apply(gradients, batch=UserBatch(model, inputs))
    pruned = set(torch.argsort(expected)[:3].tolist())
    fc_weight = shared.tensors[1]
    for f in range(10):
        if f in pruned:
            assert not fc_weight[:, f].any()
        else:
            assert torch.equal(fc_weight[:, f], gradients[1][:, f])
    assert torch.equal(shared.tensors[0], gradients[0])  # other tensors untouched
    assert torch.equal(shared.tensors[2], gradients[2])


def test_soteria_leaves_batchnorm_statistics_alone():
    model = build_model("convnet", 3, 10, 16, seed=0).train()
    inputs = torch.randn(2, 3, 16, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    feature_scores(model, inputs)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_precode_bottleneck_follows_the_reference():
    # VariationalBottleneck.py: std = softplus(.), a sample on every forward pass (eval
    # too: the attacker's copy samples as well), KL to N(0, I) in bits.
    bottleneck = VariationalBottleneck(features=8, size=4, beta=0.1)
    with torch.no_grad():
        bottleneck.encoder.weight.zero_()
        raw = math.log(math.e**2 - 1)  # softplus(raw) = 2
        bottleneck.encoder.bias.copy_(torch.tensor([1.0, 0, 0, 0, raw, 0, 0, 0]))
    x = torch.randn(5, 8)
    bottleneck.eval()
    assert not torch.equal(bottleneck(x), bottleneck(x))  # eval samples too
    # per dimension KL = -0.5 (1 + 2 log s - mu^2 - s^2); dimension 0: mu = 1, s = 2; the
    # others: mu = 0, s = softplus(0) = log 2
    def kl(mu, std):
        return -0.5 * (1 + 2 * math.log(std) - mu**2 - std**2)

    nats = kl(1.0, 2.0) + 3 * kl(0.0, math.log(2.0))
    assert float(bottleneck.kl.detach()) == pytest.approx(nats / math.log(2), rel=1e-5)
    assert float(bottleneck.penalty().detach()) == pytest.approx(0.1 * nats / math.log(2),
                                                                 rel=1e-5)
    in_nats = VariationalBottleneck(features=8, size=4, beta=0.1, kl_unit="nats")
    in_nats.load_state_dict(bottleneck.state_dict())
    in_nats(x)
    assert float(in_nats.kl.detach()) == pytest.approx(nats, rel=1e-5)

    defense = create_defense("precode", 0.5, {"size": 16})
    model = build_model("lenet", 1, 10, 8, seed=0, wrap=defense.wrap_model).eval()
    assert isinstance(model.fc[0], VariationalBottleneck) and model.fc[0].size == 16
    images, labels = torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])
    torch.manual_seed(4)
    loss, _ = loss_and_gradients(model, images, labels)
    torch.manual_seed(4)
    ce = float(nn.functional.cross_entropy(model(images), labels).detach())
    assert loss == pytest.approx(ce + 0.5 * float(model.fc[0].kl.detach()), rel=1e-5)


def test_precode_upload_share_is_against_the_undefended_model():
    # The wrapped LeNet (digits, 32x32) has 606,330 parameters against 15,226: its upload
    # is ~40x the undefended dense gradient, not "100 % of dense".
    record, _ = run({"name": "digits", "model": "lenet", "image_size": 32}, "precode",
                    0.001, {}, "dlg", {"iterations": 1}, seed=0, num_images=1, batch_size=1)
    row = record["rows"][0]
    assert row["dense_bytes"] == 4 * 15_226 and row["model_dense_bytes"] == 4 * 606_330
    assert row["sent_bytes"] / row["dense_bytes"] > 39


def test_ats_policy_is_deterministic_under_a_seed():
    assert parse_policy("3-1-7+43-18-18") == [[3, 1, 7], [43, 18, 18]]
    with pytest.raises(ValueError, match="outside"):
        create_defense("ats", 1.0, {"policy": "3-99"})
    images = torch.rand(6, 3, 16, 16)
    defense = create_defense("ats", 1.0)
    a, _ = defense.transform_batch(images, torch.zeros(6), 10, torch.Generator().manual_seed(5))
    b, _ = defense.transform_batch(images, torch.zeros(6), 10, torch.Generator().manual_seed(5))
    c, _ = defense.transform_batch(images, torch.zeros(6), 10, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, images)
    untouched, _ = create_defense("ats", 0.0).transform_batch(images, torch.zeros(6), 10)
    assert torch.equal(untouched, images)
    for operation, index in OPERATIONS:  # every table entry keeps shape and range
        out = apply_operation(images[0], operation, index, -1.0)
        assert out.shape == images[0].shape and 0 <= out.min() and out.max() <= 1


def test_qsgd_is_unbiased_on_its_grid_and_costs_its_bits():
    v = torch.randn(300)
    defense = create_defense("qsgd", 3)  # s = 3 levels
    generator = torch.Generator().manual_seed(0)
    draws = [defense.apply([v], generator).tensors[0] for _ in range(3000)]
    levels = draws[0] / v.norm() * 3
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # on the grid l / s
    assert (torch.sign(draws[0]) * torch.sign(v) >= 0).all()
    mean = torch.stack(draws).mean(0)
    assert (mean - v).abs().max() < 0.1 * v.norm() / 3
    shared = create_defense("qsgd", 4).apply([torch.randn(10, 10), torch.randn(7)])
    assert shared_cost(shared).sent_bytes == math.ceil(100 * 4 / 8) + math.ceil(7 * 4 / 8) + 8
    with pytest.raises(ValueError, match="integer"):
        create_defense("qsgd", 2.5)



def test_qsgd_attacker_model_is_the_quantisers_exact_likelihood():
    # The tent probability max(0, 1 - |s g / ||v|| - L|) of each sent level must match how
    # often the quantiser sends that level; the norms travel exactly.
    v = torch.randn(200)
    defense = create_defense("qsgd", 3)
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([defense.apply([v], generator).tensors[0] for _ in range(4000)])
    shared = defense.apply([v], generator)
    assert shared.side["norms"] == [pytest.approx(float(v.norm()))]
    sent = shared.tensors[0]
    frequency = (draws - sent).abs().lt(1e-6).float().mean(0)
    likelihood = torch.exp(-tent_nll((v - sent).abs() * 3 / v.norm()))
    assert (frequency - likelihood).abs().max() < 0.04
    assert float(defense.constraint_penalty([v], shared)) < 1e-12
    assert float(defense.constraint_penalty([2 * v], shared)) == pytest.approx(1.0)


def test_qsgd_likelihood_prefers_the_true_gradient():
    # What the defense-aware attacks minimise against qsgd: lower at the user's gradient
    # than at gradients of the same norm but other directions (cosine distance barely
    # tells these apart at 4 bits: measured 0.536 vs 0.569 on a LeNet digit).
    torch.manual_seed(0)
    true = [torch.randn(400) * 0.1, torch.randn(30)]
    defense = create_defense("qsgd", 4)
    shared = defense.apply(true, torch.Generator().manual_seed(1))
    other = [torch.randn_like(t) * t.norm() / t.numel() ** 0.5 for t in true]
    assert float(defense.observation_nll(true, shared)) < float(
        defense.observation_nll(other, shared))
    assert tent_nll(torch.tensor([0.0])).item() == 0.0
    assert torch.isfinite(tent_nll(torch.tensor([5.0]))).all()

def _partners(images: torch.Tensor, labels: torch.Tensor):
    def draw(count: int):
        return images[:count], labels[:count]
    return draw


@pytest.mark.parametrize("name", ["mixup", "instahide"])
def test_mixing_coefficients_and_labels(name):
    k, classes = 4, 10
    images = torch.rand(5, 1, 4, 4)
    labels = torch.tensor([0, 0, 0, 0, 0])
    partner_images = torch.rand(5 * (k - 1), 1, 4, 4)
    partner_labels = torch.tensor([1, 2, 3] * 5)  # distinct classes reveal each coefficient
    defense = create_defense(name, k)
    center = torch.full((1, 1, 1, 1), 0.3)  # the dataset mean, the normalised encoding's 0
    mixed, targets = defense.transform_batch(images, labels, classes,
                                             torch.Generator().manual_seed(0),
                                             _partners(partner_images, partner_labels), center)
    assert targets.shape == (5, classes)
    assert torch.allclose(targets.sum(1), torch.ones(5))
    weights = targets[:, :k]  # class 0 = the image itself, 1..3 = its partners
    assert (weights.max(1).values <= 0.65 + 1e-6).all() and (weights >= 0).all()
    stacked = torch.cat([images.unsqueeze(1), partner_images.view(5, k - 1, 1, 4, 4)], 1)
    expected = (weights.view(5, k, 1, 1, 1) * stacked).sum(1)
    if name == "mixup":
        assert torch.allclose(mixed, expected, atol=1e-6)
    else:  # GradAttack: every normalised pixel's sign flipped (x -> 2 mean - x) or kept
        kept = torch.isclose(mixed, expected, atol=1e-6)
        flipped = torch.isclose(mixed, 2 * 0.3 - expected, atol=1e-6)
        assert (kept | flipped).all() and not torch.isclose(mixed, 1 - expected).all()
        assert 0.3 < flipped.float().mean() < 0.7
        paper, _ = create_defense(name, k, {"flip_center": "half"}).transform_batch(
            images, labels, classes, torch.Generator().manual_seed(0),
            _partners(partner_images, partner_labels), center)
        assert (torch.isclose(paper, expected, atol=1e-6)
                | torch.isclose(paper, 1 - expected, atol=1e-6)).all()


def test_training_mixes_each_image_with_distinct_partners_not_itself():
    # GradAttack enforces k distinct images per encoding; drawing with replacement from
    # the user's shard could mix an image with itself.
    seen = []

    class Spy(type(create_defense("mixup", 4))):
        def transform_batch(self, images, labels, num_classes, generator=None, draw=None,
                            center=None):
            partners, _ = draw(len(images) * 3)
            seen.append((images, partners))
            return images, labels

    x, y = torch.rand(40, 1, 8, 8), torch.arange(40) % 10
    model = build_model("lenet", 1, 10, 8, seed=0)
    train(model, FederatedData(x, y, x[:10], y[:10]), Spy(4), TrainingSettings.from_config(
        {"users": 2, "batch_size": 4, "epochs": 0.5, "lr": 0.01, "lr_schedule": {}}), seed=0)
    assert seen
    for images, partners in seen:
        rows = {tuple(p.flatten().tolist()) for p in partners}
        assert len(rows) == len(partners)  # no partner twice
        assert not rows & {tuple(i.flatten().tolist()) for i in images}  # never itself


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_every_defense_runs_in_a_privacy_job(name):
    record, grid = run(DIGITS, name, TEST_RATIOS[name], {}, "idlg", {"iterations": 2},
                       seed=0, num_images=2, batch_size=2)
    roles = ["broadcaster", "member"] if name == "adgp" else ["user"]
    assert [r["role"] for r in record["rows"]] == [role for role in roles for _ in range(2)]
    assert len(grid) == 2 * (1 + len(roles))  # originals, then each role's reconstructions
    assert all(r["status"] in ("ok", "diverged") for r in record["rows"])
    if name == "dp_gaussian":
        assert record["rows"][0]["dp_epsilon"] > 0


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_every_defense_trains_a_round(name):
    train_data, test_data = load_dataset(DIGITS, "train"), load_dataset(DIGITS, "test")
    x, y = train_data.samples(list(range(64)))
    tx, ty = test_data.samples(list(range(32)))
    defense = create_defense(name, TEST_RATIOS[name])
    model = build_model("lenet", 1, 10, 8, seed=0, wrap=defense.wrap_model)
    settings = TrainingSettings.from_config({"users": 2, "batch_size": 4, "epochs": 0.25,
                                             "lr": 0.01, "lr_schedule": {}})
    splits = FederatedData(x, y, tx, ty, train_data.normalize, num_classes=10)
    records = train(model, splits, defense, settings, seed=0)
    assert records[-1]["round"] >= 1
    assert math.isfinite(records[-1]["train_loss"])
    assert records[-1]["upload_bytes"] > 0


def test_adgp_attacks_a_member_masked_by_another_users_band():
    # The broadcaster's upload is DGP's; a member's goes out at the broadcaster's mask,
    # so some of its own largest entries are sent (DGP's "drop the largest" fails for it).
    from dgp.protocol import Protocol
    from jobs.privacy import _case, _prepare, _reconstruct, _score, _setup

    job = _setup(DIGITS, "adgp", 0.8, {}, "idlg", {"iterations": 1}, seed=0, num_images=16,
                 torch_device=torch.device("cpu"), checkpoint=None, protocol=Protocol())
    case = _case(job, 0)
    images, labels = job.data.samples(job.indices)
    gradients = parameter_gradients(case.model, job.data.normalize(images), labels)
    top = [rank_band_mask(g, 0, max(1, round(0.05 * g.numel()))) for g in gradients]
    own_band = create_defense("dgp", 0.8).apply(gradients).masks
    assert sum(int((m & t).sum()) for m, t in zip(own_band, top, strict=True)) == 0
    from jobs.privacy import _shared_gradient

    member, upload = _shared_gradient(job, case, [job.data.normalize(images)], [labels],
                                      "member")
    assert upload is member
    leaked = sum(int((m & t).sum()) for m, t in zip(member.masks, top, strict=True))
    assert leaked / sum(int(t.sum()) for t in top) > 0.05  # measured about 23 %
    assert member.positions_known
    assert job.defense.constraint_penalty(gradients, member) == 0.0  # no band for members
    run = _prepare(job, 0, job.indices[:1], "member")
    rows, _ = _score(job, run, *_reconstruct(job, [run])[0])
    assert rows[0]["role"] == "member"


def test_transformed_images_are_scored_as_shared_and_shift_tolerant():
    from dgp.metrics import image_metrics, tolerant_psnr

    torch.manual_seed(0)
    original = torch.rand(2, 3, 32, 32)
    moved = torch.zeros_like(original)  # translated right by 14 px, black fill, mirrored
    moved[..., 14:] = original[..., :18]
    moved = moved.flip(-1)
    plain = image_metrics(moved, original, lpips=False)["psnr"]
    tolerant = tolerant_psnr(moved, original).tolist()
    assert max(plain) < 10 and min(tolerant) > 60  # perfect where they overlap
    assert min(tolerant_psnr(torch.rand(2, 3, 32, 32), original).tolist()) < 10

    record, _ = run(DIGITS, "ats", 1.0, {"policy": "3"}, "idlg", {"iterations": 1},
                    seed=0, num_images=1, batch_size=1)  # ATS's translateX, magnitude 9
    row = record["rows"][0]
    assert row["psnr_shared"] != row["psnr"] and row["psnr_tolerant"] >= row["psnr"] - 1e-4
    none, _ = run(DIGITS, "none", 0, {}, "idlg", {"iterations": 1}, seed=0, num_images=1,
                  batch_size=1)
    assert none["rows"][0]["psnr_shared"] == pytest.approx(none["rows"][0]["psnr"])
