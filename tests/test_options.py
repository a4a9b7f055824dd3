"""Every option reaches every step that uses it (issue 26, class 7), by known values.

- the learning-rate schedules: the lr of every training step of a real run, and its metrics CSV,
  against values computed here, for each schedule key changed on its own;
- the prototype-guided counterfactual search: each of its options shapes the gradient its step takes,
  the step itself, and the choice of the best counterfactual, with small answers worked out by hand;
  and `counterfactual_quality`'s settings reach the search as given;
- the attribution methods: every option of every method, and the baseline, reach captum as given,
  from the function the script calls and from the script's own flags;
- the autoencoders' training options reach the training of every autoencoder of a run;
- --passes of every evaluation and explanation command makes that many passes.
(`memory_sampling` reaching every sampler of a run is in tests/test_streams.py.)
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook

import datasets
from conftest import REPO
from suite.config import TrainSettings, validate
from suite.journal.cfproto import CFProtoOptions, prototype_counterfactuals, search_gradient
from suite.restore import CheckpointOptions, restore_run
from suite.run_files import metrics_path, read_metrics
from suite.training import train_run
from test_streams import quiet_figures
from trained_runs import vit_config


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models and batches: one CPU thread runs them as fast as several, and much faster on a
    machine whose cores are busy with other work (the thread count is put back after the module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- learning-rate schedules ----------------------------------------------------------------------------
EPOCHS = 5


def cosine(epoch: int, total: int, base: float, low: float) -> float:
    """The cosine annealing of lr `base` down to `low` over `total` epochs, at `epoch`."""
    return low + (base - low) * (1 + math.cos(math.pi * epoch / total)) / 2


# (schedule, the one key changed, the lr of each epoch by hand). Base: lr 0.1, milestones [2, 4], min_lr
# 0.01 (cosine: 0), warm-up 2 epochs (warmup_cosine), 5 epochs. MultiStepLR divides by 10 (torch's
# default gamma) at each milestone; warmup_cosine climbs linearly over the warm-up, keeps the base lr
# one more epoch, then anneals over num_epochs from there.
SCHEDULES = [
    ("multistep", {}, [0.1, 0.1, 0.01, 0.01, 0.001]),
    ("multistep", {"opt_milestones": [1, 3]}, [0.1, 0.01, 0.01, 0.001, 0.001]),
    ("multistep", {"learning_rate": 0.3}, [0.3, 0.3, 0.03, 0.03, 0.003]),
    ("multistep", {"min_lr": 0.05, "warmup_epochs": 2}, [0.1, 0.1, 0.01, 0.01, 0.001]),  # not multistep's keys
    ("cosine", {}, [cosine(e, 5, 0.1, 0.0) for e in range(5)]),
    ("cosine", {"min_lr": 0.02}, [cosine(e, 5, 0.1, 0.02) for e in range(5)]),
    ("cosine", {"learning_rate": 0.3}, [cosine(e, 5, 0.3, 0.0) for e in range(5)]),
    ("cosine", {"num_epochs": 4}, [cosine(e, 4, 0.1, 0.0) for e in range(4)]),
    ("cosine", {"opt_milestones": [1, 3]}, [cosine(e, 5, 0.1, 0.0) for e in range(5)]),  # not cosine's key
    ("warmup_cosine", {}, [0.0, 0.05, 0.1, 0.1, cosine(1, 5, 0.1, 0.01)]),
    ("warmup_cosine", {"warmup_epochs": 0}, [cosine(e, 5, 0.1, 0.01) for e in range(5)]),
    ("warmup_cosine", {"warmup_epochs": 3}, [0.0, 0.1 / 3, 0.2 / 3, 0.1, 0.1]),
    ("warmup_cosine", {"min_lr": 0.0}, [0.0, 0.05, 0.1, 0.1, cosine(1, 5, 0.1, 0.0)]),
    ("warmup_cosine", {"learning_rate": 0.2}, [0.0, 0.1, 0.2, 0.2, cosine(1, 5, 0.2, 0.01)]),
    ("warmup_cosine", {"num_epochs": 6}, [0.0, 0.05, 0.1, 0.1, cosine(1, 6, 0.1, 0.01), cosine(2, 6, 0.1, 0.01)]),
]
SECTION_KEYS = {"opt_milestones", "num_epochs"}


def schedule_settings(root: Path, dataset_dir: Path, schedule: str, change: dict) -> TrainSettings:
    """A tiny ViT std run on the tiny CIFAR10: 16 training images in one batch, one step per epoch."""
    optimizer = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False,
                 "min_lr": 0.0 if schedule == "cosine" else 0.01, "warmup_epochs": 2}
    section = {"num_classes": 10, "num_epochs": EPOCHS, "opt_milestones": [2, 4], "mem_examples": 10,
               "lr_schedule": schedule, "validation_size": 20}
    optimizer.update({k: v for k, v in change.items() if k not in SECTION_KEYS})
    section.update({k: v for k, v in change.items() if k in SECTION_KEYS})
    raw = vit_config(root, dataset_dir, "std", runs=1, train_examples=16, batch_size_train=16, optimizer=optimizer,
                     CIFAR10=section)
    return TrainSettings(validate(raw, datasets.list_datasets()), "std")


@pytest.mark.parametrize("schedule, change, expected", SCHEDULES,
                         ids=[f"{s}-{'-'.join(c) or 'base'}" for s, c, _ in SCHEDULES])
def test_every_schedule_key_reaches_the_learning_rate_each_step_trains_with(tmp_path, tiny_dataset_dir, schedule,
                                                                             change, expected):
    settings = schedule_settings(tmp_path, tiny_dataset_dir, schedule, change)
    stepped = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: stepped.append(optimizer.param_groups[0]["lr"]))
    try:
        train_run(settings, 1)
    finally:
        hook.remove()
    assert stepped == pytest.approx(expected, rel=1e-9, abs=1e-15)  # one step per epoch
    logged = [row["learning_rate"] for row in read_metrics(metrics_path(settings.cell_folder, 1))]
    assert logged == pytest.approx(expected, rel=1e-9, abs=1e-15)


# ---- the prototype-guided counterfactual search ---------------------------------------------------------
class Margin:
    """Two classes with p0 - p1 = w . x exactly (logits log a, log(1 - a), a = (1 + w . x) / 2, kept
    inside [0.01, 0.99]); records every input it classifies without gradients (the search's candidates)."""

    def __init__(self, *w: float):
        self.w, self.seen = torch.tensor(w), []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            self.seen.append(x.detach().flatten(1).clone())
        a = ((1 + x.flatten(1) @ self.w) / 2).clamp(0.01, 0.99)
        return torch.log(torch.stack([a, 1 - a], dim=1))


def images(*rows: list[float]) -> torch.Tensor:
    """Rows of 2 pixels as images [B, 1, 1, 2]."""
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), 1, 1, 2)


