"""Every random stream of a run is independent of the others (issue 26, class 2), and every memory
sampler a run makes follows its `memory_sampling` (class 7).

A stream is a generator seeded through `derive_seed(seed, name)`, or the global RNG seeded that way
(the heat maps' attribution noise, the autoencoders' initial weights). The harness runs training and
every evaluation and explanation command on one tiny CINIC10 run (it flips its training images and
shuffles its test batches, and it trains with AutoAugment, so every stream is drawn from) and logs
every random draw torch makes by the stream it came from: a draw with a generator belongs to the
stream whose derived seed the generator holds; a draw from the global RNG to the stream that last
seeded it (inside its `fork_rng`; AutoAugment's per-batch seed is drawn from a stream), else to the
global RNG's unseeded draws. It also logs every memory a sampler draws (images and labels), by the
sampler's stream. Then, for each stream of each command in turn (the unseeded global draws too; the
autoencoders' 22 streams in groups, see `perturbation_groups`), one extra number is drawn from that
stream, before its first draw, and the command runs again: that stream's draws must change and
nothing else the command draws may: another stream's draws, the memories of another stream, the
split. The baseline call also shows a command that does not draw
from the streams it should, a stream made twice, and two streams with one seed (one sequence).
"""
from __future__ import annotations

import contextlib
import hashlib
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

import tiny_data
from suite.restore import ORIGINAL_SPLIT_SEED
from trained_runs import vit_config

