"""Tests that fail when the science breaks (issue 9): the protocol's numbers on known answers.

Consistency tests (train vs eval, killed vs uninterrupted, ours vs the original's fixtures) miss a
bug that both sides share. Here the function production uses (`evaluate`, `train_run`,
`explanation_pass`, `vote_pass`, `explain_inputs`) runs on data whose answer is known:

- "id images": tiny images whose pixel value is their id, through a transform that gives the value
  back, so a spy tells exactly which image went where (test set 0..22, the run's subset 100..139);
- stub models whose predictions (and memory weights) are set functions of those ids;
- a test set of 23 images in batches of 10: a partial last batch, so dividing by the wrong count or
  dropping a batch shows;
- the expected numbers computed by a plain loop that replays the documented draws.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

import architectures
import datasets
from conftest import tiny_config
from suite import explain
from suite.config import TrainSettings, validate
from suite.data import (
    TRAINING_STREAMS, BatchTransform, MemorySampler, ResidentImages, RunData, batch_transform, generator,
    split_indices,
)
from suite.evaluation import EVALUATION_MEMORY, TEST_ORDER, evaluate
from suite.journal import majority_vote_eval
from suite.run_files import metrics_path, read_metrics
from suite.training import train_run
from trained_runs import CHANCE, trained_runs

CPU = torch.device("cpu")
TRAIN_IDS = list(range(100, 140))  # the run's training subset
TEST_IDS = list(range(23))  # batches of 10, 10 and 3
BATCH = 10
MEMORY = 6
SCALE = 2.0  # the stubs' logit of their predicted class (0 elsewhere)
IDENTITY = BatchTransform(torch.zeros(1, 3, 1, 1), torch.full((1, 3, 1, 1), 1 / 255))  # pixels come back as ids


def label_of(image_id: int) -> int:
    return image_id % 10


def id_images(ids: list[int]) -> Tensor:
    return torch.tensor(ids, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()


def ids_of(tensor: Tensor) -> list[int]:
    """Ids of images [n, 3, 2, 2] or of their stub encodings [n, 1]."""
    return tensor.reshape(tensor.shape[0], -1)[:, 0].round().long().tolist()


def id_data(spec: str = "CIFAR10", seed: int = 0) -> RunData:
    def resident(ids: list[int]) -> ResidentImages:
        return ResidentImages(id_images(ids), torch.tensor([label_of(i) for i in ids]), list(ids))

    return RunData(spec=datasets.get_spec(spec), device=CPU, seed=seed, train=resident(TRAIN_IDS),
                   test=resident(TEST_IDS), train_transform=IDENTITY, test_transform=IDENTITY, batch_size_train=8,
                   batch_size_test=BATCH, drop_last=datasets.get_spec(spec).drop_last, mem_examples=MEMORY,
                   generators={stream: generator(seed, stream, CPU) for stream in TRAINING_STREAMS})


def one_hot_logits(classes: list[int]) -> Tensor:
    return SCALE * nn.functional.one_hot(torch.tensor(classes), 10).float()


def cross_entropy(predicted: int, label: int) -> float:
    """CE of the stubs' logits (SCALE on the predicted class, 0 on the nine others)."""
    log_total = math.log(math.exp(SCALE) + 9)
    return log_total - SCALE if predicted == label else log_total


def batches_of(order: list[int]) -> list[list[int]]:
    return [order[start:start + BATCH] for start in range(0, len(order), BATCH)]


class StdStub(nn.Module):
    """A std model predicting `predict(id)` for each input; records the ids of every batch."""

    uses_memory = uses_memory_labels = False
    num_classes = 10

    def __init__(self, predict):
        super().__init__()
        self.predict, self.batches = predict, []

    def forward(self, x: Tensor, memory=None, return_weights=False, memory_labels=None) -> Tensor:
        ids = ids_of(x)
        self.batches.append(ids)
        return one_hot_logits([self.predict(i) for i in ids])