def flat(x: torch.Tensor) -> torch.Tensor:
    """The identity encoder: latents are pixels."""
    return x.flatten(1)


def half(x: torch.Tensor) -> torch.Tensor:
    """An autoencoder reconstructing x as x / 2: ||x - AE(x)||^2 = ||x||^2 / 4, gradient x / 2."""
    return 0.5 * x


# The gradient of the smooth objective at y for x0 = 0, prototype (1, 0), classes scored by p0 - p1 =
# 0.5 y[0] (Margin(0.5, 0)), original class 0, c = 1 unless changed. Row 1, y = (0.4, 0.2): prediction
# term c (0.5, 0) (0.2 > -kappa); L2 term 2 y = (0.8, 0.4); prototype term 2 theta (y - p) = theta (-1.2,
# 0.4): (0.1, 0.8). Row 2, y = (-0.4, 0.2): p0 - p1 = -0.2 is below -kappa = 0, the prediction term is
# flat; (-0.8, 0.4) + (-2.8, 0.4) = (-3.6, 0.8). gamma adds gamma y / 2; l1_in_gradient adds beta sign(y).
GRADIENTS = [
    ({}, [[0.1, 0.8], [-3.6, 0.8]]),
    ({"c": 3.0}, [[1.1, 0.8], [-3.6, 0.8]]),
    ({"theta": 2.0}, [[-1.1, 1.2], [-6.4, 1.2]]),
    ({"gamma": 2.0}, [[0.5, 1.0], [-4.0, 1.0]]),
    ({"kappa": 0.3}, [[0.1, 0.8], [-3.1, 0.8]]),  # row 2's -0.2 now above -kappa: its prediction term is back
    ({"beta": 0.5}, [[0.1, 0.8], [-3.6, 0.8]]),  # the L1 term is the shrinkage's, not the gradient's ...
    ({"l1_in_gradient": True}, [[0.2, 0.9], [-3.7, 0.9]]),  # ... unless asked
    ({"l1_in_gradient": True, "beta": 0.5}, [[0.6, 1.3], [-4.1, 1.3]]),
    ({"clip": 0.5}, [[0.1, 0.5], [-0.5, 0.5]]),
]


