"""The journal's majority-vote baseline (its eval_dir_mv.py) on trained memory models: `eval_dir.py --majority_vote`.

Question it answers: does the memory a model attends to predict as well as the model? For each test
input, the memory samples with a positive weight vote, one vote each (suite.journal.majority_vote):
MVO with the class the model predicts for the sample, MVY with the sample's true label; both are
scored against the input's label, beside the model's own accuracy.

Protocol: exactly `suite.evaluation.evaluate`'s, plus one draw.
- Each test image is encoded once; each pass walks the test batches in the evaluation order and
  draws one memory M per batch from the run's `EVALUATION_MEMORY` stream: the very draws `evaluate`
  makes, so the model accuracy printed here is the one train.py recorded (a test checks it).
- The memory samples' own predictions need a memory of their own: an auxiliary draw A per test
  batch, q = argmax classify(M, A), as explanation_pass does. A comes from a separate seeded stream
  (`AUXILIARY_STREAM`), so that drawing it leaves M's sequence untouched.
- `passes` passes (default: the run's eval_passes); per run the mean over passes, per cell the mean
  and population std over runs. Same checkpoint, same numbers, at every call.

Edge cases, each counted per pass in the JSON so that a reader sees how often it decided:
- a tie between classes goes to the smallest class index (what the journal's torch.mode did on the
  CPU): `mvo_ties`, `mvy_ties`;
- all the weight on one sample (sparsemax often does this): that sample alone decides: `single_voter`;
- no positive weight cannot happen with the suite's heads (rows sum to 1); such an input would get no
  vote and count as wrong: `no_vote`;
- dense heads give every memory sample a positive weight (Matching Networks: a softmax; ProtoNet:
  each class's probability shared among its samples), so their majority is that of the whole draw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..commands import DEFAULTS, Printer, each_run, evaluation_options, saved, stderr, write_results
from ..data import MemorySampler, RunData, generator
from ..cli import UserError
from ..evaluation import EVALUATION_MEMORY, TEST_ORDER, encode_test_set
from ..restore import CheckpointOptions
from ..stats import mean_and_std
from .comparison import MAJORITY_VOTE_FILE
from .majority_vote import MajorityVoteTally, majority_votes, vote_counts
from ..explain import memory_batches
from ..run_files import check_output_file

AUXILIARY_STREAM = "majority_vote_auxiliary"
TIE_RULE = "unweighted votes of the positive-weight memory samples; a tie goes to the smallest class index"


def ties(weights: Tensor, memory_classes: Tensor, num_classes: int) -> int:
    """How many inputs have two or more classes sharing the top vote count."""
    counts = vote_counts(weights, memory_classes, num_classes)
    top = counts.max(dim=1, keepdim=True).values
    return int((((counts == top).sum(dim=1) > 1) & (top.squeeze(1) > 0)).sum())


@dataclass
class VotePass:
    """One pass over the test set: correct counts of model, MVO and MVY, and the edge cases met."""

    tally: MajorityVoteTally = field(default_factory=MajorityVoteTally)
    single_voter: int = 0
    no_vote: int = 0
    mvo_ties: int = 0
    mvy_ties: int = 0

    def update(self, labels: Tensor, logits: Tensor, weights: Tensor, memory_predictions: Tensor,
               memory_labels: Tensor, num_classes: int) -> None:
        mvo, mvy = majority_votes(weights, memory_predictions, memory_labels, num_classes)
        self.tally.update(labels, logits.argmax(dim=1), mvo, mvy)
        voters = (weights > 0).sum(dim=1)
        self.single_voter += int((voters == 1).sum())
        self.no_vote += int((voters == 0).sum())
        self.mvo_ties += ties(weights, memory_predictions, num_classes)
        self.mvy_ties += ties(weights, memory_labels, num_classes)

    def as_dict(self) -> dict:
        t = self.tally
        return {"total": t.total, "model_correct": t.model_correct, "mvo_correct": t.mvo_correct,
                "mvy_correct": t.mvy_correct, "accuracy": t.model_accuracy, "mvo_accuracy": t.mvo_accuracy,
                "mvy_accuracy": t.mvy_accuracy, "single_voter": self.single_voter, "no_vote": self.no_vote,
                "mvo_ties": self.mvo_ties, "mvy_ties": self.mvy_ties}


@torch.no_grad()
def vote_pass(model, data: RunData, features: Tensor, sampler: MemorySampler, auxiliary: MemorySampler,
              order: torch.Generator | None, description: str = "majority vote") -> VotePass:
    """One pass: per test batch, M from `sampler` (the inputs' memory) and A from `auxiliary`."""
    result = VotePass()
    for positions, (_, labels), batch in memory_batches(model, data, features, sampler, auxiliary, order,
                                                        description=description):
        result.update(data.test.labels[positions], batch.logits, batch.weights, batch.memory_predictions, labels,
                      model.num_classes)
    return result


def vote_evaluation(model, data: RunData, passes: int) -> list[VotePass]:
    """`passes` passes with the evaluation's seeded draws (see the module docstring)."""
    order = generator(data.seed, TEST_ORDER, data.device) if data.spec.shuffle_test else None
    features = encode_test_set(model, data)
    sampler = data.memory_sampler(EVALUATION_MEMORY)
    auxiliary = data.memory_sampler(AUXILIARY_STREAM)
    return [vote_pass(model, data, features, sampler, auxiliary, order, f"majority vote, pass {i + 1}/{passes}")
            for i in range(passes)]


@dataclass(frozen=True)
class RunVotes:
    """One run: its passes and the means over them."""

    passes: tuple[VotePass, ...]

    def _mean(self, name: str) -> float:
        return sum(getattr(p.tally, name) for p in self.passes) / len(self.passes)

    @property
    def accuracy(self) -> float:
        return self._mean("model_accuracy")

    @property
    def mvo_accuracy(self) -> float:
        return self._mean("mvo_accuracy")

    @property
    def mvy_accuracy(self) -> float:
        return self._mean("mvy_accuracy")

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "mvo_accuracy": self.mvo_accuracy, "mvy_accuracy": self.mvy_accuracy,
                "pass_accuracies": [p.tally.model_accuracy for p in self.passes],
                "pass_mvo_accuracies": [p.tally.mvo_accuracy for p in self.passes],
                "pass_mvy_accuracies": [p.tally.mvy_accuracy for p in self.passes],
                "pass_counts": [p.as_dict() for p in self.passes]}


