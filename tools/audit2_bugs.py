"""A second outside review's planted bugs (tools/plant_bugs.py --bugs tools/audit2_bugs.py), written
without reading the tests or the earlier bug lists. Same format as tools/bugs.py: each bug is a
plausible slip that changes a number, a file, a name or a behaviour a user relies on, silently.

The comment above each bug says how it was shown to change behaviour: the bug applied in a scratch
copy of the tree, a small command or snippet run on the offline DIGITS data, and its output compared
with the same command's in an unmodified copy. Commands that open checkpoints used a tiny cell trained by
the unmodified code: `train.py --modality=encoder_memory --config=config/quickstart.yaml --set model=vit
--set "model_options={patches: 4, depth: 1, hidden: 32, heads: 2, mlp_hidden: 32}" --set train_examples=300
--set runs=2 --set DIGITS.num_epochs=10 --set DIGITS.mem_examples=20 --set optimizer.name=adam` (lr 0.003,
no weight decay), whose runs recorded 19.92 and 26.16 %, and its autoencoders (`train_autoencoders.py
--epochs=1`). "Fake grid report": run records written for a 1-size DIGITS/vit grid, then `write_report`.
"""
from __future__ import annotations

from bugs import Bug, Replacement, bug  # noqa: F401 - sys.path holds tools/ when plant_bugs.py loads this file