class MemoryStub(nn.Module):
    """A memory model whose encoding of an image is its id. Input i, classified with memory ids M, is
    predicted `predict(i, M)`; its weights put 1 on memory position `top(i, M)`. Every `classify`
    call is recorded as (input ids, memory ids)."""

    uses_memory, uses_memory_labels = True, False
    num_classes = 10

    def __init__(self, predict, top=lambda i, memory: 0):
        super().__init__()
        self.predict, self.top = predict, top
        self.encoded: list[list[int]] = []
        self.calls: list[tuple[list[int], list[int]]] = []

    def forward_encoder(self, x: Tensor) -> Tensor:
        self.encoded.append(ids_of(x))
        return x[:, :1, 0, 0].float()

    def classify(self, features, memory_features, memory_labels=None, return_weights=False):
        inputs, memory = ids_of(features), ids_of(memory_features)
        self.calls.append((inputs, memory))
        logits = one_hot_logits([self.predict(i, memory) for i in inputs])
        weights = torch.zeros(len(inputs), len(memory))
        for row, i in enumerate(inputs):
            weights[row, self.top(i, memory)] = 1.0
        return (logits, weights) if return_weights else logits

    def forward(self, x, memory, return_weights=False, memory_labels=None):
        return self.classify(self.forward_encoder(x), self.forward_encoder(memory), memory_labels, return_weights)


def draws(data: RunData, stream: str, count: int) -> list[list[int]]:
    """The first `count` memory draws (ids) of a seeded evaluation stream, replayed."""
    sampler = data.memory_sampler(stream)
    return [ids_of(sampler.draw()[0]) for _ in range(count)]


def walk_order(data: RunData, passes: int) -> list[list[int]]:
    """Test ids in the order each pass walks them: in order, or a fresh seeded permutation per pass."""
    if not data.spec.shuffle_test:
        return [list(TEST_IDS)] * passes
    order = generator(data.seed, TEST_ORDER, CPU)
    return [torch.randperm(len(TEST_IDS), generator=order).tolist() for _ in range(passes)]


# ---- evaluation: the accuracy and loss of the protocol ----------------------------------------------
CORRECT = {0, 5, 12, 20, 21, 22}  # the last (partial) batch is all correct


def test_std_accuracy_counts_every_test_image_once_over_the_whole_test_set():
    model = StdStub(lambda i: label_of(i) if i in CORRECT else label_of(i + 1))
    result = evaluate(model, id_data(), passes=5)
    assert model.batches == batches_of(TEST_IDS)  # each test image once, batches of 10, 10, 3
    assert result.pass_accuracies == (100.0 * 6 / 23,) and result.accuracy == 100.0 * 6 / 23
    expected_loss = sum(sum(cross_entropy(model.predict(i), label_of(i)) for i in batch) / len(batch)
                        for batch in batches_of(TEST_IDS))  # the sum of the batch means, as the original
    assert result.loss == pytest.approx(expected_loss, rel=1e-6)


def _predict_with_memory(i: int, memory: list[int]) -> int:
    """Right when (i + the smallest memory id) is even: the accuracy depends on every draw."""
    return label_of(i) if (i + min(memory)) % 2 == 0 else label_of(i + 3)


@pytest.mark.parametrize("spec", ["CIFAR10", "CINIC10"])  # CINIC10: test batches in a seeded shuffled order
def test_memory_model_accuracy_is_the_mean_of_passes_with_one_fresh_draw_per_test_batch(spec):
    data = id_data(spec)
    model = MemoryStub(_predict_with_memory)
    result = evaluate(model, data, passes=3)
    # The protocol replayed: per pass, per test batch, the next draw of the run's evaluation stream.
    orders = walk_order(data, 3)
    memories = iter(draws(data, EVALUATION_MEMORY, 9))
    accuracies, losses, expected_calls = [], [], []
    for order in orders:
        correct, loss = 0, 0.0
        for batch in batches_of(order):
            memory = next(memories)
            expected_calls.append((batch, memory))
            predicted = [_predict_with_memory(i, memory) for i in batch]
            correct += sum(p == label_of(i) for p, i in zip(predicted, batch))
            loss += sum(cross_entropy(p, label_of(i)) for p, i in zip(predicted, batch)) / len(batch)
        accuracies.append(100.0 * correct / len(TEST_IDS))
        losses.append(loss)
    assert len(set(accuracies)) > 1  # the draws matter: a pass cannot stand for another
    assert model.calls == expected_calls
    assert result.pass_accuracies == tuple(accuracies) and result.accuracy == pytest.approx(sum(accuracies) / 3)
    assert result.loss == pytest.approx(losses[-1], rel=1e-6)  # the last pass's loss, as the original printed
    for _, memory in model.calls:  # memories: MEMORY distinct images of the run's subset, never test images
        assert len(set(memory)) == MEMORY and set(memory) <= set(TRAIN_IDS)
    encoded_tests = [ids for ids in model.encoded if set(ids) <= set(TEST_IDS)]
    assert sorted(sum(encoded_tests, [])) == TEST_IDS  # each test image encoded once


