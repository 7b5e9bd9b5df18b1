"""Label recovery as its own family (dgp/labels.py): every rule is scored by the share
of a batch's label multiset it recovers, on LeNet batches with repeated labels, against
chance and against the oracle (the labels-known threat model)."""

from __future__ import annotations

from math import comb

import pytest
import torch

from attacks import create_attack
from dgp.data import load_dataset
from dgp.gradients import parameter_gradients
from dgp.labels import (
    LABEL_RULES,
    class_probabilities,
    ilrg_counts,
    mean_prediction,
    recover_labels,
    rounded_counts,
)
from dgp.models import build_model
from jobs.labels import label_share
from jobs.privacy import run

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}


def _batches(count: int = 6, size: int = 8):
    """Batches of ``size`` digits from 3 classes each (so labels repeat), with gradients."""
    data = load_dataset(DIGITS, "test")
    _, every = data.samples(list(range(len(data.dataset))))
    public = load_dataset(DIGITS, "train")
    images, labels = public.samples(list(range(0, 1400, 5)))
    class_means = torch.stack([public.normalize(images[labels == c]).mean(0) for c in range(10)])
    for seed in range(count):
        generator = torch.Generator().manual_seed(seed)
        classes = torch.randperm(10, generator=generator)[:3]
        picks = classes[torch.randint(3, (size,), generator=generator)].tolist()
        order = torch.randperm(len(every), generator=generator).tolist()
        chosen = []
        for c in picks:
            chosen.append(next(i for i in order if int(every[i]) == c and i not in chosen))
        x, y = data.samples(chosen)
        model = build_model("lenet", 1, 10, 16, seed=seed).eval()
        yield model, parameter_gradients(model, data.normalize(x), y), y.tolist(), class_means


def test_every_rule_beats_chance_and_the_oracle_is_exact():
    # chance: 8 labels drawn uniformly share about 3 of 8 with a 3-class batch; Yin's rule
    # takes distinct labels, so repeats cap it; LLG and the bias rule count them
    shares = {rule: [] for rule in LABEL_RULES}
    chance = []
    for model, gradients, true, class_means in _batches():
        for rule in LABEL_RULES:
            predicted = recover_labels(rule, gradients, len(true), 10, model, class_means,
                                       torch.tensor(true)).tolist()
            assert len(predicted) == len(true), rule
            shares[rule].append(label_share(predicted, true))
        draw = torch.randint(10, (len(true),), generator=torch.Generator().manual_seed(len(chance)))
        chance.append(label_share(draw.tolist(), true))
    mean = {rule: sum(v) / len(v) for rule, v in shares.items()}
    assert mean["oracle"] == 1.0
    for rule in ("llg", "bias"):
        assert mean[rule] > sum(chance) / len(chance) + 0.2, (rule, mean, chance)
        assert mean[rule] > mean["yin"] + 0.2, (rule, mean)  # counting repeats pays
    # Yin's distinct labels can find the batch's classes but none of their repeats
    assert mean["yin"] <= 3 / 8
    # the default counts repeats when the server has public data (LLG+), and falls back to
    # Yin's without it
    assert mean["auto"] == mean["llg_plus"] >= mean["bias"]
    model, gradients, true, _ = next(_batches())
    assert torch.equal(recover_labels("auto", gradients, len(true), 10, model, None),
                       recover_labels("yin", gradients, len(true), 10, model, None))


def test_bias_rule_counts_are_exact_for_a_known_mean_prediction():
    # the bias gradient is mean(p) - mean(y): with the true mean prediction the counts are
    # the batch's own
    model = build_model("lenet", 1, 10, 8, seed=0).eval()
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([3, 3, 3, 7, 7, 1])
    gradients = parameter_gradients(model, x, y)
    with torch.no_grad():
        exact = model(x).softmax(-1).mean(0)
    from dgp.labels import bias_labels

    assert sorted(bias_labels(gradients, 6, 10, exact).tolist()) == sorted(y.tolist())
    assert mean_prediction(model, None, 10).sum().item() == pytest.approx(1.0)


def chance_share(true: list[int], num_classes: int) -> float:
    """The share a uniform random guess of len(true) labels recovers, in expectation: by
    linearity, sum over the batch's classes of E[min(X_c, n_c)], X_c ~ Binomial(B, 1/K),
    over B."""
    size, p = len(true), 1 / num_classes
    hits = sum(min(k, true.count(c)) * comb(size, k) * p ** k * (1 - p) ** (size - k)
               for c in set(true) for k in range(size + 1))
    return hits / size


