"""Journal baselines: Matching Network and ProtoNet heads, and the majority vote, on known answers."""
from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from architectures import get_head_class, get_model
from architectures.matching import MatchingHead
from architectures.protonet import ProtoNetHead
from suite.journal.majority_vote import NO_VOTE, MajorityVoteTally, majority_votes
from suite.recipe import CrossEntropy

INF = float("inf")


# ---------------------------------------------------------------- ProtoNet

# Class 0: (2, 0) and (0, 2), prototype (1, 1); class 1: (0, 3); class 2: (-4, 0); class 3 absent.
SUPPORT = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, 2.0], [-4.0, 0.0]])
SUPPORT_LABELS = torch.tensor([0, 1, 0, 2])
QUERIES = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
# cos((3, 4), (1, 1)) = 7 / (5 sqrt 2), cos((3, 4), (0, 3)) = 12 / 15, cos((3, 4), (-4, 0)) = -12 / 20.
HAND_LOGITS = torch.tensor([[7 / (5 * math.sqrt(2)), 0.8, -0.6, -INF], [1 / math.sqrt(2), 0.0, -1.0, -INF]])


def test_protonet_logits_are_cosines_to_class_means() -> None:
    head = ProtoNetHead(2, 4)
    assert head.attribute == "mw" and head.uses_memory and head.uses_memory_labels
    assert get_head_class("protonet") is ProtoNetHead
    assert sum(p.numel() for p in head.parameters()) == 0
    logits = head(QUERIES, SUPPORT, memory_labels=SUPPORT_LABELS)
    torch.testing.assert_close(logits, HAND_LOGITS)


def test_protonet_weights_share_class_probability_among_its_samples() -> None:
    logits, weights = ProtoNetHead(2, 4)(QUERIES, SUPPORT, return_weights=True, memory_labels=SUPPORT_LABELS)
    p = torch.softmax(HAND_LOGITS, dim=1)
    # Samples 0 and 2 share class 0 (count 2); samples 1 and 3 are alone in classes 1 and 2.
    expected = torch.stack([p[:, 0] / 2, p[:, 1], p[:, 0] / 2, p[:, 2]], dim=1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    assert p[:, 3].eq(0).all()


def test_protonet_absent_class_is_minus_inf_and_never_predicted() -> None:
    # Class 0 is absent; every present class is at a negative cosine, so a zero (or NaN-as-class-0)
    # logit for the absent class would win the argmax.
    support = torch.tensor([[-1.0, 0.0], [0.0, -1.0], [-1.0, -1.0]])
    labels = torch.tensor([1, 2, 2])
    queries = torch.tensor([[1.0, 0.1], [0.2, 1.0]], requires_grad=True)
    logits = ProtoNetHead(2, 3)(queries, support, memory_labels=labels)
    assert not torch.isnan(logits).any()
    assert torch.isneginf(logits[:, 0]).all()
    assert torch.isfinite(logits[:, 1:]).all()
    assert (logits[:, 1:] < 0).all()
    assert logits.argmax(dim=1).ne(0).all()

    # The training loss (suite.recipe.CrossEntropy): the query whose class is absent (target logit
    # -inf) is left out, the other one's cross-entropy is the loss, and gradients stay finite.
    targets = torch.tensor([0, 2])
    loss = CrossEntropy()(logits, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits[1:], targets[1:]))
    loss.backward()
    assert torch.isfinite(queries.grad).all() and queries.grad.abs().sum() > 0


def test_protonet_ignores_support_order() -> None:
    order = torch.tensor([3, 1, 0, 2])
    head = ProtoNetHead(2, 4)
    logits, weights = head(QUERIES, SUPPORT, return_weights=True, memory_labels=SUPPORT_LABELS)
    shuffled, shuffled_weights = head(QUERIES, SUPPORT[order], return_weights=True, memory_labels=SUPPORT_LABELS[order])
    torch.testing.assert_close(shuffled, logits)
    torch.testing.assert_close(shuffled_weights, weights[:, order])


# ---------------------------------------------------------------- Matching Network