@pytest.mark.parametrize("change, expected", GRADIENTS, ids=["-".join(c) or "base" for c, _ in GRADIENTS])
def test_each_weight_of_the_objective_reaches_the_gradient_of_the_step(change, expected):
    options = replace(CFProtoOptions(theta=1.0), **{k: v for k, v in change.items() if k != "c"})
    c = torch.full((2,), change.get("c", 1.0))
    gradient = search_gradient(images([0.4, 0.2], [-0.4, 0.2]), images([0.0, 0.0], [0.0, 0.0]), c, Margin(0.5, 0.0),
                               torch.tensor([0, 0]), options, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), flat,
                               half if options.gamma else None)
    torch.testing.assert_close(gradient.flatten(1), torch.tensor(expected))


# The search from x0 = (0.2, 0), Margin(0.5, 0) (class 0 while x[0] > 0), one class-1 latent at (-1, 0),
# theta 1, lr 0.5, beta 0.1, one iteration of one run unless changed. The first step, from y = x0: the
# gradient is c (0.5, 0) + 2 theta (x0 - p) = (2.9, 0); x0 - 0.5 * 2.9 = -1.25, shrunk by beta to -1.15:
# class 1, a counterfactual 1.35 from x0, distance 1.35^2 + 0.1 * 1.35 = 1.9575; c then bisected to 0.5.
SEARCHES = [
    ({}, [-1.15], -1.15, 1.9575, 0.5),
    ({"learning_rate": 0.25}, [-0.425], -0.425, 0.625 ** 2 + 0.0625, 0.5),
    ({"beta": 0.3}, [-0.95], -0.95, 1.15 ** 2 + 0.3 * 1.15, 0.5),  # shrunk by 0.3, and L1 weighs 0.3
    ({"theta": 2.0}, [-2.35], -2.35, 2.55 ** 2 + 0.255, 0.5),  # gradient 0.5 + 4.8
    ({"c_init": 3.0}, [-1.65], -1.65, 1.85 ** 2 + 0.185, 1.5),  # gradient 1.5 + 2.4; c 3 -> 1.5
    ({"gamma": 1.0}, [-1.2], -1.2, 1.4 ** 2 + 0.14, 0.5),  # gradient + x0 / 2 = 3.0
    ({"clip": 1.0}, [-0.2], -0.2, 0.4 ** 2 + 0.04, 0.5),  # gradient clipped to 1: 0.2 - 0.5 = -0.3, shrunk
    ({"feature_range": (-1.0, 1.0)}, [-1.0], -1.0, 1.2 ** 2 + 0.12, 0.5),  # -1.15 kept inside the range
    ({"kappa": 0.7}, [-1.15], None, math.inf, 10.0),  # p1 - p0 = 0.575 < kappa: not valid, c x 10
    ({"k": 1, "latents": [[-1.0, 0.0], [-3.0, 0.0]]}, [-1.15], -1.15, 1.9575, 0.5),  # the nearest latent: -1
    ({"latents": [[-1.0, 0.0], [-3.0, 0.0]]}, [-2.15], -2.15, 2.35 ** 2 + 0.235, 0.5),  # all: their mean, -2
    # a second run from x0 with c = 0.5: gradient 0.25 + 2.4, x0 - 1.325 shrunk: -1.025, nearer: kept; c 0.25
    ({"c_steps": 2}, [-1.15, -1.025], -1.025, 1.225 ** 2 + 0.1225, 0.25),
    # a second iteration: momentum 1/4 takes y to -1.4875 (p0 - p1 below 0: no prediction term); gradient
    # 2 (y - x0) + 2 (y - p) = -4.35, lr 0.5 * (1 - 1/2) ** 0.5: z = 0.05046, shrunk towards x0: 0.15046,
    # class 0: not kept
    ({"max_iterations": 2}, [-1.15, 0.15046], -1.15, 1.9575, 0.5),
]


@pytest.mark.parametrize("change, candidates, counterfactual, distance, c_final", SEARCHES,
                         ids=["-".join(c) or "base" for c, *_ in SEARCHES])
