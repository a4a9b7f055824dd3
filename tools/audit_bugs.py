"""An outside review's planted bugs, in the format of tools/bugs.py (run with
`python3 tools/plant_bugs.py --bugs tools/audit_bugs.py`).

Each is a plausible one-line (or few-line) slip that changes a number, a file or a behaviour a user
of the suite relies on; none repeats a bug of tools/bugs.py (same line, same slip). The `likely`
test files are left empty on purpose: the reviewer has not seen the tests.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bugs import Bug, Replacement, bug  # noqa: E402

BUGS: list[Bug] = [
    # ---- statistics of reports (suite/stats.py) ----------------------------------------------------
    bug("A1", "suite/stats.py",
        "standard_error = std / math.sqrt(len(defined) - 1)",
        "standard_error = std / math.sqrt(len(defined))",
        "95 % CI of the mean built from the population std over sqrt(n): every interval too narrow"),
    bug("A2", "suite/stats.py",
        "p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)",
        "p = float(stats.ttest_ind(a, b, equal_var=True).pvalue)",
        "differences from Std tested with Student's pooled t-test instead of Welch's (wrong p with unequal "
        "variances or sizes)"),
    bug("A3", "suite/stats.py",
        "running = max(running, min(1.0, (len(ranked) - rank) * p))",
        "running = max(running, min(1.0, (len(p_values) - rank) * p))",
        "Holm correction counts the missing (None) comparisons in the family: adjusted p too large"),
    # ---- grid files and sweeps (suite/gridspec.py) --------------------------------------------------
    bug("A4", "suite/gridspec.py",
        'assignments = list(self.overrides) + [f"{key}={json.dumps(value)}" for key, value in cell.sweep] + [',
        'assignments = [f"{key}={json.dumps(value)}" for key, value in cell.sweep] + list(self.overrides) + [',
        "a grid override (or --set) of a swept key silently wins over the sweep: every swept cell trains "
        "with the same value"),
    bug("A5", "suite/gridspec.py",
        'return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))',
        "return value if isinstance(value, str) else json.dumps(value)",
        "list-valued swept values get spaces in their cell_tag ('[12, 16]'): the cell folder name changes and "
        "the config refuses the tag"),
    # ---- grid planning and running (suite/grid.py) --------------------------------------------------
    bug("A6", "suite/grid.py",
        'return [f"cuda:{gpus[i % len(gpus)]}" for i in range(workers)]',
        'return [f"cuda:{gpus[i // len(gpus)]}" for i in range(workers)]',
        "--gpus no longer round-robin: 2 workers on --gpus=0,1 both train on cuda:0 (and 5 workers on 2 GPUs "
        "fail with an IndexError)"),
    bug("A7", "suite/grid.py",
        'f"{self.planned_done + self.count(ALREADY_DONE)} already done (skipped), "',
        'f"{self.count(ALREADY_DONE)} already done (skipped), "',
        "grid summary forgets the runs found finished before the command (says 0 already done on a rerun)"),
    # ---- run files (suite/run_files.py) --------------------------------------------------------------
    bug("A8", "suite/run_files.py",
        'return [row for row in rows if row["epoch"] <= epochs_done]',
        'return [row for row in rows if row["epoch"] < epochs_done]',
        "a resumed run's metrics CSV loses the row of the last epoch its resume file holds"),
    bug("A9", "suite/run_files.py",
        "if any(row[k] is None or not math.isfinite(row[k]) for k in COLUMNS[1:5]):",
        "if any(row[k] is None or not math.isfinite(row[k]) for k in COLUMNS[1:]):",
        "metrics rows without a test accuracy (eval_every: 0, the default) are called damaged: no training "
        "curves"),
    bug("A10", "suite/run_files.py",
        "            runs.append((int(match.group(1)), path))",
        "            runs.append((match.group(1), path))",
        "run checkpoints sorted as text (1, 10, 11, 2, ...) and numbered by strings in eval_dir / explanation "
        "results"),
    # ---- training loop and records (suite/training.py) ------------------------------------------------
    bug("A11", "suite/training.py",
        "periodic_test_accuracy(state, settings, stats.epoch)))",
        "periodic_test_accuracy(state, settings, epoch)))",
        "eval_every: K evaluates after epochs 1, K+1, 2K+1 ... (0-based epoch) instead of K, 2K, ..."),
    bug("A12", "suite/training.py",
        'for run in range(1, settings.config["runs"] + 1):',
        'for run in range(1, settings.config["runs"]):',
        "train.py trains runs - 1 runs of a cell (the last seed never trained)"),
    bug("A13", "suite/training.py",
        '"train_subset_size": len(state.data.train),',
        '"train_subset_size": settings.train_examples,',
        "record's train_subset_size is the asked size, not the real one: the report never labels a column "
        "'full (N)'"),
    # ---- data (suite/data.py) -------------------------------------------------------------------------
    bug("A14", "suite/data.py",
        "return [rest.indices[i] for i in train.indices], list(validation.indices)",
        "return list(train.indices), list(validation.indices)",
        "training subset given as positions in the non-validation rest, not dataset indices: validation "
        "images leak into training and the split differs from the original's"),
    bug("A15", "suite/data.py",
        "return spec.validation_size if size is None else size",
        "return size or spec.validation_size",
        "config validation_size: 0 ignored (the dataset's hold-out is used instead)"),
    bug("A16", "suite/data.py",
        'batch_size_train=min(config["batch_size_train"], len(train)), batch_size_test=config["batch_size_test"],',
        'batch_size_train=config["batch_size_train"], batch_size_test=config["batch_size_test"],',
        "a training subset smaller than the batch size with drop_last trains zero steps per epoch"),
    # ---- memory sampling strategies (suite/sampling/) -----------------------------------------------
    bug("A17", "suite/sampling/class_balanced.py",
        "kept = order[rank < quota[self.labels[order]]]",
        "kept = order[rank <= quota[self.labels[order]]]",
        "class_balanced memories hold one extra image per class (more than mem_examples)"),
    bug("A18", "suite/sampling/class_balanced.py",
        "return kept[torch.randperm(len(kept), generator=generator, device=self.device)]",
        "return kept",
        "class_balanced draws come ordered by class and the stream skips a permutation (every later draw "
        "differs)"),
    # ---- majority votes (suite/journal/majority_vote*.py) --------------------------------------------
    Bug("A19", "suite/journal/majority_vote.py", (
        Replacement("    return (majority_class(weights, memory_predictions, num_classes),\n"
                    "            majority_class(weights, memory_labels, num_classes))",
                    "    return (majority_class(weights, memory_labels, num_classes),\n"
                    "            majority_class(weights, memory_predictions, num_classes))"),),
        "MVO and MVY swapped (the vote of labels reported as the vote of predictions)"),
    bug("A20", "suite/journal/majority_vote_eval.py",
        "return int((((counts == top).sum(dim=1) > 1) & (top.squeeze(1) > 0)).sum())",
        "return int((((counts == top).sum(dim=1) >= 1) & (top.squeeze(1) > 0)).sum())",
        "mvo_ties / mvy_ties count every voted input as a tie"),
    # ---- example quality (suite/journal/example_quality.py) ------------------------------------------
    bug("A21", "suite/journal/example_quality.py",
        "return (example_logits.float() - logits.float()).abs().mean(dim=1)",
        "return (example_logits.float() - logits.float()).abs().sum(dim=1)",
        "input non-representativeness summed over classes instead of averaged (x num_classes)"),
    bug("A22", "suite/journal/example_quality.py",
        "random = generator(restored.seed, RANDOM_STREAM, data.device)",
        "random = generator(restored.seed, MEMORY_STREAM, data.device)",
        "the Random ranker draws from a copy of the memory stream (correlated with the memory draws)"),
    # ---- counterfactual scores and search ------------------------------------------------------------
    bug("A23", "suite/journal/interpretability.py",
        '"im2": im2(x_cf, cf_class, class_aes, full_ae, eps),',
        '"im2": im2(x_cf, orig_class, class_aes, full_ae, eps),',
        "IM2 scored with the autoencoder of the original class (the journal code's slip) instead of the new "
        "class"),
    bug("A24", "suite/journal/counterfactual_quality.py",
        'scores["l1"], scores["l2"] = change.abs().sum(dim=1), change.pow(2).sum(dim=1).sqrt()',
        'scores["l1"], scores["l2"] = change.abs().sum(dim=1), change.pow(2).sum(dim=1)',
        "counterfactual L2 distance reported squared"),
    bug("A25", "suite/journal/counterfactual_quality.py",
        "mw_images, mw_class = memory[0][safe], torch.where(has_mw, memory_predictions[safe], -1)",
        "mw_images, mw_class = memory[0][safe], torch.where(has_mw, memory[1][safe], -1)",
        "Memory Wrap counterfactual's class taken from its true label instead of the model's prediction "
        "(IM1/IM2 with the wrong autoencoder, prototype target wrong)"),
    bug("A26", "suite/journal/autoencoders.py",
        "            count += x.numel()",
        "            count += len(x)",
        "autoencoder test MSE per image instead of per pixel (x 3072)"),
    bug("A27", "suite/journal/cfproto.py",
        "upper = torch.where(success, torch.minimum(upper, c), upper)",
        "upper = torch.where(success, torch.maximum(upper, c), upper)",
        "prototype search never learns an upper bound of c: after a success c is never bisected down"),
    bug("A28", "suite/journal/cfproto.py",
        "nearest = torch.cdist(query, members).topk(min(k, len(members)), dim=1, largest=False).indices",
        "nearest = torch.cdist(query, members).topk(min(k, len(members)), dim=1).indices",
        "prototypes with k set average the k farthest latents of a class instead of the nearest"),
    # ---- report and sweep tables ---------------------------------------------------------------------
    bug("A29", "suite/report.py",
        "reference = grid.cell(cell.dataset, cell.model, cell.train_examples, REFERENCE, cell.sweep)",
        "reference = Cell(cell.dataset, cell.model, cell.train_examples, REFERENCE)",
        "sweep grids of a key Std reads get no 'Differences from Std' (the reference cell is looked up without "
        "the swept values)"),
    bug("A30", "suite/report.py",
        "found.append(Difference(cell, reference, compare(st.accuracies, stats[reference].accuracies)))",
        "found.append(Difference(cell, reference, compare(stats[reference].accuracies, st.accuracies)))",
        "Δ vs Std and Hedges' g with the sign flipped (Std minus the modality)"),
    bug("A31", "suite/sweeps.py",
        "rows = -(-len(panels) // columns)",
        "rows = len(panels) // columns",
        "sweep figure rows rounded down: panels past the last full row are silently not drawn"),
    # ---- config, recipe, estimates --------------------------------------------------------------------
    bug("A32", "suite/config.py",
        '"channels_last", "eval_every", "tensorboard", "cell_tag")',
        '"channels_last", "eval_every", "eval_passes", "tensorboard", "cell_tag")',
        "eval_passes taken for an execution key: records evaluated with another pass count resume and count "
        "in the report as the same settings"),
    bug("A33", "suite/recipe.py",
        "target_dist = torch.full_like(log_probs, self.smoothing / (classes - 1))",
        "target_dist = torch.full_like(log_probs, self.smoothing / classes)",
        "ViT label smoothing spreads eps / C instead of eps / (C - 1) (targets no longer sum to 1)"),
    bug("A34", "suite/recipe.py",
        "return losses.sum() / reachable.sum().clamp(min=1)",
        "return losses.mean()",
        "ProtoNet loss averaged over all queries, the excluded (absent-class) ones counting as zero loss"),
    bug("A35", "suite/recipe.py",
        "step = epoch - warmup_epochs - 1 if warmup_epochs > 0 else epoch",
        "step = epoch - warmup_epochs if warmup_epochs > 0 else epoch",
        "ViT warmup-cosine schedule starts its cosine one epoch early (epoch W+1 below the base lr)"),
    bug("A36", "suite/estimate.py",
        'subset = min(settings.train_examples, train_split - validation_size(settings.config))',
        'subset = min(settings.train_examples, train_split)',
        "device-hour estimates of whole-split cells count the validation hold-out as training images"),
    # ---- evaluation and explanation commands -----------------------------------------------------------
    bug("A37", "suite/commands.py",
        'count = (passes or restored.settings.config["eval_passes"]) if restored.model.uses_memory else 1',
        'count = (passes or EVAL_PASSES) if restored.model.uses_memory else 1',
        "eval_dir.py evaluates memory models with eval.py's 10 passes, not the run's eval_passes: it no "
        "longer prints the accuracies train.py recorded"),
    bug("A38", "suite/commands.py",
        'written.append(figures.write(f"{done + len(images) - 1}.png", figure_png(figure)))',
        'written.append(figures.write(f"{done + len(images)}.png", figure_png(figure)))',
        "memory-image figures named one past the last test index they show (3.png, 6.png ... not 2.png, 5.png)"),
    bug("A39", "suite/explain.py",
        "whole = training_subset(restored.settings.config, ORIGINAL_SPLIT_SEED, restored.device, WHOLE_SPLIT)",
        "whole = training_subset(restored.settings.config, restored.seed, restored.device, WHOLE_SPLIT)",
        "--memory_pool=full draws from each run's own split instead of the original's split-seed-42 pool"),
    # ---- datasets and attribution -----------------------------------------------------------------------
    bug("A40", "suite/datasets/registry.py",
        "return self.vit_mean or self.mean, self.vit_std or self.std",
        "return self.vit_mean or self.mean, self.std",
        "normalization: vit keeps the CNN std (CIFAR10, SVHN ViT inputs scaled wrongly)"),
    bug("A41", "suite/datasets/svhn.py",
        "np.transpose(x, (3, 2, 0, 1))",
        "np.transpose(x, (3, 2, 1, 0))",
        "SVHN images transposed (height and width swapped)"),
    bug("A42", "suite/attribution/captum_methods.py",
        "target: int, *, n_steps: int = 40, internal_batch_size: int = 2)",
        "target: int, *, n_steps: int = 50, internal_batch_size: int = 2)",
        "Integrated Gradients default steps 50 (captum's) instead of the original's 40: other heat maps"),
]

# Added by the maintainer after the review, from the file each bug touches: the test files tried
# first (this orders the tests, it does not decide: a bug they miss still meets the whole suite).
_LIKELY = {
    "suite/stats.py": ("tests/test_stats.py", "tests/test_grid.py"),
    "suite/gridspec.py": ("tests/test_grid.py",), "suite/grid.py": ("tests/test_grid.py",),
    "suite/report.py": ("tests/test_grid.py",), "suite/sweeps.py": ("tests/test_grid.py",),
    "suite/run_files.py": ("tests/test_run_files.py", "tests/test_grid.py"),
    "suite/training.py": ("tests/test_training.py", "tests/test_run_files.py", "tests/test_science.py"),
    "suite/data.py": ("tests/test_datasets.py", "tests/test_science.py"),
    "suite/sampling/class_balanced.py": ("tests/test_sampling.py",),
    "suite/journal/majority_vote.py": ("tests/test_journal_heads.py", "tests/test_journal_baselines.py"),
    "suite/journal/majority_vote_eval.py": ("tests/test_journal_heads.py", "tests/test_journal_baselines.py"),
    "suite/config.py": ("tests/test_config.py", "tests/test_training.py", "tests/test_grid.py"),
    "suite/recipe.py": ("tests/test_training.py", "tests/test_vit_recipe.py", "tests/test_journal_heads.py",
                        "tests/test_journal_baselines.py"),
    "suite/estimate.py": ("tests/test_estimate.py",),
    "suite/commands.py": ("tests/test_eval_scripts.py", "tests/test_explanations.py"),
    "suite/explain.py": ("tests/test_explanations.py",),
    "suite/datasets/registry.py": ("tests/test_datasets.py",), "suite/datasets/svhn.py": ("tests/test_datasets.py",),
    "suite/attribution/captum_methods.py": ("tests/test_explanations.py",),
}
_JOURNAL = ("tests/test_explanation_quality.py", "tests/test_counterfactual_metrics.py")
BUGS = [Bug(b.name, b.file, b.replacements, b.description, _LIKELY.get(b.file, _JOURNAL)) for b in BUGS]