def lstm_step(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
              b_hh: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step written out (PyTorch's gate order: input, forget, cell, output)."""
    i, f, g, o = (x @ w_ih.t() + b_ih + h @ w_hh.t() + b_hh).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def support_fce_by_hand(head: MatchingHead, support: Tensor) -> Tensor:
    lstm = head.g
    forward_weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    backward_weights = (lstm.weight_ih_l0_reverse, lstm.weight_hh_l0_reverse, lstm.bias_ih_l0_reverse,
                        lstm.bias_hh_l0_reverse)
    m, d = support.shape
    h_forward, h_backward = [None] * m, [None] * m
    h, c = torch.zeros(d), torch.zeros(d)
    for t in range(m):  # the support is one sequence, in its order
        h, c = lstm_step(support[t], h, c, *forward_weights)
        h_forward[t] = h
    h, c = torch.zeros(d), torch.zeros(d)
    for t in reversed(range(m)):
        h, c = lstm_step(support[t], h, c, *backward_weights)
        h_backward[t] = h
    return torch.stack(h_forward) + torch.stack(h_backward) + support


def query_fce_by_hand(head: MatchingHead, queries: Tensor, g: Tensor) -> Tensor:
    cell = head.f
    weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    outputs = []
    for x in queries:
        h_hat, c = torch.zeros_like(x), torch.zeros_like(x)
        for _ in range(2):
            h = h_hat + x
            a = torch.softmax(g @ h, dim=0)
            r = a @ g
            h_hat, c = lstm_step(x, h + r, c, *weights)
        outputs.append(h_hat + x)
    return torch.stack(outputs)


def cosine_by_hand(a: Tensor, b: Tensor) -> Tensor:
    return torch.tensor([[float(u @ v / (u.norm() * v.norm())) for v in b] for u in a])


MATCHING_CLASSES = 5  # not 10, so a hard-coded 10 would show


@pytest.fixture
def matching_case() -> tuple[MatchingHead, Tensor, Tensor, Tensor]:
    torch.manual_seed(0)
    head = MatchingHead(4, MATCHING_CLASSES)
    queries, support = torch.randn(3, 4), torch.randn(6, 4)
    labels = torch.tensor([0, 1, 1, 3, 0, 2])  # class 4 absent
    return head, queries, support, labels


def test_matching_follows_the_journal_step_by_step(matching_case) -> None:
    head, queries, support, labels = matching_case
    assert head.attribute == "mw" and head.uses_memory and head.uses_memory_labels
    assert get_head_class("matching") is MatchingHead
    logits, alpha = head(queries, support, return_weights=True, memory_labels=labels)
    with torch.no_grad():
        g = support_fce_by_hand(head, support)
        f = query_fce_by_hand(head, queries, g)
        hand_alpha = torch.softmax(cosine_by_hand(f, g), dim=1)
        y_hat = hand_alpha @ F.one_hot(labels, MATCHING_CLASSES).float()
    torch.testing.assert_close(alpha, hand_alpha)
    torch.testing.assert_close(y_hat.sum(dim=1), torch.ones(3))
    assert y_hat[:, 4].eq(0).all()
    assert logits.shape == (3, MATCHING_CLASSES)
    torch.testing.assert_close(logits, y_hat.clamp(1e-6, 1 - 1e-6).log())
    assert logits[:, 4].eq(math.log(1e-6)).all()


def test_matching_cross_entropy_is_the_journal_loss(matching_case) -> None:
    head, queries, support, labels = matching_case
    targets = torch.tensor([1, 4, 3])  # one query of the absent class: clamped, large but finite
    logits, alpha = head(queries, support, return_weights=True, memory_labels=labels)
    p = (alpha.detach().double() @ F.one_hot(labels, MATCHING_CLASSES).double()).clamp(1e-6, 1 - 1e-6)
    journal = torch.stack([-torch.log(p[i, y] / p[i].sum()) for i, y in enumerate(targets.tolist())]).mean()
    loss = F.cross_entropy(logits, targets)
    torch.testing.assert_close(loss, journal.float())
    assert math.isfinite(loss.item()) and loss.item() > 5  # the absent-class query costs ~log(1e6)
    loss.backward()
    grads = [p.grad for p in head.parameters()]
    assert all(grad is not None and torch.isfinite(grad).all() for grad in grads)


def test_matching_reads_the_support_as_a_sequence(matching_case) -> None:
    head, queries, support, labels = matching_case
    order = torch.tensor([5, 2, 0, 3, 1, 4])
    with torch.no_grad():
        logits, alpha = head(queries, support, return_weights=True, memory_labels=labels)
        shuffled, shuffled_alpha = head(queries, support[order], return_weights=True, memory_labels=labels[order])
    assert not torch.allclose(shuffled, logits, atol=1e-4)
    assert not torch.allclose(shuffled_alpha, alpha[:, order], atol=1e-4)


def test_matching_runs_in_the_features_dtype(matching_case) -> None:
    head, queries, support, labels = matching_case
    logits = head.double()(queries.double(), support.double(), memory_labels=labels)
    assert logits.dtype == torch.float64 and torch.isfinite(logits).all()


def test_matching_parameter_counts_at_mobilenet_width() -> None:
    with torch.device("meta"):
        head = MatchingHead(1280, 10)
        model = get_model("mobilenet", 10, "matching")
    assert sum(p.numel() for p in head.g.parameters()) == 26_234_880
    assert sum(p.numel() for p in head.f.parameters()) == 13_117_440
    assert sum(p.numel() for p in head.parameters()) == 39_352_320
    assert sum(p.numel() for p in model.parameters()) == 41_636_432
    assert sum(p.numel() for name, p in model.named_parameters() if not name.startswith("mw.")) == 2_284_112


@pytest.mark.parametrize("modality", ["matching", "protonet"])
def test_full_model_forward_backward(modality: str) -> None:
    torch.manual_seed(0)
    model = get_model("shufflenet", 10, modality).train()
    inputs, memory = torch.randn(2, 3, 32, 32), torch.randn(4, 3, 32, 32)
    targets, memory_labels = torch.tensor([1, 3]), torch.tensor([3, 1, 7, 1])
    logits, weights = model(inputs, memory, return_weights=True, memory_labels=memory_labels)
    assert logits.shape == (2, 10) and weights.shape == (2, 4)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="labels of its memory set"):
        model(inputs, memory)
    F.cross_entropy(logits, targets).backward()
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.weight.grad is not None and torch.isfinite(stem.weight.grad).all()
    assert stem.weight.grad.abs().sum() > 0


def test_protonet_model_predicts_the_class_of_the_memory_image_it_is_shown() -> None:
    """Through the whole model (encoder, then the head with the memory labels): an input that is a
    memory image, alone in its class, has cosine exactly 1 with that class's prototype."""
    torch.manual_seed(0)
    model = get_model("shufflenet", 10, "protonet").eval()
    memory, labels, order = torch.randn(10, 3, 32, 32), torch.randperm(10), torch.randperm(10)
    with torch.no_grad():
        logits = model(memory[order], memory, memory_labels=labels)
    expected = labels[order]
    own = logits.gather(1, expected[:, None]).squeeze(1)  # 1 up to the norm epsilon (untrained features are short)
    torch.testing.assert_close(own, torch.ones(10), atol=1e-3, rtol=0)
    runner_up = logits.scatter(1, expected[:, None], -INF).max(dim=1).values
    assert bool((own - runner_up > 1e-3).all()) and logits.argmax(dim=1).tolist() == expected.tolist()


# ---------------------------------------------------------------- majority vote

def test_majority_vote_tie_goes_to_the_smaller_class() -> None:
    weights = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    mvo, mvy = majority_votes(weights, torch.tensor([3, 1, 2]), torch.tensor([4, 0, 0]), num_classes=5)
    assert mvo.tolist() == [1, 1]  # {3, 1} and {3, 1, 2}: all ties
    assert mvy.tolist() == [0, 0]  # {4, 0}: tie; {4, 0, 0}: 0 by count


def test_majority_vote_single_sample_and_zero_weights() -> None:
    predictions, labels = torch.tensor([2, 2, 5, 5, 5]), torch.tensor([6, 6, 4, 4, 4])
    weights = torch.tensor([
        [0.0, 0.0, 0.0, 1.0, 0.0],  # one sample: its class
        [0.9, 0.1, 0.0, 0.0, 0.0],  # the three 5s carry no weight: they do not vote
        [0.05, 0.05, 0.0, 0.9, 0.0],  # {2, 2, 5}: 2, one vote each (weighted, 5 would win)
        [0.0, 0.6, 0.2, 0.2, 0.0],  # {2, 5, 5}: 5 (weighted, 2 would win)
        [0.0, 0.0, 0.0, 0.0, 0.0],  # no positive weight: no vote
    ])
    mvo, mvy = majority_votes(weights, predictions, labels, num_classes=7)
    assert mvo.tolist() == [5, 2, 2, 5, NO_VOTE]
    assert mvy.tolist() == [4, 6, 6, 4, NO_VOTE]


def python_majority(weight_row: list[float], classes: list[int]) -> int:
    votes = Counter(c for w, c in zip(weight_row, classes) if w > 0)
    top = max(votes.values())
    return min(c for c, n in votes.items() if n == top)


def test_majority_vote_matches_a_python_loop() -> None:
    rng = random.Random(0)
    for _ in range(20):
        batch, m, classes = rng.randint(1, 6), rng.randint(1, 12), rng.randint(2, 5)
        weights = torch.tensor([[rng.choice([0.0, 0.0, rng.random()]) for _ in range(m)] for _ in range(batch)])
        weights[:, rng.randrange(m)] = 0.3  # at least one voter per input
        predictions = torch.tensor([rng.randrange(classes) for _ in range(m)])
        labels = torch.tensor([rng.randrange(classes) for _ in range(m)])
        mvo, mvy = majority_votes(weights, predictions, labels, classes)
        rows = weights.tolist()
        assert mvo.tolist() == [python_majority(row, predictions.tolist()) for row in rows]
        assert mvy.tolist() == [python_majority(row, labels.tolist()) for row in rows]


def test_majority_vote_tally() -> None:
    tally = MajorityVoteTally()
    assert math.isnan(tally.mvo_accuracy)
    labels = torch.tensor([0, 1, 2, 3])
    tally.update(labels, model_predictions=torch.tensor([0, 1, 2, 0]), mvo=torch.tensor([0, 1, 0, 0]),
                 mvy=torch.tensor([NO_VOTE, 1, 2, 3]))
    tally.update(torch.tensor([4]), model_predictions=torch.tensor([4]), mvo=torch.tensor([4]), mvy=torch.tensor([0]))
    assert (tally.total, tally.model_correct, tally.mvo_correct, tally.mvy_correct) == (5, 4, 3, 3)
    assert tally.model_accuracy == pytest.approx(80.0)
    assert tally.mvo_accuracy == pytest.approx(60.0) and tally.mvy_accuracy == pytest.approx(60.0)


def test_each_vote_counts_its_edge_cases_from_its_own_classes() -> None:
    """A pass's counters: MVO ties from the memory's predictions, MVY ties from its labels, single voters
    and inputs without a vote from the weights; every counter differs from the others here, so a counter
    read from the wrong votes (or added to the wrong name) shows."""
    from suite.journal.majority_vote_eval import VotePass

    predictions, labels = torch.tensor([3, 3, 1, 2, 5, 3]), torch.tensor([3, 4, 5, 5, 6, 7])
    weights = torch.tensor([
        [0.5, 0.5, 0.0, 0.0, 0.0, 0.0],  # predictions {3, 3}: no MVO tie; labels {3, 4}: MVY tie
        [0.0, 0.0, 0.5, 0.5, 0.0, 0.0],  # predictions {1, 2}: MVO tie; labels {5, 5}: none
        [0.0, 0.0, 0.0, 0.0, 0.4, 0.6],  # predictions {5, 3}: MVO tie; labels {6, 7}: MVY tie
        [0.4, 0.0, 0.0, 0.0, 0.0, 0.6],  # predictions {3, 3}: none; labels {3, 7}: MVY tie
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],  # one voter
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # none (no suite head does this; counted all the same)
    ])
    inputs = torch.tensor([3, 5, 5, 3, 6, 0])  # the inputs' labels
    logits = F.one_hot(torch.tensor([3, 1, 5, 3, 6, 0]), 8).float()
    result = VotePass()
    result.update(inputs, logits, weights, predictions, labels, num_classes=8)
    counts = result.as_dict()
    assert (counts["mvo_ties"], counts["mvy_ties"], counts["single_voter"], counts["no_vote"]) == (2, 3, 1, 1)
    # MVO: [3, 1, 3, 3, 5, -]; MVY: [3, 5, 6, 3, 6, -]; against [3, 5, 5, 3, 6, 0]
    assert (counts["total"], counts["model_correct"], counts["mvo_correct"], counts["mvy_correct"]) == (6, 5, 2, 4)


def test_protonet_scores_in_float32_under_autocast() -> None:
    # Low-precision cosines would underflow the norm epsilon; the head computes them in float32 even
    # inside an autocast region (the training step's AMP), giving the plain float32 logits.
    generator = torch.Generator().manual_seed(0)
    features, support = torch.randn(5, 8, generator=generator), torch.randn(6, 8, generator=generator)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    head = ProtoNetHead(8, 4)
    plain = head(features, support, memory_labels=labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = head(features, support, memory_labels=labels)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)
