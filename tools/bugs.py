"""The planted bugs of tools/plant_bugs.py: plausible slips, each of which changes a number or a file
that a user of the suite relies on. Each is (file, exact original text, mutated text, what it
breaks, the test files most likely to catch it); a bug may need more than one replacement (a draw
moved out of a loop), and `occurrence` picks which copy of a repeated text is replaced.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Replacement:
    original: str
    mutated: str
    occurrence: int = 1  # 1-based: which occurrence of `original` in the file


@dataclass(frozen=True)
class Bug:
    name: str
    file: str
    replacements: tuple[Replacement, ...]
    description: str
    likely: tuple[str, ...] = field(default=())  # test files tried first


def bug(name: str, file: str, original: str, mutated: str, description: str, *likely: str,
        occurrence: int = 1) -> Bug:
    return Bug(name, file, (Replacement(original, mutated, occurrence),), description, likely)


SCIENCE = "tests/test_science.py"
EVAL = "tests/test_eval_scripts.py"
EXPL = "tests/test_explanations.py"
DATA = "tests/test_datasets.py"
TRAIN = "tests/test_training.py"
GRID = "tests/test_grid.py"
HEADS = "tests/test_journal_heads.py"
LAYER = "tests/test_memory_layer.py"
FILES = "tests/test_run_files.py"
BASELINES = "tests/test_journal_baselines.py"
CF = "tests/test_counterfactual_metrics.py"
SAMPLING = "tests/test_sampling.py"
QUALITY = "tests/test_explanation_quality.py"
STREAMS = "tests/test_streams.py"

BUGS: list[Bug] = [
    # ---- architectures -------------------------------------------------------------------------
    bug("A1", "architectures/memory.py", "return sparsemax(similarity, dim=1)", "return torch.softmax(similarity, dim=1)",
        "dense softmax attention instead of sparsemax", LAYER),
    bug("A2", "architectures/memory.py", "torch.cat([encoder_output, memory_vector], dim=1)",
        "torch.cat([memory_vector, encoder_output], dim=1)", "Memory Wrap MLP input in the wrong order", LAYER),
    bug("A3", "architectures/base.py", "return_weights=return_weights, memory_labels=memory_labels)",
        "return_weights=return_weights, memory_labels=memory_labels.roll(1))",
        "label-reading heads get the memory labels shifted by one sample", HEADS, BASELINES),
    bug("A4", "architectures/matching.py", "attention = torch.softmax(h @ support.t(), dim=1)",
        "attention = torch.softmax(h @ support.t(), dim=0)", "Matching Networks FCE attention normalised over queries",
        HEADS),
    bug("A5", "architectures/matching.py", "h_hat, cell = self.f(queries, (h + readout, cell))",
        "h_hat, cell = self.f(queries, (h, cell))", "Matching Networks query FCE ignores its read-out", HEADS),
    bug("A6", "architectures/protonet.py", "present = counts > 0", "present = counts >= 0",
        "ProtoNet scores classes absent from the support (cosine 0 instead of -inf)", HEADS, BASELINES),
    bug("A7", "architectures/protonet.py", "per_sample = probabilities[:, labels] / counts[labels].clamp(min=1)",
        "per_sample = probabilities[:, labels]", "ProtoNet sample weights not shared within a class", HEADS),
    # ---- data -----------------------------------------------------------------------------------
    bug("D1", "suite/data.py", "device=images.device) < 0.5", "device=images.device) < 0.25",
        "horizontal flips with probability 1/4", DATA),
    bug("D2", "suite/sampling/uniform.py",
        "return torch.randperm(self.count, generator=generator, device=self.device)[: self.size]",
        "return torch.randint(self.count, (self.size,), generator=generator, device=self.device)",
        "memories drawn with replacement (uniform strategy)", DATA, SAMPLING),
    bug("D3", "suite/data.py", "return n // batch_size if drop_last else math.ceil(n / batch_size)",
        "return math.ceil(n / batch_size)", "drop_last ignored (a short last training batch)", DATA, SCIENCE),
    bug("D4", "suite/datasets/cinic10.py", "shuffle_test=True", "shuffle_test=False",
        "CINIC10 test batches not shuffled (memory models share draws with other images)", DATA),
    bug("D5", "suite/datasets/cifar10.py", "(0.2023, 0.1994, 0.2010)", "(0.2470, 0.2435, 0.2616)",
        "CIFAR10 normalised with the other well-known std", DATA, EXPL),
    bug("D6", "suite/data.py",
        'return MemorySampler(self.train, self.mem_examples, self.generators["train_memory"], self.train_transform,',
        'return MemorySampler(self.test, self.mem_examples, self.generators["train_memory"], self.train_transform,',
        "training memories drawn from the test set", SCIENCE, DATA),
    bug("D7", "suite/data.py", "return self.test_transform(self.test.images[positions])",
        "return self.train_transform(self.test.images[positions])", "test images flipped at random (training transform)",
        SCIENCE, DATA),
    bug("D8", "suite/data.py", "generator=torch.Generator().manual_seed(seed))",
        "generator=torch.Generator().manual_seed(seed + 1))", "training subset kept with another seed than the original",
        DATA, occurrence=2),
    bug("D9", "suite/data.py",
        'MemorySampler(self.train, self.mem_examples, self.generators["train_memory"], self.train_transform,',
        'MemorySampler(self.train, self.mem_examples, self.generators["train_memory"], self.test_transform,',
        "training memories never flipped (test transform)", SCIENCE, DATA),
    bug("D10", "suite/data.py", "generator(self.seed, stream, self.device), self.train_transform, self.memory_sampling)",
        "generator(self.seed, stream, self.device), self.test_transform, self.memory_sampling)",
        "evaluation and explanation memories without the training transform", SCIENCE, DATA),
    bug("D11", "suite/data.py", "size or self.mem_examples,", "self.mem_examples,",
        "explanation_accuracy --memory_pool=full draws mem_examples instead of 100 memories", EXPL, SCIENCE),
    bug("D12", "suite/data.py",
        'order = torch.randperm(len(self.train), generator=self.generators["train_order"], device=self.device)',
        "order = torch.arange(len(self.train), device=self.device)", "training batches in the same order every epoch",
        DATA),
    # ---- training -------------------------------------------------------------------------------
    bug("T9", "suite/training.py", "        optimizer.zero_grad(set_to_none=True)\n", "",
        "gradients never zeroed (they accumulate over the epoch)", SCIENCE, TRAIN),
    bug("T10", "suite/training.py", '"accuracy": evaluation.accuracy, "config": settings.config,',
        '"accuracy": evaluation.pass_accuracies[0], "config": settings.config,',
        "checkpoint <run>.pt stores the first pass's accuracy, not the mean", TRAIN, EVAL),
    bug("T1", "suite/training.py", "        state.scheduler.step()\n", "", "learning-rate scheduler never stepped",
        SCIENCE, TRAIN),
    Bug("T2", "suite/training.py", (
        Replacement("    memory = data.training_memory() if model.uses_memory else None\n",
                    "    memory = data.training_memory() if model.uses_memory else None\n"
                    "    drawn = memory.draw() if memory is not None else (None, None)\n"),
        Replacement("memory_images, memory_labels = memory.draw() if memory is not None else (None, None)",
                    "memory_images, memory_labels = drawn")),
        "one memory draw per epoch instead of one per training batch", (SCIENCE, TRAIN)),
    bug("T3", "suite/training.py", "    model.train()\n", "",
        "train_epoch leaves the mode as found (eval after an eval_every evaluation)", SCIENCE, FILES),
    bug("T4", "suite/training.py", "stats = EpochStats(epoch + 1, learning_rate, loss,",
        'stats = EpochStats(epoch + 1, state.optimizer.param_groups[0]["lr"], loss,',
        "metrics CSV logs the next epoch's learning rate", SCIENCE, FILES),
    bug("T5", "suite/training.py", "100.0 * int(correct) / max(seen, 1), seconds)",
        "100.0 * int(correct) / max(steps, 1), seconds)", "training accuracy divided by the step count", SCIENCE, FILES),
    bug("T6", "suite/training.py", '        self.scheduler.load_state_dict(state["scheduler"])\n', "",
        "resume forgets the scheduler (lr restarts from the base)", TRAIN, FILES),
    bug("T7", "suite/training.py", '        self.data.load_state_dict(state["data"])\n', "",
        "resume restarts the batch-order, flip and memory streams", TRAIN, FILES),
    bug("T8", "suite/recipe.py", 'nesterov=options["nesterov"]', "nesterov=False", "Nesterov momentum dropped", TRAIN),
    # ---- evaluation -----------------------------------------------------------------------------
    bug("E1", "suite/evaluation.py", "        correct += (logits.argmax(dim=1) == targets).sum()",
        "        correct = (logits.argmax(dim=1) == targets).sum()",
        "memory-model accuracy counts the last test batch only", SCIENCE, EVAL),
    bug("E2", "suite/evaluation.py", "return float(loss_sum), 100.0 * int(correct) / len(data.test)",
        "return float(loss_sum), 100.0 * int(correct) / (data.test_batches_count * data.batch_size_test)",
        "std accuracy divided by batches x batch size (wrong with a partial last batch)", SCIENCE, EVAL, occurrence=2),
    bug("E3", "suite/evaluation.py", "    sampler = data.memory_sampler(EVALUATION_MEMORY)\n",
        "    sampler = data.memory_sampler(EVALUATION_MEMORY, pool=data.test)\n",
        "test-time memories drawn from the test set", SCIENCE, EVAL),
    bug("E4", "suite/evaluation.py", "    model.eval()\n", "", "std evaluation in train mode (BatchNorm updated by test data)",
        SCIENCE, EVAL, occurrence=3),
    bug("E5", "suite/evaluation.py", "results[-1][0], accuracies)", "results[0][0], accuracies)",
        "recorded loss of the first pass instead of the last", SCIENCE, EVAL),
    Bug("E6", "suite/evaluation.py", (
        Replacement('    for positions in track(data.test_index_batches(order), "evaluating", total=data.test_batches_count):\n'
                    "        memory, memory_labels = sampler.draw()\n",
                    "    drawn = sampler.draw()\n"
                    '    for positions in track(data.test_index_batches(order), "evaluating", total=data.test_batches_count):\n'
                    "        memory, memory_labels = drawn\n"),),
        "one evaluation memory per pass instead of per test batch", (SCIENCE, EVAL)),
    bug("E7", "suite/evaluation.py", "        loss_sum += criterion(logits, targets).float()",
        "        loss_sum = criterion(logits, targets).float()", "std loss of the last batch only", SCIENCE, EVAL,
        occurrence=2),
    bug("E8", "suite/evaluation.py", "for _ in range(passes)]", "for _ in range(min(passes, 1))]",
        "memory models evaluated with one pass whatever eval_passes says", SCIENCE, EVAL),
    # ---- explanations ---------------------------------------------------------------------------
    bug("X1", "suite/explain.py", "memory_batch(model, features[positions], drawn, auxiliary.draw(), with_hidden)",
        "memory_batch(model, features[positions], drawn, drawn, with_hidden)",
        "explanation accuracy (and every loop of explain.memory_batches) classifies the memory with itself as "
        "auxiliary memory", SCIENCE, EXPL),
    bug("X2", "suite/explain.py", "top = weights.argmax(dim=1)", "top = weights.argmin(dim=1)",
        "explanation taken from the lowest-weight memory sample", EXPL),
    bug("X3", "suite/explain.py", "keep = sorted_weights > 0", "keep = sorted_weights >= 0",
        "heat-map memories include zero-weight samples", EXPL),
    bug("X4", "suite/commands.py", "torch.sort(row, descending=True, stable=True)",
        "torch.sort(row, descending=False, stable=True)", "memory-image figure shows memories in ascending weight",
        EXPL),
    bug("X5", "suite/commands.py", "memory[order_in_row[ordered_weights > 0]]", "memory[order_in_row[ordered_weights >= 0]]",
        "memory-image figure shows zero-weight memories", EXPL),
    Bug("X6", "suite/explain.py", (
        Replacement("                    memory = sampler.draw()\n                    auxiliary = sampler.draw()\n",
                    "                    auxiliary = sampler.draw()\n                    memory = sampler.draw()\n"),),
        "heat maps draw A before M (other memories than documented)", (SCIENCE, EXPL)),
    bug("X7", "suite/explain.py", "attribute(model, x, reduced, prediction, baselines, method, labels, **options)",
        "attribute(model, x, reduced, label if label >= 0 else prediction, baselines, method, labels, **options)",
        "heat maps attribute the true label's logit instead of the prediction's", EXPL),
    # ---- checkpoints, records, locks ------------------------------------------------------------
    # deleted: R1 (a former results.jsonl line winning over a run's record): results.jsonl reading was removed
    bug("R2", "suite/run_files.py", "            return not alive", "            return alive",
        "a live owner's lock is broken, a dead one's kept", FILES),
    bug("R3", "suite/run_files.py", "return age is not None and age > stale_after",
        "return age is not None and age < stale_after", "another node's fresh lock taken as stale", FILES),
    bug("R4", "suite/training.py", "        state_file.unlink(missing_ok=True)\n        return RunResult",
        "        return RunResult", "resume file left behind after the record", TRAIN, FILES),
    bug("R5", "suite/training.py", "changed = settings_difference(saved, settings.comparable_json())", "changed = []",
        "resuming with other settings accepted", TRAIN),
    bug("R6", "suite/restore.py", "return run_seed(int(match.group(1)))", "return int(match.group(1))",
        "original-suite checkpoint k.pt evaluated with seed k instead of k - 1", EVAL),
    bug("R7", "suite/run_files.py",
        'atomic_write_bytes(path, (json.dumps(record, sort_keys=True, indent=1) + "\\n").encode())',
        'path.write_bytes((json.dumps(record, sort_keys=True, indent=1) + "\\n").encode())',
        "run records written in place (half a record after a kill)", FILES, TRAIN),
    bug("R8", "suite/restore.py", "    model.to(device).eval()\n", "    model.to(device)\n",
        "restored models left in train mode (memory-image figures run BatchNorm on test batches)", EVAL, EXPL),
    bug("R9", "suite/run_files.py", "os.write(handle, json.dumps(asdict(owner)).encode())", "os.write(handle, b'{}')",
        "lock files written without their owner", FILES),
    bug("X8", "suite/attribution/__init__.py", "for _module in _pkgutil.iter_modules(__path__):",
        "for _module in [m for m in _pkgutil.iter_modules(__path__) if m.name == \"captum_methods\"]:",
        "an attribution method added as a new file is never imported (only the built-ins)", "tests/test_extensions.py"),
    bug("J9", "suite/journal/autoencoders.py",
        "split = training_subset(restored.settings.config, restored.seed, data.device, WHOLE_SPLIT)",
        "split = data.train", "autoencoders trained on the run's subset instead of the journal's whole split",
        "tests/test_explanation_quality.py"),
    bug("X9", "suite/explain.py", "            np.random.seed(derive_seed(restored.seed, \"heatmaps_attribution\") % 2**32)\n",
        "", "GradientSHAP heat maps drawn from an unseeded numpy RNG", EXPL),
    bug("D13", "suite/datasets/cinic10.py", "            self._decoded[missing] = True\n", "",
        "CINIC10 images decoded again at every gather", "tests/test_datasets.py"),
    bug("C1", "suite/recipe.py", "device.index >= torch.cuda.device_count()", "device.index > torch.cuda.device_count()",
        "cuda:N one past the last GPU accepted", "tests/test_config.py"),
    # ---- grid and statistics --------------------------------------------------------------------
    bug("G5", "suite/grid.py", "f\"worker {index}: pid {os.getpid()}", "f\"worker {index}: pid {os.getppid()}",
        "a grid worker announces the grid's pid as its own", GRID),
    bug("G1", "suite/grid.py", "if task.run in finished:", "if task.run - 1 in finished:",
        "grid plan matches records by 0-based index", GRID),
    bug("G2", "suite/grid.py", "if (cell, task.run) in resume_files:", "if (cell, task.run - 1) in resume_files:",
        "grid plan reports the wrong runs as resumable", GRID),
    bug("G3", "suite/grid.py", "if 1 <= run <= grid.runs and record.get(\"settings\") != current:",
        "if 1 <= run < grid.runs and record.get(\"settings\") != current:",
        "grid accepts the last run's record of other settings as done", GRID),
    bug("G4", "suite/stats.py", "/ len(defined))", "/ max(len(defined) - 1, 1))",
        "sample std (ddof 1) instead of the original's population std", GRID, EXPL),
    # ---- journal pieces -------------------------------------------------------------------------
    bug("J1", "suite/journal/majority_vote.py", "winners = counts.argmax(dim=1)",
        "winners = num_classes - 1 - counts.flip(1).argmax(dim=1)", "majority-vote ties go to the largest class",
        HEADS, BASELINES),
    bug("J2", "suite/journal/majority_vote.py", "voters = (weights > 0).long()", "voters = (weights >= 0).long()",
        "every memory sample votes, weighted or not", HEADS, BASELINES),
    bug("J3", "suite/journal/majority_vote_eval.py", "auxiliary = data.memory_sampler(AUXILIARY_STREAM)",
        "auxiliary = data.memory_sampler(EVALUATION_MEMORY)",
        "majority vote classifies M with itself (A drawn from M's own stream: the same draws) (MVO)",
        SCIENCE, BASELINES),
    bug("J4", "suite/journal/interpretability.py", "/ (l1(x_cf) + eps)", "/ (squared_l2(x_cf) + eps)",
        "IM2 divided by the squared L2 norm instead of the L1 norm", CF),
    bug("J6", "suite/journal/interpretability.py", "return error_orig / (error_new + eps)",
        "return error_new / (error_orig + eps)", "IIM1 equal to IM1 instead of its inverse", CF),
    bug("J7", "suite/journal/example_quality.py",
        "memory = contributions(batch.memory_hidden, batch.memory_predictions, batch.output_weight)",
        "memory = contributions(batch.memory_hidden, batch.predictions[:1].expand_as(batch.memory_predictions), "
        "batch.output_weight)", "CHP weighs memory samples by the first input's class, not their own", QUALITY),
    bug("J8", "suite/journal/cfproto.py", "return torch.clamp(orig - others.max(dim=1).values, min=-kappa)",
        "return torch.clamp(orig - others.max(dim=1).values, max=-kappa)",
        "prototype search's prediction term clamped from above instead of below", CF),
    bug("J5", "suite/journal/counterfactual_quality.py", "eligible = (weights > 0) &", "eligible = (weights >= 0) &",
        "Memory Wrap counterfactual may be a zero-weight memory sample", QUALITY),
    # ---- issue 17: the behaviours an outside review's bugs went through -------------------------
    bug("O1", "suite/curves.py", "if row.get(column) is not None:", "if row.get(column):",
        "training curves drop an epoch whose value is exactly 0 (the ViT recipe's first warm-up lr)", GRID, FILES),
    bug("O2", "suite/data.py",
        'test_transform=batch_transform(spec, device, False, config["normalization"], channels_last=channels_last),',
        "test_transform=batch_transform(spec, device, False, channels_last=channels_last),",
        "the test transform ignores `normalization` (ViT runs tested with the paper's normalisation)",
        DATA, "tests/test_vit_recipe.py", EXPL),
    bug("O3", "suite/training.py", "seen += targets.shape[0]", "seen += data.batch_size_train",
        "training accuracy over full batches when the last training batch is short", TRAIN),
    bug("O4", "suite/journal/majority_vote_eval.py", "self.mvy_ties += ties(weights, memory_labels, num_classes)",
        "self.mvy_ties += ties(weights, memory_predictions, num_classes)",
        "MVY's ties counted from the memory's predictions (MVO's votes), not its labels", HEADS, BASELINES),
    bug("O5", "suite/journal/counterfactual_quality.py",
        "means = {name: (sum(r[name] for r in found) / len(found) if found else None) for name in SCORES}",
        "means = {name: (sum(r[name] for r in found) / len(rows) if found else None) for name in SCORES}",
        "counterfactual score means over every input, not over the counterfactuals found", QUALITY, CF),
    bug("O6", "suite/explain.py", "memory_logits = model.classify(memory_features, auxiliary_features, aux_labels)",
        "memory_logits = model.classify(memory_features, auxiliary_features, labels)",
        "label-reading heads classify the memory with A's encodings but M's labels", EXPL, HEADS),
    bug("O7", "suite/run_files.py", "return current is not None and current.token == self.owner.token",
        "return current is not None and current.pid == self.owner.pid",
        "a lock is owned by its pid: another host's process with the same pid owns it", FILES),
    bug("O8", "suite/data.py", 'digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()',
        'digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()',
        "every random stream's seed derived otherwise (checkpoints get other evaluation draws)", TRAIN, EXPL),
    # ---- issue 26, class 2: every random stream of a run is independent ------------------------
    bug("S1", "suite/data.py",
        'yield (self.train_transform(self.train.images[chosen], self.generators["train_flips"]),',
        'yield (self.train_transform(self.train.images[chosen], self.generators["train_order"]),',
        "training flips drawn from the batch-order generator (the flip stream unused)", STREAMS),
    bug("S2", "suite/journal/counterfactual_quality.py", "data.memory_sampler(PROTOTYPE_STREAM).draw())",
        "data.memory_sampler(MEMORY_STREAM).draw())",
        "the prototypes' memory seeded with the counterfactual memory's stream name (the first M drawn twice)",
        STREAMS, QUALITY),
    bug("S3", "suite/explain.py",
        'order = generator(restored.seed, "heatmaps_order", data.device) if data.spec.shuffle_test else None',
        "order = sampler.generator if data.spec.shuffle_test else None",
        "heat maps' test order drawn from the heat maps' memory generator", STREAMS, EXPL),
    bug("S4", "suite/journal/autoencoders.py", 'generator(seed, f"autoencoder_order_{name}", device)',
        'generator(seed, "autoencoder_order_full", device)',
        "every autoencoder's batch order from one stream (the full autoencoder's)", STREAMS, QUALITY),
    bug("S5", "suite/commands.py", "            memory, memory_labels = sampler.draw()\n",
        '            memory, memory_labels = data.memory_sampler("memory_images").draw()\n',
        "memory-image figures make their sampler again per figure (every figure gets the same memory)",
        STREAMS, EXPL),
    bug("S6", "suite/data.py",
        "return self.transform(self.pool.images[chosen], self.generator), self.pool.labels[chosen]",
        "return self.transform(self.pool.images[chosen]), self.pool.labels[chosen]",
        "memories flipped (and AutoAugmented) from the global RNG, not from their stream", STREAMS, SCIENCE),
    bug("S7", "suite/journal/example_quality.py", "random = generator(restored.seed, RANDOM_STREAM, data.device)",
        "random = sampler.generator", "the Random ranker draws from the example memory's generator",
        STREAMS, QUALITY),
    bug("S8", "suite/explain.py", 'torch.manual_seed(derive_seed(restored.seed, "heatmaps_attribution"))',
        'torch.manual_seed(derive_seed(restored.seed, "heatmaps"))',
        "heat maps' attribution noise seeded with the heat maps' memory stream name (one sequence for both)",
        STREAMS, EXPL),
    bug("S9", "suite/sampling/class_balanced.py",
        "keys = torch.rand(len(self.labels), generator=generator, device=self.device)",
        "keys = torch.rand(len(self.labels), device=self.device)",
        "class_balanced picks the images of a class with the global RNG, not the memory's stream", STREAMS, SAMPLING),
]