BUGS: list[Bug] = [
    # ---- 1. a checkpoint describes itself -----------------------------------------------------------
    # shown: 1.pt copied to copy/2.pt; eval.py --passes=5 on the copy: 'Accuracy 19.92', seed 0 (as 1.pt) -> 'Accuracy 20.04', seed 1
    bug("B1", "suite/restore.py",
        'seed = checkpoint["seed"] if isinstance(checkpoint.get("seed"), int) else seed_from_name(path)',
        'seed = checkpoint["seed"] if isinstance(checkpoint.get("seed"), int) and not RUN_FILE.match(path.name) '
        'else seed_from_name(path)',
        "a checkpoint named <N>.pt is evaluated with seed N-1 from its file name instead of the seed it "
        "records, so a copy renamed to another run number gives another subset and other numbers"),
    # shown: 1.pt copied to copy/2.pt; eval.py --json on it: "run": 1 -> 2; generate_memory_images.py: .../300/run1 -> .../300/run2
    bug("B2", "suite/restore.py",
        'if isinstance(checkpoint.get("run"), int):',
        'if isinstance(checkpoint.get("run"), int) and not RUN_FILE.match(Path(path).name):',
        "the run a checkpoint holds is taken from its file name when it is called <N>.pt, so a renamed or "
        "moved copy reports (and files its figures under) another run"),

    # ---- 2. random streams are independent ----------------------------------------------------------
    # shown: snippet: labels of epoch 2's first batch with / without training-memory draws in epoch 1: equal -> different
    bug("B3", "suite/data.py",
        'self.generators["train_memory"], self.train_transform,',
        'self.generators["train_order"], self.train_transform,',
        "training memories are drawn from the batch-order generator, so a memory model's batch order "
        "depends on its memory draws (and std and memory runs of one seed see different batches)"),
    # shown: snippet: a memory draw (flip=True transform) after one unrelated global torch.rand(): unchanged -> changed
    bug("B4", "suite/data.py",
        "return self.transform(self.pool.images[chosen], self.generator), self.pool.labels[chosen]",
        "return self.transform(self.pool.images[chosen]), self.pool.labels[chosen]",
        "the flips of memory images are drawn from the global RNG instead of the sampler's own generator, "
        "so any other use of the global RNG changes the memories (on CIFAR10 / CINIC10)"),
    # shown: explanation_quality.py on the cell: Memory Wrap prediction non-repr. 1.8418 ± 0.0299 -> 1.8528 ± 0.0276
    bug("B5", "suite/journal/example_quality.py",
        "random = generator(restored.seed, RANDOM_STREAM, data.device)",
        "random = sampler.generator",
        "the Random ranking draws from the memory sampler's generator, so its draws shift the memories "
        "of every later test batch and change every method's example-quality numbers"),
    # shown: eval_dir.py --majority_vote: 'Accuracy 19.92' / '26.16' (train.py's numbers) -> '20.04' / '25.92'
    bug("B6", "suite/journal/majority_vote_eval.py",
        "auxiliary = data.memory_sampler(AUXILIARY_STREAM)",
        "auxiliary = sampler",
        "the auxiliary memory of the majority votes is drawn from the evaluation stream itself, so the "
        "model accuracy printed beside MVO / MVY is no longer the one train.py recorded"),
    # shown: counterfactual_quality.py --max_inputs=16 --max_iterations=3 --c_steps=1: Memory Wrap IM1 1.007 ± 0.001 -> 1.017 ± 0.006
    bug("B7", "suite/journal/counterfactual_quality.py",
        "data.memory_sampler(PROTOTYPE_STREAM).draw())",
        "sampler.draw())",
        "the memory used to label the prototypes is the first draw of the counterfactual memory stream, "
        "so every test batch then gets the next draw and Memory Wrap's counterfactuals change"),

    # ---- 3. a path means the same place on every executor -------------------------------------------
    # shown: snippet make_plan(config/ablation_memory.yaml): task models_dir '<tree>/models/ablation_memory' -> 'models/ablation_memory'
    bug("B8", "suite/grid.py",
        "config[key] = str(Path(config[key]).resolve())",
        "config[key] = str(Path(config[key]).expanduser())",
        "the plan keeps relative models_dir / dataset_dir, so a Slurm task or requeued task that starts in "
        "another directory writes and reads its runs somewhere else"),
    # shown: snippet make_plan(config/ablation_memory.yaml): task dataset_dir '<tree>/datasets' -> 'datasets' (models_dir still absolute)
    bug("B9", "suite/grid.py",
        'PATH_KEYS = ("models_dir", "dataset_dir")',
        'PATH_KEYS = ("models_dir",)',
        "dataset_dir is not pinned by the plan, so tasks started in another directory look for (and "
        "download) datasets in another folder"),
    # shown: grid.step_time_profiles() called with /tmp as working directory: 3 hardware profiles -> none
    bug("B10", "grid.py",
        'STEP_TIMES = Path(__file__).resolve().parent / "benchmarks" / "step_times.json"',
        'STEP_TIMES = Path("benchmarks") / "step_times.json"',
        "the step-time profiles are looked up relative to the current directory, so --dry_run from "
        "anywhere but the repository root prints no device-hour estimates"),

    # ---- 4. documented defaults ---------------------------------------------------------------------
    # shown: load_config of a file holding only 'dataset_name: DIGITS': eval_passes 5 -> 10
    bug("B11", "suite/config.py",
        '"eval_passes": (_int(1), 5),',
        '"eval_passes": (_int(1), 10),',
        "a config without eval_passes evaluates memory models with 10 passes, not the documented 5 "
        "(other numbers and times, other run records)"),
    # shown: generate_heatmaps.py --helpfull: --n_steps (default: '40') -> (default: '50')
    bug("B12", "suite/attribution/captum_methods.py",
        "n_steps: int = 40",
        "n_steps: int = 50",
        "Integrated Gradients uses captum's 50 steps by default instead of the original's documented 40, "
        "so the default heat maps change"),
    # shown: validation_size(load_config of 'dataset_name: SVHN'): 6000 -> 600
    bug("B13", "suite/datasets/svhn.py",
        "validation_size=6000",
        "validation_size=600",
        "SVHN holds out 600 validation images instead of the documented 6000, so every SVHN split (and "
        "so every subset and number) differs from the original's"),
    # shown: generate_memory_images.py --max_images=6: 'Saved 2 figures (6 test images) in .../run1' -> 'Saved 1 figures ... in .../run1_batch_size_test=500'
    bug("B14", "generate_memory_images.py",
        "define_common_flags(MEMORY_IMAGES_PER_FIGURE,",
        "define_common_flags(None,",
        "generate_memory_images.py's --batch_size_test defaults to the training config's 500 instead of "
        "the documented 3: one huge figure whose inputs all share one memory draw"),
    # shown: train.py std, 10 epochs of 2 steps, output not a terminal: 0 progress lines -> 2
    bug("B15", "train.py",
        'flags.DEFINE_integer("log_interval", 100,',
        'flags.DEFINE_integer("log_interval", 10,',
        "train.py prints a progress line every 10 steps instead of the documented 100"),

    # ---- 5. outputs never collide -------------------------------------------------------------------
    # shown: eval_dir.py --batch_size_test=100: 'Saved .../eval_dir_batch_size_test=100.json' -> 'Saved .../eval_dir.json'
    bug("B16", "suite/commands.py",
        '"passes": passes or results.trained["eval_passes"],\n            "batch_size_test": results.settings.config["batch_size_test"]}',
        '"passes": passes or results.trained["eval_passes"],\n            "batch_size_test": results.trained["batch_size_test"]}',
        "eval_dir.py (and --majority_vote) with a non-default --batch_size_test writes the default file "
        "name, overwriting the default evaluation's results"),
    # shown: explanation_accuracy.py --passes=1: 'Saved .../explanation_accuracy_subset_passes=1.json' -> '.../explanation_accuracy_subset.json'
    bug("B17", "suite/commands.py",
        '{"passes": passes, "batch_size_test": results.settings.config["batch_size_test"]},',
        '{"batch_size_test": results.settings.config["batch_size_test"]},',
        "explanation_accuracy.py with a non-default --passes writes the default file, overwriting the "
        "5-pass results"),
    # shown: generate_heatmaps.py --n_steps=2 --max_images=1: folder .../run1/integrated_gradients_n_steps=2 -> .../run1/integrated_gradients
    bug("B18", "suite/commands.py",
        "chosen.options | method_options | {",
        "chosen.options | {",
        "heat maps drawn with a non-default method option (--n_steps, --internal_batch_size, --n_samples) "
        "go to the default folder and replace the default figures"),
    # shown: result_name of counterfactual_options(l1_in_gradient=True): 'counterfactual_quality_l1_in_gradient=true' -> 'counterfactual_quality'
    bug("B19", "suite/journal/quality_commands.py",
        '"k", "l1_in_gradient")',
        '"k")',
        "counterfactual_quality.py --l1_in_gradient writes the default result files, overwriting the "
        "published-method results"),
    # shown: curve_file(DIGITS, vit, 300, 'memory_sampling=uniform' / '...=class_balanced'): two names -> 'DIGITS_vit_300.png' twice
    bug("B20", "suite/curves.py",
        'return f"{dataset}_{model}_{size}" + (f"@{tag}" if tag else "") + ".png"',
        'return f"{dataset}_{model}_{size}.png"',
        "the training curves of a sweep's combinations share one file name: the report keeps one figure "
        "per dataset, model and size and silently drops the others"),

    # ---- 6. what a report marks follows the printed numbers ----------------------------------------
    # shown: Summary(3, 50.0, 3.0, 43.874, 56.126): interval printed '43.87–56.13', contains(43.87) True -> False
    bug("B21", "suite/stats.py",
        "return printed(self.ci_low, digits) <= printed(value, digits) <= printed(self.ci_high, digits)",
        "return self.ci_low <= value <= self.ci_high",
        "whether the paper's number is inside our CI is decided on unrounded bounds, so a paper number "
        "printed equal to a bound is marked outside"),
    # shown: fake grid report, Std 3 runs, Memory Wrap missing: Std '82.00 ± 1.63' plain -> bold; best_of({'a': 50.0, 'b': None}, 2) set() -> {'a'}
    bug("B22", "suite/stats.py",
        "if len(shown) < 2:",
        "if not shown:",
        "a column with a single modality with results marks it best (bold) although nothing was compared"),
    # shown: fake grid report, Std 80.004 x3 / Memory Wrap 80.001 x3: table1.csv best column 1,0 -> 1,1
    bug("B23", "suite/report.py",
        "_number(summary.ci_low), _number(summary.ci_high), int(cell in best),",
        "_number(summary.ci_low), _number(summary.ci_high), int(st.best),",
        "the CSV's best column follows the Markdown's 2 decimals, not the CSV's own 4, so two means "
        "printed differently in the CSV are both marked best"),
    # shown: fake grid report with 2 of 3 Std runs: table1.md '(n=2/3; CI 68.29–93.71)' -> '(n=2; CI 68.29–93.71)'
    bug("B24", "suite/report.py",
        'summary.count_text(st.runs)}; CI "',
        'summary.count_text()}; CI "',
        "table1.md shows n=k for a cell with missing runs instead of n=k/runs, so an incomplete cell "
        "looks complete"),
    # shown: cell_text(Row(DIGITS, vit, 300, matching, accuracy, (80.0, 82.0), runs=3)): '(n=2/3; ...)' -> '(n=2; ...)'
    bug("B25", "suite/journal/comparison.py",
        "return summarize(row.values).text(row.runs)",
        "return summarize(row.values).text()",
        "the journal comparison table shows n=k instead of n=k/runs for cells with missing runs"),

    # ---- 7. every option reaches every step ---------------------------------------------------------
    # shown: build_scheduler (DIGITS.lr_schedule=cosine, 2 epochs, optimizer.min_lr=0.05): lr after 2 steps 0.05 -> 0.0
    bug("B26", "suite/recipe.py",
        'eta_min=options["min_lr"])',
        "eta_min=0.0)",
        "the cosine schedule ignores optimizer.min_lr and anneals to 0"),
    # shown: build_optimizer(adam, weight_decay 0.1).param_groups[0]['weight_decay']: 0.1 -> 0
    bug("B27", "suite/recipe.py",
        'lr=options["learning_rate"], weight_decay=options["weight_decay"],\n',
        'lr=options["learning_rate"],\n',
        "Adam (the ViT recipe) ignores optimizer.weight_decay"),
    # shown: snippet search_gradient with theta=100 and theta=1 (linear model and encoder): different gradients -> identical
    bug("B28", "suite/journal/cfproto.py",
        "loss = loss + options.theta * _squared_l2(encoder(y) - prototypes)",
        "loss = loss + _squared_l2(encoder(y) - prototypes)",
        "the prototype term of the counterfactual search ignores theta (--theta has no effect; the "
        "journal's theta = 100 is silently 1)"),
    # shown: counterfactual_quality.py --clip=0.001 (tiny search): JSON 'clip': 0.001 -> 1000.0, and ',clip=0.001' gone from the file name
    bug("B29", "counterfactual_quality.py",
        "learning_rate=FLAGS.learning_rate, clip=FLAGS.clip,",
        "learning_rate=FLAGS.learning_rate,",
        "counterfactual_quality.py --clip is ignored (the search always clips at 1000), and its results "
        "carry the default name"),
    # shown: generate_heatmaps.py --max_images=1, default then --n_steps=1: 2 distinct figures -> 2 byte-identical figures
    bug("B30", "suite/explain.py",
        "attribute(model, x, reduced, prediction, baselines, method, labels, **options)",
        "attribute(model, x, reduced, prediction, baselines, method, labels)",
        "the attribution options (--n_steps, --internal_batch_size, --n_samples) never reach the method: "
        "heat maps are always drawn with its defaults, under a folder name that says otherwise"),
    # shown: build_run_data(memory_sampling=class_balanced): evaluation sampler ClassBalanced -> Uniform (training still ClassBalanced)
    bug("B31", "suite/data.py",
        "generator(self.seed, stream, self.device), self.train_transform, self.memory_sampling)",
        "generator(self.seed, stream, self.device), self.train_transform)",
        "evaluation and explanation memories are always drawn uniformly, whatever memory_sampling the run "
        "was trained with (a class_balanced cell is evaluated with uniform memories)"),
    # shown: explanation_accuracy.py --memory_pool=full --passes=1: explanation accuracy 88.00 / 81.20 -> 86.40 / 61.00
    bug("B32", "suite/explain.py",
        "return whole, ORIGINAL_MEMORY_SIZE",
        "return whole, restored.settings.mem_examples",
        "--memory_pool=full draws the run's mem_examples memories instead of the original's 100"),

    # ---- other behaviours the docs promise ----------------------------------------------------------
    # shown: load_config('config/vit.yaml', ['optimizer={learning_rate: 0.05}']): adam, warmup_epochs 5 -> sgd, warmup_epochs 0
    bug("B33", "suite/config.py",
        "(len(parts) > 1 or head in SECTIONS",
        "(len(parts) > 1",
        "--set optimizer={...} or model_options={...} replaces the section instead of merging into it: "
        "the config file's other keys fall back to the defaults (the ViT recipe's Adam becomes SGD)"),
    # shown: train.py --config=config/quickstart.yaml --set num_epoch=1: "did you mean 'DIGITS.num_epochs'?" -> "... 'SVHN.num_epochs'?"
    bug("B34", "suite/config.py",
        '_unknown_top_level(key, dataset_names, raw.get("dataset_name", DEFAULT_DATASET))',
        '_unknown_top_level(key, dataset_names, DEFAULT_DATASET)',
        "a mistyped --set key is corrected to the default dataset's section (SVHN.num_epochs) instead of "
        "the config's dataset's"),
    # shown: load_grid('config/ablation_memory.yaml').cells(): 21 cells (1 std) -> 25 cells (5 std)
    bug("B35", "suite/config.py",
        'key.rsplit(".", 1)[-1] not in MEMORY_KEYS',
        "key not in MEMORY_KEYS",
        "a sweep of a dataset's mem_examples (DIGITS.mem_examples) makes a Std cell per value: the same "
        "runs trained again and again"),
    # shown: train.py --log_interval=1, 300 images (2 steps per epoch): 'step 1/2 | loss 2.4767' -> 'step 1/2 | loss 1.2384'
    bug("B36", "suite/training.py",
        "loss {float(loss_sum) / step:.4f}",
        "loss {float(loss_sum) / steps:.4f}",
        "progress lines divide the epoch's loss so far by all its steps, so mid-epoch losses are too small"),
    # shown: train.py --set train_examples=5000 on DIGITS: 1.json train_subset_size 1197 -> 5000
    bug("B37", "suite/training.py",
        '"train_subset_size": len(state.data.train),',
        '"train_subset_size": settings.train_examples,',
        "a training size above the split records the asked size, not the real one, so the report's "
        "'full (N)' column label is lost"),
    # shown: train.py --overwrite with model option 'dropuot' on the trained cell: refused, 6 files kept -> '--overwrite: deleted 6 file(s)', then refused
    bug("B38", "suite/training.py",
        "prepared = preflight(settings, todo[0], device) if todo else None",
        "prepared = preflight(settings, todo[0], device) if todo and not overwrite else None",
        "--overwrite deletes the cell's results before the model options, dataset and memory size are "
        "checked: a typo beside --overwrite loses every earlier run"),
    # shown: run_seconds(DIGITS, train_examples=100000, 1 epoch, 1 s per step): 5.05 s -> 5.61 s
    bug("B39", "suite/estimate.py",
        "subset = min(settings.train_examples, train_split - validation_size(settings.config))",
        "subset = min(settings.train_examples, train_split)",
        "device-hour estimates of whole-split cells count the validation hold-out as training images"),
    # shown: resumed_history(rows of epochs 1..3, epochs_done=3): 3 rows -> 2 rows
    bug("B40", "suite/run_files.py",
        'return [row for row in rows if row["epoch"] <= epochs_done]',
        'return [row for row in rows if row["epoch"] < epochs_done]',
        "after a kill and a resume the metrics CSV loses the last finished epoch's row"),
    # shown: train_autoencoders.py --epochs=1 --overwrite: 'Run:1 | full | 1197 training images' -> '300 training images'
    bug("B41", "suite/journal/autoencoders.py",
        "split = training_subset(restored.settings.config, restored.seed, data.device, WHOLE_SPLIT)",
        "split = data.train",
        "the autoencoders learn the run's training subset instead of the whole training split (the "
        "journal's data), while their files say they saw the whole split"),
    # shown: summarize([80.0, 82.0, 84.0]).ci_low: 77.03 -> 77.94
    bug("B42", "suite/stats.py",
        "standard_error = std / math.sqrt(len(defined) - 1)",
        "standard_error = std / math.sqrt(len(defined))",
        "confidence intervals use the population std over sqrt(n): too narrow, and every inside/outside "
        "mark and interval in every report changes"),
    # shown: holm([0.01, 0.02, 0.03]): [0.03, 0.04, 0.04] -> [0.03, 0.06, 0.09]
    bug("B43", "suite/stats.py",
        "running = max(running, min(1.0, (len(ranked) - rank) * p))",
        "running = max(running, min(1.0, len(ranked) * p))",
        "the report's 'Holm-corrected' p-values are Bonferroni's: too large"),
    # shown: memory_counterfactuals(weights [[1, 0]], memory predictions [0, 1], prediction [0]): [-1] -> [1]
    bug("B44", "suite/journal/counterfactual_quality.py",
        "eligible = (weights > 0) & (memory_predictions.unsqueeze(0) != predictions.unsqueeze(1))",
        "eligible = (weights >= 0) & (memory_predictions.unsqueeze(0) != predictions.unsqueeze(1))",
        "Memory Wrap's counterfactual may be a memory sample of weight 0 (one the model did not use)"),
    # shown: majority_class(weights [[1, 0, 0]], memory classes [0, 1, 1], 2 classes): [0] -> [1]
    bug("B45", "suite/journal/majority_vote.py",
        "voters = (weights > 0).long()",
        "voters = (weights >= 0).long()",
        "every memory sample votes in MVO / MVY, not only those of positive weight"),
]