def test_llg_plus_and_ilrg_count_repeats_far_above_chance():
    # 3-class batches of 4 and 8 (labels repeat), 6 seeds each: a uniform guess recovers
    # 0.26 of a batch of 4 and 0.28 of a batch of 8 (chance_share); both rules recover
    # over 0.9, LLG+ (impact from public data) well above LLG (impact from the gradient)
    shares = {"llg": [], "llg_plus": [], "ilrg": [], "guess": []}
    chance = []
    for size in (4, 8):
        for model, gradients, true, class_means in _batches(count=6, size=size):
            for rule in ("llg", "llg_plus", "ilrg"):
                predicted = recover_labels(rule, gradients, size, 10, model, class_means)
                assert len(predicted) == size and predicted.dtype == torch.long, rule
                shares[rule].append(label_share(predicted.tolist(), true))
            guess = torch.randint(10, (size,), generator=torch.Generator().manual_seed(len(chance)))
            shares["guess"].append(label_share(guess.tolist(), true))
            chance.append(chance_share(true, 10))
    mean = {rule: sum(v) / len(v) for rule, v in shares.items()}
    bar = sum(chance) / len(chance) + 0.4
    assert mean["guess"] < bar, (mean, bar)  # the bar tells a rule from a random guess
    for rule in ("llg_plus", "ilrg"):
        assert mean[rule] > bar, (rule, mean, bar)
    assert mean["llg_plus"] > mean["llg"] + 0.1, mean


def test_ilrg_counts_are_exact_for_the_true_class_probabilities():
    # what iLRG guarantees: with each class's true mean softmax the bias equations hold
    # exactly, and the least-squares counts are the batch's
    model = build_model("lenet", 1, 10, 8, seed=0).eval()
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([3, 3, 3, 7, 7, 1])
    gradients = parameter_gradients(model, x, y)
    with torch.no_grad():
        probs = model(x).softmax(-1)
    exact = torch.full((10, 10), 0.1)
    for c in y.unique():
        exact[c] = probs[y == c].mean(0)
    counts = ilrg_counts(gradients, 6, 10, exact)
    torch.testing.assert_close(counts, torch.bincount(y, minlength=10).double(),
                               atol=1e-4, rtol=0)
    assert rounded_counts(counts, 6).tolist() == sorted(y.tolist())


def distinct_class_gradients(data, count: int, seed: int, image_size: int = 16):
    """(labels, untrained LeNet, its gradient) of ``count`` test images of distinct random
    classes, all drawn with ``seed``."""
    _, every = data.samples(list(range(len(data.dataset))))
    generator = torch.Generator().manual_seed(seed)
    classes = torch.randperm(10, generator=generator)[:count].tolist()
    order = torch.randperm(len(every), generator=generator).tolist()
    x, y = data.samples([next(i for i in order if int(every[i]) == c) for c in classes])
    model = build_model("lenet", 1, 10, image_size, seed=seed).eval()
    return y, model, parameter_gradients(model, data.normalize(x), y)


def test_ilrg_restores_distinct_labels_on_an_untrained_model():
    # the paper's easy case: an untrained model, 4 images of distinct classes; the class
    # probabilities come from the gradient alone (no public data). Exact on 39 of 40 such
    # batches (seed 2 of these 10 fails: every image puts 0.3 on classes 1 and 7, so the
    # rows' embeddings are mixed); a guess is exact with probability 4!/10^4
    data = load_dataset(DIGITS, "test")
    exact = 0
    for seed in range(10):
        y, model, gradients = distinct_class_gradients(data, 4, seed)
        predicted = recover_labels("ilrg", gradients, 4, 10, model)
        exact += sorted(predicted.tolist()) == sorted(y.tolist())
    assert exact >= 9, exact
    # without a model iLRG's probabilities are uniform; LLG+ without public data is LLG
    assert class_probabilities(gradients, 10, None).sum(1).allclose(torch.ones(10).double())
    assert torch.equal(recover_labels("llg_plus", gradients, 4, 10, model),
                       recover_labels("llg", gradients, 4, 10, model))


def test_attacks_take_their_labels_from_the_chosen_rule():
    # the oracle threat model hands the job's labels to the attack; other rules never see them
    assert create_attack("ig", {"label_rule": "oracle"}).needs_true_labels
    assert not create_attack("ig").needs_true_labels
    with pytest.raises(ValueError, match="label_rule"):
        create_attack("ig", {"label_rule": "guess"})
    record, _ = run(DIGITS, "topk", 0.99, {}, "idlg", {"iterations": 1, "label_rule": "oracle"},
                    seed=0, num_images=2, batch_size=2)
    assert all(r["label_acc"] == 1.0 for r in record["rows"])