def test_each_option_of_the_search_reaches_its_steps_and_its_choice(change, candidates, counterfactual, distance,
                                                                    c_final):
    latents = torch.tensor(change.get("latents", [[-1.0, 0.0]]))
    options = replace(CFProtoOptions(theta=1.0, c_steps=1, max_iterations=1, learning_rate=0.5,
                                     feature_range=(-5.0, 5.0)), **{k: v for k, v in change.items() if k != "latents"})
    model = Margin(0.5, 0.0)
    result = prototype_counterfactuals(model, images([0.2, 0.0]), encoder=flat, latents=latents,
                                       labels=torch.ones(len(latents), dtype=torch.long),
                                       autoencoder=half if options.gamma else None, options=options)
    seen = torch.cat(model.seen[1:])  # after the input itself: one candidate per iteration
    torch.testing.assert_close(seen, torch.tensor([[x, 0.0] for x in candidates]), atol=1e-5, rtol=0)
    assert result.found.tolist() == [counterfactual is not None]
    if counterfactual is not None:
        torch.testing.assert_close(result.counterfactual.flatten(), torch.tensor([counterfactual, 0.0]))
    assert result.distance.item() == pytest.approx(distance, rel=1e-5)
    assert result.c_final.item() == pytest.approx(c_final)


@pytest.mark.parametrize("beta", [0.1, 0.0])
def test_the_search_keeps_the_valid_candidate_of_least_l2_squared_plus_beta_l1(beta):
    """Three iterations from x0 = (0.3, 0.1) towards a class-1 prototype at (0, -1), with p0 - p1 =
    2 (x[0] + x[1]). With beta 0.1 the first two candidates are valid and their order depends on beta:
    the first is nearer in L2 (0.1280 against 0.1288), the second in L2^2 + 0.1 L1 (0.1721 against
    0.1760): the second is kept. Any beta: the kept one is the valid candidate of least L2^2 + beta L1,
    and that is its reported distance."""
    model, x0 = Margin(2.0, 2.0), images([0.3, 0.1])
    options = CFProtoOptions(theta=1.0, c_steps=1, max_iterations=3, learning_rate=0.1, beta=beta,
                             feature_range=(-5.0, 5.0))
    result = prototype_counterfactuals(model, x0, encoder=flat, latents=torch.tensor([[0.0, -1.0]]),
                                       labels=torch.tensor([1]), options=options)
    candidates = torch.cat(model.seen[1:])
    valid = candidates.sum(dim=1) < 0  # class 1 where p0 - p1 < 0
    change = candidates - x0.flatten(1)
    l2, l1 = change.pow(2).sum(dim=1), change.abs().sum(dim=1)
    score = torch.where(valid, l2 + beta * l1, torch.full_like(l2, math.inf))
    best = int(score.argmin())
    torch.testing.assert_close(result.counterfactual.flatten(1), candidates[best:best + 1])
    assert result.distance.item() == pytest.approx(score[best].item(), rel=1e-6)
    if beta == 0.1:
        assert valid.tolist() == [True, True, False] and best == 1
        assert int(torch.where(valid, l2, math.inf).argmin()) == 0  # L2 alone would keep the first


# ---- one tiny trained memory run for the commands --------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_dataset_dir) -> Path:
    """A tiny ViT encoder_memory run on the tiny CIFAR10 (10 epochs: it predicts several classes, so
    that Memory Wrap has counterfactuals and the search prototypes): its checkpoint."""
    root = tmp_path_factory.mktemp("options")
    raw = vit_config(root, tiny_dataset_dir, "encoder_memory", runs=1, eval_passes=2)
    settings = TrainSettings(validate(raw, datasets.list_datasets()), "encoder_memory")
    train_run(settings, 1)
    return settings.cell_folder / "1.pt"


CPU = CheckpointOptions(device="cpu")