# Test files tried first (speed only: a bug they miss still meets the whole suite).
_LIKELY = {'suite/restore.py': ('tests/test_checkpoint_identity.py', 'tests/test_eval_scripts.py'), 'suite/data.py': ('tests/test_streams.py', 'tests/test_datasets.py', 'tests/test_sampling.py'), 'suite/journal/example_quality.py': ('tests/test_streams.py', 'tests/test_explanation_quality.py'), 'suite/journal/majority_vote_eval.py': ('tests/test_journal_baselines.py', 'tests/test_streams.py'), 'suite/journal/counterfactual_quality.py': ('tests/test_streams.py', 'tests/test_explanation_quality.py', 'tests/test_counterfactual_metrics.py'), 'suite/grid.py': ('tests/test_grid_paths.py', 'tests/test_grid.py', 'tests/test_first_hour.py'), 'grid.py': ('tests/test_grid_paths.py', 'tests/test_first_hour.py', 'tests/test_grid.py'), 'suite/config.py': ('tests/test_config.py', 'tests/test_first_hour.py'), 'suite/attribution/captum_methods.py': ('tests/test_options.py', 'tests/test_explanations.py'), 'suite/datasets/svhn.py': ('tests/test_config.py', 'tests/test_datasets.py'), 'generate_memory_images.py': ('tests/test_explanations.py', 'tests/test_result_files.py'), 'train.py': ('tests/test_training.py', 'tests/test_first_hour.py'), 'suite/commands.py': ('tests/test_result_files.py', 'tests/test_first_hour.py', 'tests/test_eval_scripts.py'), 'suite/journal/quality_commands.py': ('tests/test_result_files.py', 'tests/test_explanation_quality.py'), 'suite/curves.py': ('tests/test_first_hour.py', 'tests/test_grid.py'), 'suite/stats.py': ('tests/test_stats.py', 'tests/test_report_marks.py'), 'suite/report.py': ('tests/test_report_marks.py', 'tests/test_grid.py'), 'suite/journal/comparison.py': ('tests/test_report_marks.py', 'tests/test_journal_baselines.py'), 'suite/recipe.py': ('tests/test_options.py', 'tests/test_training.py'), 'suite/journal/cfproto.py': ('tests/test_options.py', 'tests/test_counterfactual_metrics.py'), 'counterfactual_quality.py': ('tests/test_options.py', 'tests/test_explanation_quality.py'), 'suite/explain.py': ('tests/test_options.py', 'tests/test_explanations.py'), 'suite/training.py': ('tests/test_training.py', 'tests/test_first_hour.py'), 'suite/estimate.py': ('tests/test_estimate.py',), 'suite/run_files.py': ('tests/test_run_files.py',), 'suite/journal/autoencoders.py': ('tests/test_explanation_quality.py',), 'suite/journal/majority_vote.py': ('tests/test_journal_baselines.py',)}
BUGS = [Bug(b.name, b.file, b.replacements, b.description, _LIKELY.get(b.file, ())) for b in BUGS]