# ---- evaluation leaves the model's training state alone -----------------------------------------------
def _image_data(seed: int = 0) -> RunData:
    """Random 32x32 images (30 training, 23 test), the CIFAR10 transforms."""
    g = torch.Generator().manual_seed(seed)
    spec = datasets.get_spec("CIFAR10")

    def resident(n: int) -> ResidentImages:
        return ResidentImages(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                              torch.randint(0, 10, (n,), generator=g), list(range(n)))

    return RunData(spec=spec, device=CPU, seed=seed, train=resident(30), test=resident(23),
                   train_transform=batch_transform(spec, CPU, True), test_transform=batch_transform(spec, CPU, False),
                   batch_size_train=8, batch_size_test=BATCH, drop_last=spec.drop_last, mem_examples=MEMORY,
                   generators={stream: generator(seed, stream, CPU) for stream in TRAINING_STREAMS})


def _batchnorm_spy(model: nn.Module) -> list[bool]:
    """`training` of every BatchNorm call (pre-hooks)."""
    seen: list[bool] = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(lambda m, _: seen.append(m.training))
    return seen


def _buffers(model: nn.Module) -> dict[str, Tensor]:
    return {name: value.clone() for name, value in model.named_buffers()}


@pytest.mark.parametrize("modality", ["std", "encoder_memory"])
def test_evaluating_a_model_in_train_mode_uses_eval_mode_and_leaves_batchnorm_statistics(modality):
    """train.py evaluates the model its last epoch left in train mode: test images must not update the
    BatchNorm statistics, and the numbers must be those of the model in eval mode."""
    torch.manual_seed(0)
    model = architectures.get_model("shufflenet", 10, modality)
    data = _image_data()
    with torch.no_grad():  # move the statistics away from their initial values, as training does
        model.train()
        model(data.test_inputs(torch.arange(10)) * 3 + 1, *(
            (data.training_memory().draw()[0],) if model.uses_memory else ()))
    before = _buffers(model)
    seen = _batchnorm_spy(model)
    from_train_mode = evaluate(model.train(), data, passes=2)
    assert seen and not any(seen), "a BatchNorm layer ran in train mode during evaluation"
    assert all(torch.equal(before[name], value) for name, value in model.named_buffers())
    assert evaluate(model.eval(), data, passes=2) == from_train_mode


def test_explanations_and_votes_run_the_model_in_eval_mode():
    torch.manual_seed(0)
    model = architectures.get_model("shufflenet", 10, "encoder_memory")
    data = _image_data()
    before = _buffers(model)
    seen = _batchnorm_spy(model)
    restored = SimpleNamespace(data=data, model=model.train(), seed=0, settings=SimpleNamespace(mem_examples=MEMORY))
    explain.explain_run(restored, passes=1)
    model.train()
    majority_vote_eval.vote_evaluation(model, data, passes=1)
    assert seen and not any(seen)
    assert all(torch.equal(before[name], value) for name, value in model.named_buffers())