def test_counterfactual_settings_reach_the_search_as_given(run, monkeypatch):
    """Every option of the search arrives as set (the feature range: the normalised training pixels'
    with data_feature_range, else the one set); gamma > 0 brings the all-class autoencoder; target
    "memory" searches Memory Wrap's class for the inputs that have one, "any" every input, free;
    max_inputs and figure_inputs bound the inputs and the figure."""
    from architectures.autoencoder import ConvAutoencoder
    from suite.journal import counterfactual_quality as quality
    from suite.journal.autoencoders import RunAutoencoders

    torch.manual_seed(0)
    autoencoders = RunAutoencoders([ConvAutoencoder().eval() for _ in range(10)], ConvAutoencoder().eval(), Path())
    calls = []
    search = quality.prototype_counterfactuals

    def spy(predict, x, **kwargs):
        calls.append(kwargs)
        return search(predict, x, **kwargs)

    monkeypatch.setattr(quality, "prototype_counterfactuals", spy)
    restored = restore_run(run, CheckpointOptions(device="cpu", batch_size_test=4))
    pixels = restored.data.test_transform(restored.data.train.images)
    options = CFProtoOptions(kappa=0.01, beta=0.01, gamma=0.1, theta=0.1, c_init=1000.0, c_steps=1, max_iterations=20,
                             learning_rate=1.0, clip=50.0, feature_range=(-3.0, 3.0), k=2, l1_in_gradient=True)
    assert all(getattr(options, f.name) != getattr(CFProtoOptions(), f.name) for f in fields(CFProtoOptions))
    result = quality.counterfactual_run(restored, autoencoders, quality.CounterfactualSettings(
        options, target="memory", max_inputs=6, data_feature_range=True, figure_inputs=1))
    assert calls and all(call["options"] == replace(options, feature_range=(float(pixels.min()), float(pixels.max())))
                         for call in calls)
    assert all(call["autoencoder"] is autoencoders.full and call["encoder"] == autoencoders.full.encode
               for call in calls)
    memory_wrap = [r for r in result.records if r["method"] == "memory_wrap"]
    prototype = [r for r in result.records if r["method"] == "prototype"]
    assert len(memory_wrap) == len(prototype) == 6
    searched = [mw["cf_class"] for mw, p in zip(memory_wrap, prototype) if p["found"] or p["reason"] == "search failed"]
    assert searched and all(c >= 0 for c in searched)
    assert torch.cat([call["target"] for call in calls]).tolist() == searched  # Memory Wrap's class, input by input
    both = sum(mw["found"] and p["found"] for mw, p in zip(memory_wrap, prototype))
    assert both >= 2 and len(result.figure) == 1

    calls.clear()
    free = replace(options, gamma=0.0)
    result = quality.counterfactual_run(restored, autoencoders, quality.CounterfactualSettings(
        free, target="any", max_inputs=4, data_feature_range=False, figure_inputs=0))
    assert calls and all(call["options"] == free and call["autoencoder"] is None and call["target"] is None
                         for call in calls)
    assert len(result.records) == 8 and result.figure == []


def test_the_passes_of_every_evaluation_and_explanation_command_reach_it(run):
    """--passes of eval_dir.py, explanation_accuracy.py, eval_dir.py --majority_vote and
    explanation_quality.py: that many passes over the 50 test images (eval_dir's and the majority
    vote's default: the run's eval_passes, 2)."""
    from suite import commands
    from suite.journal import quality_commands
    from suite.journal.majority_vote_eval import majority_vote_folder

    folder, quiet = str(run.parent), {"out": lambda _: None, "note": lambda _: None}
    for passes, expected in ((3, 3), (None, 2)):
        record = commands.evaluate_folder(folder, CPU, passes=passes, json_path="", **quiet)["runs"][0]
        assert record["passes"] == expected and len(record["pass_accuracies"]) == expected
        record = majority_vote_folder(folder, CPU, passes=passes, json_path="", **quiet)["runs"][0]
        assert [p["total"] for p in record["pass_counts"]] == [50] * expected
    record = commands.explanation_accuracy(folder, CPU, passes=3, json_path="", **quiet)["runs"][0]
    assert [p["total"] for p in record["passes"]] == [50] * 3
    assert quality_commands.explanation_quality(folder, CPU, passes=3, **quiet)["runs"][0]["inputs"] == 150


# ---- attribution methods --------------------------------------------------------------------------------
def changed(value):
    """Another value than a default: numbers moved by a little."""
    return value + 1 if isinstance(value, int) else value + 0.05


CAPTUM = ("IntegratedGradients", "Saliency", "GradientShap")


def spy_captum(monkeypatch) -> list[tuple[str, dict]]:
    """Every call of a captum attribution method: (class name, its keyword arguments)."""
    import captum.attr

    calls = []
    for name in CAPTUM:
        cls = getattr(captum.attr, name)

        def attribute(self, inputs, *args, __original=cls.attribute, __name=name, **kwargs):
            calls.append((__name, kwargs))
            return __original(self, inputs, *args, **kwargs)

        monkeypatch.setattr(cls, "attribute", attribute)
    return calls


