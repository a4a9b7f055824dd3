"""How memories are drawn (config key `memory_sampling`): the original's uniform draw, unchanged, and
class-balanced draws, checked on known answers, statistically and through real runs."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from scipy import stats

import datasets
from conftest import run_script, tiny_config, write_config
from suite.config import TrainSettings, validate
from suite.data import MemorySampler, ResidentImages, build_run_data
from suite.restore import CheckpointOptions, restore_run
from suite.sampling import get_sampling, list_samplings
from suite.sampling.class_balanced import water_fill
from suite.training import train_run

# 24 images: class 0 has 10, class 1 has 3, class 2 has 10, class 3 has 1 (in a shuffled order)
LABELS = torch.tensor([0] * 10 + [1] * 3 + [2] * 10 + [3])[torch.randperm(24, generator=torch.Generator().manual_seed(1))]


def draws(name: str, labels: torch.Tensor, size: int, count: int, seed: int = 0) -> list[list[int]]:
    strategy, generator = get_sampling(name)(labels, size), torch.Generator().manual_seed(seed)
    return [strategy.draw(generator).tolist() for _ in range(count)]


def test_the_registry_holds_both_strategies_and_refuses_others():
    assert list_samplings() == ["class_balanced", "uniform"]
    with pytest.raises(ValueError, match="unknown memory sampling 'balanced'; valid: class_balanced, uniform"):
        get_sampling("balanced")


def test_uniform_is_the_originals_draw_unchanged():
    """The first `size` of one random permutation of the pool, from the stream's generator: the numbers
    every run had before strategies existed."""
    generator = torch.Generator().manual_seed(5)
    expected = [torch.randperm(24, generator=generator)[:7].tolist() for _ in range(3)]
    assert draws("uniform", LABELS, 7, 3, seed=5) == expected


@pytest.mark.parametrize("available, size, taken, extra", [
    ([10, 3, 10, 1], 13, [4, 3, 4, 1], 1),  # 3 each, the 1 and the 3 capped; 1 left for class 0 or 2
    ([10, 3, 10, 1], 24, [10, 3, 10, 1], 0),  # the whole pool
    ([10, 3, 10, 1], 2, [0, 0, 0, 0], 2),  # fewer images than classes: 2 classes get one
    ([5, 0, 5], 6, [3, 0, 3], 0),  # an absent class gets none
    ([4, 4, 4], 10, [3, 3, 3], 1),
])
def test_water_filling_gives_the_even_counts_by_hand(available, size, taken, extra):
    counts, room = water_fill(available, size)
    assert counts == taken and size - sum(counts) == extra and extra < max(sum(room), 1)
    assert room == [t < a for t, a in zip(taken, available)]


def test_class_balanced_draws_are_as_even_as_the_pool_allows():
    for size in range(1, 25):
        taken, _ = water_fill([10, 3, 10, 1], size)
        for positions in draws("class_balanced", LABELS, size, 20):
            assert len(positions) == size == len(set(positions)) and all(0 <= p < 24 for p in positions)
            counts = [Counter(LABELS[positions].tolist())[c] for c in range(4)]
            assert all(t <= n <= t + 1 for n, t in zip(counts, taken)) and sum(counts) == size


def test_class_balanced_draws_are_uniform_within_a_class_and_share_the_extras_fairly():
    """13 of the 24: classes 1 and 3 always whole, classes 0 and 2 get 4 or 5 each with probability 1/2,
    and within a class every image is as likely (chi-square over 4,000 draws)."""
    results = draws("class_balanced", LABELS, 13, 4000, seed=3)
    fifth = Counter(int(Counter(LABELS[p].tolist())[0] == 5) for p in results)
    assert stats.binomtest(fifth[1], len(results), 0.5).pvalue > 1e-3
    seen = Counter(p for positions in results for p in positions)
    for label in (0, 2):
        members = (LABELS == label).nonzero().flatten().tolist()
        assert stats.chisquare([seen[m] for m in members]).pvalue > 1e-3
    assert all(seen[m] == len(results) for m in (LABELS == 1).nonzero().flatten().tolist())


def test_draws_repeat_with_their_seed_and_differ_across_seeds():
    for name in list_samplings():
        assert draws(name, LABELS, 9, 5, seed=1) == draws(name, LABELS, 9, 5, seed=1)
        assert draws(name, LABELS, 9, 5, seed=1) != draws(name, LABELS, 9, 5, seed=2)


def _settings(root: Path, dataset_dir: Path, sampling: str, **extra) -> TrainSettings:
    raw = tiny_config(root, dataset_dir, runs=1, memory_sampling=sampling, **extra)
    raw["CIFAR10"].update(num_epochs=2, mem_examples=20)
    return TrainSettings(validate(raw, datasets.list_datasets()), "encoder_memory")


def test_a_run_draws_every_memory_with_its_strategy_and_nothing_else_changes(tmp_path, tiny_dataset_dir,
                                                                              monkeypatch):
    """Training, evaluation and the explanation scripts draw memories with the run's strategy; the run's
    subset, batches and flips are those of the uniform run (only the memories differ)."""
    seen: dict[str, list] = {}
    draw = MemorySampler.draw_indices

    def spied(sampler):
        positions = draw(sampler)
        seen.setdefault(sampling, []).append(Counter(sampler.pool.labels[positions].tolist()))
        return positions

    monkeypatch.setattr(MemorySampler, "draw_indices", spied)
    records, batches = {}, {}
    for sampling in ("uniform", "class_balanced"):
        settings = _settings(tmp_path / sampling, tiny_dataset_dir, sampling)
        data = build_run_data(settings.config, 0)
        batches[sampling] = [inputs.sum().item() for inputs, _ in data.train_batches()]
        records[sampling] = train_run(settings, 1).record
        assert records[sampling]["settings"]["memory_sampling"] == sampling
        restored = restore_run(settings.cell_folder / "1.pt", CheckpointOptions(device="cpu"))
        assert type(restored.data.memory_sampler("any").strategy) is get_sampling(sampling)
    assert batches["uniform"] == batches["class_balanced"]
    for key in ("train_indices_sha256", "train_subset_size"):
        assert records["uniform"][key] == records["class_balanced"][key]
    # 80 training images, 10 classes of 7 or more: a balanced memory of 20 has exactly 2 of each.
    assert all(sorted(c.values()) == [2] * 10 for c in seen["class_balanced"])
    assert not all(sorted(c.values()) == [2] * 10 for c in seen["uniform"])
    assert records["uniform"]["loss"] != records["class_balanced"]["loss"]


def test_a_class_balanced_run_resumes_to_the_same_numbers(tmp_path, tiny_dataset_dir):
    class Killed(Exception):
        pass

    def kill(stats, state):
        if stats.epoch == 1:
            raise Killed

    whole = train_run(_settings(tmp_path / "whole", tiny_dataset_dir, "class_balanced"), 1).record
    killed = _settings(tmp_path / "killed", tiny_dataset_dir, "class_balanced")
    with pytest.raises(Killed):
        train_run(killed, 1, epoch_callbacks=[kill])
    resumed = train_run(killed, 1).record
    assert (resumed["loss"], resumed["pass_accuracies"]) == (whole["loss"], whole["pass_accuracies"])


def test_an_unknown_strategy_is_one_line(tmp_path, tiny_dataset_dir):
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, tiny_dataset_dir, memory_sampling="balanced"))
    result = run_script("train.py", "--modality=memory", f"--config={config}", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: unknown memory_sampling 'balanced'; did you mean 'class_balanced'? (valid memory samplings: "
        "class_balanced, uniform)")
    assert not (tmp_path / "models").exists()


def test_a_strategy_works_on_the_device_of_its_pool():
    """No host synchronisation needed: every tensor of a draw lives where the pool lives (CPU here;
    the CUDA tests run the same strategies on the GPU)."""
    pool = ResidentImages(torch.zeros(24, 3, 4, 4, dtype=torch.uint8), LABELS, list(range(24)))
    for name in list_samplings():
        strategy = get_sampling(name)(pool.labels, 13)
        positions = strategy.draw(torch.Generator().manual_seed(0))
        assert positions.device == pool.labels.device and positions.dtype == torch.long
        assert math.isclose(len(positions), 13)


@pytest.mark.parametrize("size", [8, 13])
def test_the_order_within_a_draw_says_nothing_of_the_class(size):
    """Every strategy: the class of the image at a position of the draw is independent of the position
    (chi-square test of independence over 3,000 draws), so a consumer of the first images of a memory
    (figures, the top examples) is not handed one class first."""
    for name in list_samplings():
        table = torch.zeros(size, 4)
        for positions in draws(name, LABELS, size, 3000, seed=11):
            table[torch.arange(size), LABELS[positions]] += 1
        table = table[:, table.sum(dim=0) > 0]
        assert stats.chi2_contingency(table.numpy()).pvalue > 1e-3, name