Key = tuple[str, int]  # (stream name, which instance of it in the command, in order of first draw)
UNSEEDED: Key = ("the global RNG, seeded by no stream", 0)
CLASSES = [f"class_{c}" for c in range(10)] + ["full"]
# The streams each command draws from (the autoencoders': an init and an order stream per autoencoder).
EXPECTED = {
    "train.py": {"train_order", "train_flips", "train_memory", "evaluation_memory", "test_order"},
    "eval_dir.py": {"evaluation_memory", "test_order"},
    "explanation_accuracy.py": {"explanation_memory_subset", "explanation_order"},
    "explanation_accuracy.py --memory_pool=full": {"explanation_memory_full", "explanation_order"},
    "eval_dir.py --majority_vote": {"evaluation_memory", "majority_vote_auxiliary", "test_order"},
    "generate_memory_images.py": {"memory_images", "memory_images_order"},
    "generate_heatmaps.py --method=gradient_shap": {"heatmaps", "heatmaps_order", "heatmaps_attribution"},
    "explanation_quality.py": {"example_quality_memory", "example_quality_random", "example_quality_order"},
    "train_autoencoders.py": {f"autoencoder_{kind}_{name}" for kind in ("init", "order") for name in CLASSES},
    "counterfactual_quality.py": {"counterfactual_memory", "counterfactual_prototype_memory",
                                  "counterfactual_order"},
}
# torch's sampling functions and in-place samplers (nn.init draws through the latter)
FUNCTIONS = ("rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial", "poisson")
METHODS = ("uniform_", "normal_", "random_", "bernoulli_", "exponential_", "geometric_", "cauchy_", "log_normal_")
SPLIT_SEEDS = {0, ORIGINAL_SPLIT_SEED}  # the original's split: generators seeded by the run's / the split seed


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models and batches: one CPU thread runs them as fast as several, and much faster on a
    machine whose cores are busy with other work (the thread count is put back after the module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def digest(tensor: torch.Tensor) -> str:
    values = tensor.detach().cpu().contiguous()
    return f"{values.dtype}{tuple(values.shape)}" + hashlib.sha1(values.numpy().tobytes()).hexdigest()


Draw = tuple[str, str]  # (what was asked: function, dtype and shape; what came: the values and the generator's state)


def draw_record(function: str, out: torch.Tensor, generator: torch.Generator | None) -> Draw:
    """A draw: what was asked, and its values with where it left its generator (so that a draw of a few
    values, a permutation of 2, still tells two positions of a stream apart)."""
    state = "" if generator is None else hashlib.sha1(generator.get_state().numpy().tobytes()).hexdigest()
    return f"{function} {out.dtype} {tuple(out.shape)}", digest(out) + state


SAME, CHANGED, ASKED_OTHERWISE = "same", "changed", "asked otherwise"
# The one consumer whose requests follow the data: GradientSHAP's noise is shaped like the input's
# positive-weight memories, whose count depends on the input and its memory (the order and memory streams).
DATA_SHAPED = {"heatmaps_attribution"}


def compare_draws(before: list[Draw], after: list[Draw]) -> str:
    """Whether a stream drew the same numbers, draw by draw, as long as its consumer asked for the same
    thing; from a request that differs on, what is drawn follows the request, not the stream."""
    for (asked, drawn), (asked_again, drawn_again) in zip(before, after):
        if asked != asked_again:
            return ASKED_OTHERWISE
        if drawn != drawn_again:
            return CHANGED
    return SAME if len(before) == len(after) else CHANGED


@dataclass
class DrawLog:
    """The draws of one command by stream, and the memories its samplers drew; `perturb`: the streams
    that draw one extra number before their first draw."""

    perturb: frozenset[Key] = frozenset()
    names: dict[int, str] = field(default_factory=dict)  # derived seed -> stream name
    seeds: dict[Key, int] = field(default_factory=dict)  # every stream instance of the command: its seed
    draws: dict[Key, list[Draw]] = field(default_factory=lambda: defaultdict(list))
    memories: dict[Key, list[str]] = field(default_factory=lambda: defaultdict(list))  # by the sampler's stream
    keys: dict[int, Key] = field(default_factory=dict)  # id(generator) -> its stream
    held: list = field(default_factory=list)  # the generators seen (their ids stay unique)
    unknown: list[int] = field(default_factory=list)  # seeds of generators that are no stream's
    reseeds: dict[int, Key] = field(default_factory=dict)  # seeds drawn from a stream (AutoAugment's)
    global_key: Key = UNSEEDED  # whose draws the global RNG makes now
    injected: list[Key] = field(default_factory=list)

    def instance(self, name: str, seed: int) -> Key:
        key = (name, sum(1 for k in self.seeds if k[0] == name))
        self.seeds[key] = seed
        return key

    def stream_of(self, generator: torch.Generator | None) -> Key:
        if generator is None:
            return self.global_key
        if id(generator) not in self.keys:
            seed = generator.initial_seed()
            if seed in self.names:
                self.keys[id(generator)] = self.instance(self.names[seed], seed)
            else:
                if seed not in SPLIT_SEEDS:
                    self.unknown.append(seed)
                self.keys[id(generator)] = (f"generator seeded {seed}", len(self.held))
            self.held.append(generator)
        return self.keys[id(generator)]

    def before_draw(self, generator: torch.Generator | None, rand: Callable) -> Key:
        """The stream of a draw about to be made; a perturbed stream first draws one number more."""
        key = self.stream_of(generator)
        if key in self.perturb and key not in self.injected:
            if generator is None:
                rand(1)
            else:
                rand(1, generator=generator, device=generator.device)
            self.injected.append(key)
        return key


@contextlib.contextmanager
def logging_draws(log: DrawLog):
    """Every draw of torch's samplers logged by stream while the block runs, and every memory drawn:
    derive_seed spied to name the streams, torch.manual_seed and torch.random.fork_rng followed to
    attribute the global RNG's draws (to a stream that seeded it, AutoAugment's seeds drawn from a
    stream included)."""
    from suite import data

    with pytest.MonkeyPatch.context() as patch:
        derive = data.derive_seed

        def named(seed: int, stream: str) -> int:
            value = derive(seed, stream)
            log.names[value] = stream
            return value

        for module in [m for n, m in sys.modules.items() if n.startswith("suite") and hasattr(m, "derive_seed")]:
            patch.setattr(module, "derive_seed", named)
        rand, manual_seed, fork_rng = torch.rand, torch.manual_seed, torch.random.fork_rng

        def function(name: str):
            original = getattr(torch, name)

            def drawn(*args, generator=None, **kwargs):
                key = log.before_draw(generator, rand)
                out = original(*args, **kwargs) if generator is None else original(*args, generator=generator, **kwargs)
                log.draws[key].append(draw_record(name, out, generator))
                if name == "randint" and generator is not None and out.numel() == 1:
                    log.reseeds[int(out)] = key
                return out

            return drawn

        def method(name: str):
            original = getattr(torch.Tensor, name)

            def drawn(self, *args, generator=None, **kwargs):
                key = log.before_draw(generator, rand)
                out = original(self, *args, **kwargs) if generator is None else original(
                    self, *args, generator=generator, **kwargs)
                log.draws[key].append(draw_record(name, out, generator))
                return out

            return drawn

        def seeded(seed):
            result = manual_seed(seed)
            seed = int(seed)
            if seed in log.names:
                log.global_key = log.instance(log.names[seed], seed)
            else:
                log.global_key = log.reseeds.get(seed, UNSEEDED)
            return result

        @contextlib.contextmanager
        def forked(*args, **kwargs):
            outer = log.global_key
            with fork_rng(*args, **kwargs):
                yield
            log.global_key = outer

        draw_memory = data.MemorySampler.draw

        def memory(sampler):
            images, labels = draw_memory(sampler)
            log.memories[log.stream_of(sampler.generator)].append(digest(images) + digest(labels))
            return images, labels

        for name in FUNCTIONS:
            patch.setattr(torch, name, function(name))
        for name in METHODS:
            patch.setattr(torch.Tensor, name, method(name))
        patch.setattr(torch, "manual_seed", seeded)
        patch.setattr(torch.random, "fork_rng", forked)
        patch.setattr(data.MemorySampler, "draw", memory)
        yield log


# ---- one tiny CINIC10 run and every command -------------------------------------------------------------
@dataclass
class Commands:
    """The commands on the run of `settings`: training (into its own folder at each call), then the
    others on the first training's checkpoint, as the scripts call them."""

    settings: "TrainSettings"  # noqa: F821
    folder: Path | None = None

    def train(self, work: Path) -> None:
        from suite.config import TrainSettings
        from suite.training import train_run

        config = dict(self.settings.config, models_dir=str(work / "models"))
        settings = TrainSettings(config, self.settings.modality)
        train_run(settings, 1)
        if self.folder is None:
            self.folder = settings.cell_folder

    def all(self) -> dict[str, Callable[[Path], None]]:
        from suite import commands
        from suite.journal import quality_commands
        from suite.journal.autoencoders import AutoencoderTraining
        from suite.journal.cfproto import CFProtoOptions
        from suite.journal.counterfactual_quality import CounterfactualSettings
        from suite.journal.majority_vote_eval import majority_vote_folder
        from suite.restore import CheckpointOptions

        options, quiet = CheckpointOptions(device="cpu", batch_size_test=25), {"out": lambda _: None}
        silent = quiet | {"note": lambda _: None}
        run = lambda: str(self.folder / "1.pt")  # noqa: E731
        folder = lambda: str(self.folder)  # noqa: E731
        search = CounterfactualSettings(CFProtoOptions(max_iterations=2, c_steps=1, theta=1.0), max_inputs=8)
        return {
            "train.py": self.train,
            "eval_dir.py": lambda work: commands.evaluate_folder(folder(), options, passes=2, json_path="", **silent),
            "explanation_accuracy.py": lambda work: commands.explanation_accuracy(
                folder(), options, passes=2, json_path="", **silent),
            "explanation_accuracy.py --memory_pool=full": lambda work: commands.explanation_accuracy(
                folder(), options, passes=1, memory_pool="full", json_path="", **silent),
            "eval_dir.py --majority_vote": lambda work: majority_vote_folder(folder(), options, passes=2,
                                                                             json_path="", **silent),
            "generate_memory_images.py": lambda work: commands.memory_images(
                run(), CheckpointOptions(device="cpu", batch_size_test=3), max_images=6, images_dir=work, **quiet),
            "generate_heatmaps.py --method=gradient_shap": lambda work: commands.heatmaps(
                run(), CheckpointOptions(device="cpu", batch_size_test=1), max_images=2, method="gradient_shap",
                method_options={"n_samples": 3, "stdevs": 0.1}, images_dir=work, **quiet),
            "explanation_quality.py": lambda work: quality_commands.explanation_quality(folder(), options, passes=2,
                                                                                       **silent),
            "train_autoencoders.py": lambda work: quality_commands.train_autoencoders(
                folder(), options, AutoencoderTraining(epochs=1), overwrite=True, **silent),
            "counterfactual_quality.py": lambda work: quality_commands.counterfactual_quality(
                folder(), CheckpointOptions(device="cpu", batch_size_test=4), search, **silent),
        }


def perturbation_groups(streams: list[Key]) -> list[frozenset[Key]]:
    """The streams perturbed together in one call: one at a time, or, where that takes fewer calls (the
    autoencoders' 22 streams: 10 calls), by the bits of a stream's position: for each bit, once the
    streams with it set and once the others. Either way, for any two streams S and T some call perturbs
    S and not T, so an influence of any stream on any other shows."""
    singles = [frozenset([key]) for key in streams]
    bits = max(1, (len(streams) - 1).bit_length())
    groups = [frozenset(key for i, key in enumerate(streams) if (i >> bit) & 1 == value)
              for bit in range(bits) for value in (0, 1)]
    return singles if len(singles) <= len(groups) else groups


@dataclass
class Observed:
    baseline: dict[str, DrawLog]
    perturbed: dict[tuple[str, frozenset[Key]], DrawLog]
    samplers: dict[str, list[str]]  # command -> the strategy of every memory sampler it built


def quiet_figures(patch: pytest.MonkeyPatch) -> None:
    """Figures drawn as nothing: matplotlib draws no random number, and drawing dominates the commands' time."""
    from suite import figures
    from suite.journal import quality_commands, quality_figures

    for module, name in ((figures, "memory_figure"), (figures, "saliency_figure"),
                         (quality_figures, "counterfactual_figure")):
        patch.setattr(module, name, lambda *args, **kwargs: None)
    for module in (figures, quality_commands):
        patch.setattr(module, "figure_png", lambda figure: b"")


def perturbable(log: DrawLog) -> list[Key]:
    """The streams a command drew from, the global RNG's unseeded draws included (the split is the
    original's, fixed: not a stream)."""
    return [key for key in [*log.seeds, UNSEEDED] if log.draws.get(key)]


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> Observed:
    """Every command once as it is, then once per stream it drew from (or group of streams, see
    `perturbation_groups`) with that stream perturbed. The global RNG is put in one state before each
    call, so that a command's unseeded draws (a restored model's initial weights, before its checkpoint
    is loaded) repeat too."""
    from suite import explain
    from suite.config import TrainSettings, validate
    from suite.data import MemorySampler
    from suite.datasets import list_datasets

    root = tmp_path_factory.mktemp("streams")
    tiny_data.write_cinic10(root / "data")  # 30 images a split: 20 training images after the hold-out of 10
    # AutoAugment: its per-image draws come from the global RNG, seeded from the stream of the images
    raw = vit_config(root, root / "data", "encoder_memory", runs=1, dataset_name="CINIC10", batch_size_test=25,
                     eval_passes=2, memory_sampling="class_balanced", autoaugment=True)
    raw["CINIC10"] = dict(raw["CIFAR10"], num_epochs=2, opt_milestones=[1], validation_size=10)
    commands = Commands(TrainSettings(validate(raw, list_datasets()), "encoder_memory"))
    baseline, perturbed, samplers = {}, {}, defaultdict(list)
    built = MemorySampler.__init__

    def spied(sampler, *args, **kwargs):
        built(sampler, *args, **kwargs)
        samplers[current].append(type(sampler.strategy).__name__)

    def call(command: Callable[[Path], None], log: DrawLog, work: Path) -> DrawLog:
        torch.manual_seed(0)
        with logging_draws(log):
            command(work)
        return log

    with pytest.MonkeyPatch.context() as patch:
        quiet_figures(patch)
        # the original's pool of 100 memories is larger than this split: 10 memories from it
        patch.setattr(explain, "ORIGINAL_MEMORY_SIZE", 10)
        for index, (current, command) in enumerate(commands.all().items()):
            with pytest.MonkeyPatch.context() as spy:
                spy.setattr(MemorySampler, "__init__", spied)
                log = baseline[current] = call(command, DrawLog(), root / f"{index}")
            for number, group in enumerate(perturbation_groups(perturbable(log))):
                other = perturbed[current, group] = call(command, DrawLog(perturb=group), root / f"{index}-{number}")
                assert set(other.injected) == group
    return Observed(baseline, perturbed, dict(samplers))


def test_every_command_draws_from_its_own_named_streams_each_with_its_own_seed(observed):
    """Each command draws from exactly the streams it names for itself, once each (one instance per
    command: a sampler made again per batch would repeat its draws), every stream with its own seed
    (two samplers seeded with one name draw one sequence), and no generator of the suite is seeded
    otherwise than by a stream or the original's split."""
    for command, log in observed.baseline.items():
        assert {name for name, _ in perturbable(log)} - {UNSEEDED[0]} == EXPECTED[command], command
        assert all(instance == 0 for _, instance in log.seeds), (command, sorted(log.seeds))
        assert len(set(log.seeds.values())) == len(log.seeds), (command, log.seeds)
        assert not log.unknown, (command, log.unknown)


def test_one_more_draw_from_a_stream_changes_that_stream_alone(observed):
    """For every stream of every command: one extra number drawn from it, first thing, changes its own
    draws (and the memories drawn from it) and nothing else the command draws: not another stream's
    draws, not the memories drawn from another stream, not the split, not the global RNG's unseeded
    draws (and one more unseeded global draw changes no stream)."""
    for command, log in observed.baseline.items():
        streams = perturbable(log)
        groups = [group for (name, group) in observed.perturbed if name == command]
        assert set().union(*groups) == set(streams), command  # every stream was perturbed ...
        assert all(any(s in g and t not in g for g in groups) for s in streams for t in streams if s != t), command
    for (command, group), log in observed.perturbed.items():  # ... while every other one was watched
        before = observed.baseline[command]
        for key in group:
            assert compare_draws(before.draws[key], log.draws[key]) == CHANGED, (command, key)
            assert key not in before.memories or log.memories[key] != before.memories[key], (command, key)
        outcome = {k: compare_draws(before.draws.get(k, []), log.draws.get(k, []))
                   for k in set(before.draws) | set(log.draws) if k not in group}
        assert {k[0] for k, o in outcome.items() if o == ASKED_OTHERWISE} <= DATA_SHAPED, (command, group, outcome)
        changed = sorted({f"draws of {k}" for k, o in outcome.items() if o == CHANGED}
                         | {f"memories of {k}" for k in set(before.memories) | set(log.memories)
                            if k not in group and log.memories.get(k) != before.memories.get(k)})
        assert not changed, (f"{command}: one more draw from {', '.join(sorted(k[0] for k in group))} changed the "
                             f"{changed}")


def test_memory_sampling_reaches_every_memory_sampler_of_a_run(observed):
    """A run trained with memory_sampling: class_balanced: training, evaluation and every explanation
    command draw every memory they draw with that strategy (a sampler built with the default, uniform,
    anywhere, would show here)."""
    memory_commands = set(EXPECTED) - {"train_autoencoders.py"}
    assert set(observed.samplers) == memory_commands
    for command, strategies in observed.samplers.items():
        assert strategies and set(strategies) == {"ClassBalanced"}, (command, strategies)