def _line(record: dict, records: list[dict]) -> str:
    """The journal's per-run line (cumulative mean and population std), without its tab."""
    (m, s), (om, os_), (ym, ys) = (mean_and_std([r[k] for r in records])
                                   for k in ("accuracy", "mvo_accuracy", "mvy_accuracy"))
    return (f"Run:{record['run']} | Accuracy {record['accuracy']:.2f} | Mean Accuracy:{m:.2f} | Std Dev:{s:.2f} | "
            f"MVO Accuracy:{om:.2f} | Std Dev:{os_:.2f} | MVY Accuracy:{ym:.2f} | Std Dev:{ys:.2f} | "
            f"E:{record['minutes']:.2f}min")


def majority_vote_folder(folder: str, options: CheckpointOptions = DEFAULTS, passes: int | None = None,
                         json_path: str | None = None, out: Printer = print, note: Printer = stderr) -> dict:
    """Every `<N>.pt` memory-model run of a folder; writes `<folder>/majority_vote.json` by default
    (`json_path` "" writes nothing). Std models have no memory and are refused before any work."""
    if passes is not None and passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")
    check_output_file(json_path, "--json")

    def measure(restored) -> dict:
        count = passes or restored.settings.config["eval_passes"]
        votes = RunVotes(tuple(vote_evaluation(restored.model, restored.data, count)))
        return {"passes": count, "settings": restored.settings.comparable_json()} | votes.as_dict()

    def line(record: dict, records: list[dict]) -> str:  # the legend above the first line: not before a refusal
        return (LEGEND + "\n" if len(records) == 1 else "") + _line(record, records)

    results = each_run(folder, options, measure, line, require_memory=True, out=out, note=note)
    summary = results.summary("accuracy", "mvo_accuracy", "mvy_accuracy")
    (am, asd), (om, osd), (ym, ysd) = ((summary[k]["mean"], summary[k]["std"]) for k in summary)
    out(f"Mean Accuracy:{am:.2f} | Std Dev Accuracy:{asd:.2f} | MVO Accuracy:{om:.2f} | Std Dev:{osd:.2f} | "
        f"MVY Accuracy:{ym:.2f} | Std Dev:{ysd:.2f} | Runs:{len(results.runs)}")
    settings = results.settings
    payload = results.payload(dataset=settings.dataset_name, model=settings.model, modality=settings.modality,
                              train_examples=settings.train_examples, memory_stream=EVALUATION_MEMORY,
                              auxiliary_stream=AUXILIARY_STREAM, vote_rule=TIE_RULE, summary=summary)
    name = results.name(Path(MAJORITY_VOTE_FILE).stem, evaluation_options(results, passes),
                        {"passes": results.trained["eval_passes"], "batch_size_test": None})
    saved(out, write_results(folder, name, payload, json_path))
    return payload


LEGEND = ("MVO: majority vote of the classes the model predicts for the memory samples of positive weight; "
          "MVY: majority vote of those samples' true labels (the journal's baselines); Accuracy: the model's own. "
          "On a Run line, Accuracy is that run's; Mean Accuracy, MVO and MVY Accuracy and their Std Dev are over "
          "the runs so far (the journal's lines)")