@pytest.mark.parametrize("baseline", ["ones", "white", "black"])
def test_every_attribution_option_and_the_baseline_reach_captum(run, monkeypatch, tmp_path, baseline):
    """For every registered method, each of its options set to a value other than its default arrives
    in captum's call as that value, and the baselines captum gets are the chosen baseline: the input's
    and every memory image's (all ones in normalised space, or the normalised white / black image)."""
    from suite import commands
    from suite.attribution import get_method, list_methods

    quiet_figures(monkeypatch)
    calls = spy_captum(monkeypatch)
    data = restore_run(run, CPU).data
    pixel = {"white": 255, "black": 0}.get(baseline)
    expected = torch.ones(1, 3, 32, 32) if pixel is None else data.test_transform(
        torch.full((1, 3, 32, 32), pixel, dtype=torch.uint8))
    for method in list_methods():
        if baseline != "ones" and not get_method(method).uses_baseline:
            continue  # a method without a baseline refuses the flag (tests/test_first_hour.py)
        options = {name: changed(default) for name, default in get_method(method).options.items()}
        calls.clear()
        commands.heatmaps(str(run), CheckpointOptions(device="cpu", batch_size_test=1), max_images=1,
                          baseline=baseline, method=method, method_options=options, images_dir=tmp_path,
                          out=lambda _: None)
        assert len(calls) == 1, (method, calls)
        kwargs = calls[0][1]
        assert {name: kwargs[name] for name in options} == options, method
        if "baselines" in kwargs:
            input_baseline, memory_baseline = kwargs["baselines"]
            torch.testing.assert_close(input_baseline, expected, rtol=0, atol=0)
            memory_baseline = memory_baseline.reshape(-1, 3, 32, 32)
            torch.testing.assert_close(memory_baseline, expected.expand_as(memory_baseline), rtol=0, atol=0)
    assert {name for name, _ in calls} <= set(CAPTUM)


DRIVER = """
import json, sys
from absl import flags
import generate_heatmaps as script

seen = []
script.heatmaps = lambda *args, **kwargs: seen.append(args[3:])  # baseline, method, method options
for argv in json.loads(sys.argv[1]):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["generate_heatmaps.py", *argv])
    script.main(["generate_heatmaps.py"])
print(json.dumps(seen))
"""


def test_the_heat_map_scripts_flags_reach_the_heat_maps(tmp_path):
    """generate_heatmaps.py's --baseline, --method and the method's own flags (--n_steps,
    --internal_batch_size, --n_samples) reach `heatmaps` as given (and from there captum, above)."""
    import subprocess
    import sys

    runs = [["--path_model=x.pt", "--n_steps=3", "--internal_batch_size=1", "--baseline=black"],
            ["--path_model=x.pt", "--method=gradient_shap", "--n_samples=3", "--baseline=white"],
            ["--path_model=x.pt", "--method=saliency"]]
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs)], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        ["black", "integrated_gradients", {"n_steps": 3, "internal_batch_size": 1}],
        ["white", "gradient_shap", {"n_samples": 3}],
        ["ones", "saliency", {}]]


# ---- the autoencoders' training ---------------------------------------------------------------------------
def test_the_autoencoder_training_options_reach_every_autoencoder(run, monkeypatch):
    """train_autoencoders with 2 epochs, batches of 5 and lr 0.004: every autoencoder of the run (one per
    class, one for all) trains 2 epochs of batches of 5 (the last one short) over its images, each step
    with Adam at 0.004."""
    from architectures.autoencoder import ConvAutoencoder
    from suite.data import WHOLE_SPLIT, training_subset
    from suite.journal import quality_commands
    from suite.journal.autoencoders import AutoencoderTraining

    restored = restore_run(run, CPU)
    labels = training_subset(restored.settings.config, restored.seed, "cpu", WHOLE_SPLIT).labels
    sizes = [int((labels == c).sum()) for c in range(10)] + [len(labels)]
    batches, steps = [], []

    def batch(module, args):
        if isinstance(module, ConvAutoencoder) and module.training:
            batches.append(args[0].shape[0])

    forward = register_module_forward_pre_hook(batch)
    step = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: steps.append((type(optimizer).__name__, optimizer.param_groups[0]["lr"])))
    try:
        quality_commands.train_autoencoders(str(run.parent), CPU, AutoencoderTraining(epochs=2, batch_size=5,
                                                                                      learning_rate=0.004),
                                            overwrite=True, out=lambda _: None, note=lambda _: None)
    finally:
        forward.remove()
        step.remove()
    per_epoch = [[5] * (n // 5) + ([n % 5] if n % 5 else []) for n in sizes]
    assert batches == [b for epoch in per_epoch for b in epoch * 2]
    assert steps == [("Adam", 0.004)] * len(batches)