# ---- memories carry the training transform ------------------------------------------------------------
def test_memories_are_drawn_with_the_training_transform_in_training_and_evaluation():
    """The protocol: a memory is a draw of the subset *with the training transform* (flips on CIFAR10),
    at training and at test time alike. Images here differ left and right, so a flip shows."""
    data = id_data()
    left_right = torch.stack([data.train.images[:, :, :, 0], data.train.images[:, :, :, 1] // 2], dim=-1)
    data.train.images = left_right.contiguous()
    data.train_transform = BatchTransform(IDENTITY.mean, IDENTITY.std, flip=True)
    for sampler in (data.training_memory(), data.memory_sampler(EVALUATION_MEMORY)):
        flipped = 0
        for _ in range(20):
            images, _ = sampler.draw()
            right, left = images[:, 0, 0, 1], images[:, 0, 0, 0]
            flipped += int((left < right).sum())  # unflipped images are brighter on the left
        assert 0.3 < flipped / (20 * MEMORY) < 0.7


# ---- training: one run through train_run, with spies ---------------------------------------------------
TRAINING_EPOCHS = 3


@pytest.fixture(scope="module")
def spied_run(tmp_path_factory, tiny_dataset_dir):
    """A tiny ViT memory run: 40 training images in batches of 16 (drop_last: 2 steps per epoch), 3 epochs,
    lr 0.05 divided by 10 after epochs 1 and 2, a test evaluation after every epoch (eval_every: 1).

    Recorded: every memory draw (the phase it belongs to, its pool and positions), `training` of every
    module call per phase, and the loss and correct count of every training step."""
    from suite import recipe, training

    root = tmp_path_factory.mktemp("spied")
    section = {"num_classes": 10, "num_epochs": TRAINING_EPOCHS, "opt_milestones": [1, 2], "mem_examples": 10,
               "lr_schedule": "multistep", "validation_size": 20}
    raw = tiny_config(root, tiny_dataset_dir, model="vit", runs=1, train_examples=40, batch_size_train=16,
                      eval_passes=2, eval_every=1, device="cpu", CIFAR10=section,
                      model_options={"patches": 4, "depth": 1, "hidden": 16, "heads": 2, "mlp_hidden": 16})
    settings = TrainSettings(validate(raw, datasets.list_datasets()), "encoder_memory")
    log = SimpleNamespace(phase="setup", epoch=0, draws=[], modes=set(), steps=[])

    original_draw_indices = MemorySampler.draw_indices
    original_epoch = training.train_epoch
    original_build = training.build_model
    original_loss = recipe.CrossEntropy.forward

    def draw_indices(self):
        positions = original_draw_indices(self)
        log.draws.append((log.phase, log.epoch, list(self.pool.indices), positions.tolist()))
        return positions

    def train_epoch(state, *args, **kwargs):
        log.phase, log.epoch = "train", log.epoch + 1
        try:
            return original_epoch(state, *args, **kwargs)
        finally:
            log.phase = "evaluation"

    def build_model(*args, **kwargs):
        model = original_build(*args, **kwargs)
        for module in model.modules():
            module.register_forward_pre_hook(lambda m, _: log.modes.add((log.phase, m.training)))
        return model

    def loss(self, logits, targets):
        value = original_loss(self, logits, targets)
        if log.phase == "train":
            log.steps.append((log.epoch, float(value.detach()), int((logits.argmax(1) == targets).sum()), len(targets)))
        return value

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MemorySampler, "draw_indices", draw_indices)
        patch.setattr(training, "train_epoch", train_epoch)
        patch.setattr(training, "build_model", build_model)
        patch.setattr(recipe.CrossEntropy, "forward", loss)
        record = train_run(settings, 1).record
    rows = read_metrics(metrics_path(settings.cell_folder, 1))
    subset = split_indices(200, 40, 20, 0)[0]
    return SimpleNamespace(record=record, rows=rows, log=log, subset=subset)


def test_the_learning_rate_of_each_epoch_follows_the_schedule(spied_run):
    """The scheduler is stepped once per epoch inside the real loop: 0.05, then / 10 at each milestone."""
    assert [row["learning_rate"] for row in spied_run.rows] == pytest.approx([0.05, 0.005, 0.0005], rel=1e-9)


def test_every_training_step_draws_a_fresh_memory_from_the_runs_subset(spied_run):
    training_draws = [d for d in spied_run.log.draws if d[0] == "train"]
    steps_per_epoch = [sum(1 for s in spied_run.log.steps if s[0] == epoch) for epoch in (1, 2, 3)]
    assert steps_per_epoch == [2, 2, 2]  # 40 images, batches of 16, the remainder dropped
    assert [sum(1 for d in training_draws if d[1] == epoch) for epoch in (1, 2, 3)] == steps_per_epoch
    for phase, _, pool, positions in spied_run.log.draws:  # training and evaluation draws alike
        assert pool == spied_run.subset and len(set(positions)) == len(positions) == 10
    positions = [tuple(d[3]) for d in training_draws]
    assert len(set(positions)) == len(positions)  # never the same memory twice


def test_training_runs_in_train_mode_and_every_evaluation_in_eval_mode(spied_run):
    """With eval_every, evaluations sit between epochs: each epoch must go back to train mode."""
    assert spied_run.log.modes == {("train", True), ("evaluation", False)}


def test_the_epoch_loss_and_training_accuracy_are_means_over_the_epochs_steps_and_inputs(spied_run):
    for row in spied_run.rows:
        steps = [s for s in spied_run.log.steps if s[0] == row["epoch"]]
        assert row["loss"] == pytest.approx(sum(s[1] for s in steps) / len(steps), rel=1e-6)
        assert row["train_accuracy"] == pytest.approx(100.0 * sum(s[2] for s in steps) / sum(s[3] for s in steps))


def test_the_last_periodic_evaluation_is_the_recorded_one(spied_run):
    """Same weights, same seeded draws: the test accuracy logged after the last epoch is the record's."""
    assert spied_run.rows[-1]["test_accuracy"] == spied_run.record["accuracy"]
    assert len(spied_run.record["pass_accuracies"]) == 2


# ---- the shared trained runs learn ------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_dataset_dir):
    return trained_runs(tmp_path_factory, tiny_dataset_dir)


def test_the_shared_runs_learn_far_above_chance(runs):
    """Measured: encoder_memory 90 and 85 %, std 90 %, memory 32 % (10 classes: chance is 10 %)."""
    from suite.run_files import finished_runs

    records = {modality: list(finished_runs(runs.folders[modality]).values()) for modality in ("encoder_memory", "std", "memory")}
    assert [r["run"] for r in records["encoder_memory"]] == [1, 2]
    for record in records["encoder_memory"] + records["std"]:
        assert record["accuracy"] >= 5 * CHANCE, record
    assert records["memory"][0]["accuracy"] >= 2 * CHANCE  # the memory-only baseline learns, slowly
    # Evaluation passes differ, so that the tests comparing passes compare something.
    memory_runs = records["encoder_memory"] + records["memory"]
    assert any(len(set(r["pass_accuracies"])) > 1 for r in memory_runs)


# ---- explanations: M explained with a second, independent draw A -------------------------------------
def _memory_prediction(i: int, memory: list[int]) -> int:
    """Memory samples (ids >= 100) are predicted from their own id and the memory they are classified
    with; test inputs are predicted right."""
    return label_of(i + min(memory)) if i >= 100 else label_of(i)


def _top(i: int, memory: list[int]) -> int:
    return i % len(memory)


def test_explanation_accuracy_classifies_each_memory_with_the_next_draw(tmp_path):
    data = id_data()
    model = MemoryStub(_memory_prediction, _top)
    restored = SimpleNamespace(data=data, model=model, seed=0, settings=SimpleNamespace(mem_examples=MEMORY))
    result = explain.explain_run(restored, passes=2)
    replay = iter(draws(data, "explanation_memory_subset", 2 * 2 * 3))
    expected_calls, passes = [], []
    for _ in range(2):
        explained = 0
        for batch in batches_of(TEST_IDS):
            memory, auxiliary = next(replay), next(replay)
            expected_calls += [(batch, memory), (memory, auxiliary)]
            q = [_memory_prediction(j, auxiliary) for j in memory]
            explained += sum(q[_top(i, memory)] == label_of(i) for i in batch)
        passes.append(100.0 * explained / len(TEST_IDS))
    assert model.calls == expected_calls
    assert all(set(m) != set(a) for (_, m), (_, a) in zip(expected_calls[::2], expected_calls[1::2]))
    assert [p.explanation_accuracy for p in result.passes] == passes
    assert 0 < passes[0] < 100  # examples and counterfactuals both occur


def test_heat_maps_draw_m_then_a_per_input_in_test_order(monkeypatch):
    data = id_data()
    seen = []

    def record(model, image, memory, auxiliary, *args, index=0, label=-1, **kwargs):
        seen.append((ids_of(image.unsqueeze(0))[0], ids_of(memory[0]), ids_of(auxiliary[0]), index, label))
        return SimpleNamespace(index=index)

    monkeypatch.setattr(explain, "explain_input", record)
    restored = SimpleNamespace(data=data, model=None, seed=0, settings=SimpleNamespace(config={"normalization": "paper"}))
    figures = []
    assert explain.explain_inputs(restored, 12, "ones", figures.append) == 20  # 12 rounds up to whole figures of 10
    replay = draws(data, "heatmaps", 40)
    assert seen == [(i, replay[2 * i], replay[2 * i + 1], i, label_of(i)) for i in range(20)]
    assert [[item.index for item in figure] for figure in figures] == [list(range(10)), list(range(10, 20))]


def test_majority_vote_uses_the_evaluation_memories_and_an_auxiliary_stream():
    data = id_data()
    model = MemoryStub(_memory_prediction, _top)
    passes = majority_vote_eval.vote_evaluation(model, data, passes=2)
    memories = draws(data, EVALUATION_MEMORY, 6)
    auxiliaries = draws(data, majority_vote_eval.AUXILIARY_STREAM, 6)
    batches = batches_of(TEST_IDS) * 2
    expected = [call for b, m, a in zip(batches, memories, auxiliaries) for call in ((b, m), (m, a))]
    assert model.calls == expected
    for result in passes:  # one voter per input (weight 1 on one sample): MVY is that sample's label
        assert result.single_voter == 23 and result.tally.model_accuracy == 100.0
