"""Every run of docs/results.md as data: what `make results` trains and analyses, and what
`experiments.results` collects.

A run is trained by `python -m experiments.train --workdir=RUNS/<group>/<name> --config=<config>
<overrides...>` and, where `analysed`, studied by `python -m experiments.metamers --posthoc`
(with the oracle classifier of `ORACLE` where `oracle`). Its group is the folder under RUNS and
the results file `experiments.collect.GROUPS` makes of it; groups that give no results file are in
`UNCOLLECTED`. A lane is a named part of the grid that `make results LANES=...` runs alone.

A new experiment is one line in its lane of `RUNS`: (group/name, config, overrides[, ANALYSED or
WITH_ORACLE]); a new group also needs its row function in `experiments.collect.GROUPS` (or a reason
in `UNCOLLECTED`), which tests/test_grid.py checks. The overrides are written as the commands recorded in each run
folder spell them: results/*.json quote those commands, so changing a string changes the results.
"""

import dataclasses
import pathlib


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of the grid and, where `analysed`, its metamer analysis."""
  lane: str
  group: str
  name: str
  config: str
  overrides: tuple[str, ...] = ()
  analysed: bool = False
  oracle: bool = False

  @property
  def path(self) -> str:
    """The run folder relative to RUNS: `<group>/<name>`."""
    return f"{self.group}/{self.name}"


# Textured shiftMNIST as SPEC 7 had it (the default before issue 16): half contrast, crops of all
# texture images, test crops from other images than the train crops.
SPEC7_TEXTURED = ("--config.variant=textured", "--config.dataset_options.texture_max=128",
                  "--config.dataset_options.texture_images=disjoint",
                  "--config.dataset_options.texture_images_per_class=0")
# The textured feature as a stronger shortcut: whole 32x32 texture images at full contrast.
SHORTCUT = (*SPEC7_TEXTURED, "--config.dataset_options.texture_max=255", "--config.dataset_options.texture_size=32")
# Textured shiftMNIST as a shortcut CE takes (issue 16): full contrast.
TEXTURED = (*SPEC7_TEXTURED, "--config.dataset_options.texture_max=255")
# Twice the :cpu budget, the learning rate decayed after epoch 5.
SIX_EPOCHS = ("--config.total_steps=5622", "--config.optimizer.decay_epochs=(5,)")
# The paper's model at its batch of 128: six epochs are 2808 steps.
FULL_SIX_EPOCHS = ("--config.total_steps=2808", "--config.optimizer.decay_epochs=(5,)")
# No dropout in the coupling networks: in training the flow then sees the z_n of evaluation, up to the
# dequantisation noise (without which the likelihood term diverges on the constant border pixels).
NO_DROPOUT = ("--config.model.dropout=0.0",)
BINARY = ("--config.variant=binary",)
# Textured shiftMNIST as configs/shift_mnist.py has it now (shift_mnist.TEXTURE_DEFAULTS), with
# bfloat16 operands as results/shift_mnist.json's textured rows were trained (issue 27).
TEXTURED_DEFAULT = ("--config.model.compute_dtype=bfloat16", "--config.variant=textured")


def selection_every(steps: int) -> tuple[str, ...]:
  """Shift-blind model selection (docs/selection.md): 5,000 training examples held out; every
  `steps` steps the held-out logit error and a fresh nuisance classifier's held-out cross-entropy
  on z_n pick the kept checkpoint."""
  return ("--config.selection.holdout_examples=5000", f"--config.selection.every_steps={steps}",
          "--config.selection.logit_error_tolerance=0.5", f"--config.checkpoint_every_steps={steps}",
          "--config.keep_checkpoints=30")


SELECT = selection_every(215)  # a quarter epoch at batch 64
FULL_SELECT = selection_every(117)  # a quarter epoch at batch 128

_CE, _ICE, _CNN = "configs/shift_mnist_ce.py:cpu", "configs/shift_mnist_ice.py:cpu", "configs/shift_mnist_cnn.py:cpu"
_MNIST_CE, _MNIST_ICE = "configs/mnist_ce.py:cpu", "configs/mnist_ice.py:cpu"


def _lane(lane: str, *runs: tuple) -> tuple[Run, ...]:
  """Runs of one lane from (path, config, overrides[, analysed[, oracle]]) tuples."""
  made = []
  for path, config, overrides, *analysis in runs:
    group, name = path.split("/")
    made.append(Run(lane, group, name, config, tuple(overrides), *analysis))
  return tuple(made)


ANALYSED, WITH_ORACLE = (True,), (True, True)

ORACLE = Run("oracle", "oracle", "mnist_cnn", "configs/mnist_cnn.py:cpu")
"""The independent CNN that judges MNIST metamers; every lane's analyses with `oracle` need it."""

RUNS = (ORACLE,) + _lane(
    "ce",
    ("mnist/ce", _MNIST_CE, (), *WITH_ORACLE),
    ("shift_mnist/binary_ce", _CE, BINARY),
    ("shift_mnist/textured_ce", _CE, TEXTURED_DEFAULT),
    ("shift_mnist/textured_authors", "configs/shift_mnist_authors.py:cpu", TEXTURED_DEFAULT),
    ("ablation/binary_paper_0.1", _ICE,
     (*BINARY, "--config.loss.nuisance_form=paper", "--config.loss.nuisance_weight=0.1")),
    ("ablation/textured_255_ce", _CE, (*SPEC7_TEXTURED, "--config.dataset_options.texture_max=255")),
    ("ablation/textured_255_ice", _ICE, (*SPEC7_TEXTURED, "--config.dataset_options.texture_max=255")),
    ("ablation/binary_shuffled_3", _ICE, (*BINARY, "--config.loss.nuisance_weight=3.0")),
    ("ablation/binary_shuffled_2", _ICE, (*BINARY, "--config.loss.nuisance_weight=2.0")),
    ("ablation/textured_shared_32_255_ce", _CE, (*SHORTCUT, "--config.dataset_options.texture_images=shared")),
    ("ablation/textured_shared_32_255_ice_1.5", _ICE,
     (*SHORTCUT, "--config.dataset_options.texture_images=shared", "--config.loss.nuisance_weight=1.5")),
    ("ablation/textured_disjoint_32_255_ce", _CE, SHORTCUT),
    ("mnist_ablation/ice_mle_0", _MNIST_ICE, ("--config.loss.mle_weight=0.0",), *WITH_ORACLE),
    ("ablation/binary_shuffled_1_6_epochs", _ICE, (*BINARY, *SIX_EPOCHS), *ANALYSED),
    ("ablation/binary_ce_seed_1", _CE, (*BINARY, "--config.seed=1")),
    ("mnist_ablation/ice_reset_200", _MNIST_ICE, ("--config.nuisance_classifier.reset_every_steps=200",),
     *WITH_ORACLE),
    ("ablation/binary_ce_sd_0.1_6_epochs", _CE, (*BINARY, "--config.loss.logit_penalty_weight=0.1", *SIX_EPOCHS)),
    ("mnist_ablation/ice_6_epochs", _MNIST_ICE, SIX_EPOCHS, *WITH_ORACLE),
    ("ablation/binary_ce_6_epochs", _CE, (*BINARY, *SIX_EPOCHS)),
    ("ablation/binary_shuffled_1_6_epochs_decay_2", _ICE, (*BINARY, "--config.total_steps=5622")),
    ("ablation/binary_shuffled_1_dependence_1_6_epochs", _ICE,
     (*BINARY, "--config.loss.label_dependence_weight=1", *SIX_EPOCHS)),
    ("ablation/binary_ce_seed_2", _CE, (*BINARY, "--config.seed=2")),
    ("mnist_ablation/ce_seed_1", _MNIST_CE, ("--config.seed=1",), *WITH_ORACLE),
    ("ablation/binary_shuffled_1_no_dropout_6_epochs", _ICE, (*BINARY, *NO_DROPOUT, *SIX_EPOCHS), *ANALYSED),
    ("ablation/binary_shuffled_1_no_dropout_6_epochs_seed_1", _ICE,
     (*BINARY, "--config.seed=1", *NO_DROPOUT, *SIX_EPOCHS)),
    ("ablation/binary_ce_no_dropout_6_epochs_decay_2", _CE, (*BINARY, *NO_DROPOUT, "--config.total_steps=5622")),
) + _lane(
    "ice",
    ("shift_mnist/binary_cnn", _CNN, BINARY),
    ("shift_mnist/textured_cnn", _CNN, ("--config.variant=textured",)),
    ("mnist/ice", _MNIST_ICE, (), *WITH_ORACLE),
    ("shift_mnist/binary_ice", _ICE, BINARY, *ANALYSED),
    ("shift_mnist/textured_ice", _ICE, TEXTURED_DEFAULT),
    ("ablation/binary_shuffled_0.1", _ICE, (*BINARY, "--config.loss.nuisance_weight=0.1")),
    ("mnist_ablation/ice_nc_steps_20", _MNIST_ICE, ("--config.nuisance_classifier.steps_per_batch=20",),
     *WITH_ORACLE),
    ("mnist_ablation/ice_weight_3", _MNIST_ICE, ("--config.loss.nuisance_weight=3.0",), *WITH_ORACLE),
    ("ablation/binary_shuffled_1.5", _ICE, (*BINARY, "--config.loss.nuisance_weight=1.5")),
    ("ablation/textured_shared_32_255_ice", _ICE, (*SHORTCUT, "--config.dataset_options.texture_images=shared")),
    ("ablation/textured_shared_32_255_cnn", _CNN, (*SHORTCUT, "--config.dataset_options.texture_images=shared")),
    ("mnist_ablation/ice_paper_0.1", _MNIST_ICE,
     ("--config.loss.nuisance_form=paper", "--config.loss.nuisance_weight=0.1"), *WITH_ORACLE),
    ("ablation/binary_shuffled_1.5_6_epochs", _ICE, (*BINARY, "--config.loss.nuisance_weight=1.5", *SIX_EPOCHS)),
    ("ablation/binary_shuffled_1_seed_1", _ICE, (*BINARY, "--config.seed=1")),
    ("ablation/binary_shuffled_1_reset_200_6_epochs", _ICE,
     (*BINARY, "--config.nuisance_classifier.reset_every_steps=200", *SIX_EPOCHS), *ANALYSED),
    ("ablation/binary_shuffled_1_sd_0.1_6_epochs", _ICE,
     (*BINARY, "--config.loss.logit_penalty_weight=0.1", *SIX_EPOCHS)),
    ("ablation/binary_shuffled_1_nc_steps_20_6_epochs", _ICE,
     (*BINARY, "--config.nuisance_classifier.steps_per_batch=20", *SIX_EPOCHS), *ANALYSED),
    ("mnist_ablation/ce_6_epochs", _MNIST_CE, SIX_EPOCHS, *WITH_ORACLE),
    ("ablation/binary_shuffled_1_dependence_10_6_epochs", _ICE,
     (*BINARY, "--config.loss.label_dependence_weight=10", *SIX_EPOCHS), *ANALYSED),
    ("ablation/binary_shuffled_1_seed_2", _ICE, (*BINARY, "--config.seed=2")),
    ("mnist_ablation/ice_seed_1", _MNIST_ICE, ("--config.seed=1",), *WITH_ORACLE),
    ("ablation/binary_shuffled_1_no_dropout_dependence_10_6_epochs", _ICE,
     (*BINARY, *NO_DROPOUT, "--config.loss.label_dependence_weight=10.0", *SIX_EPOCHS), *ANALYSED),
    ("ablation/binary_shuffled_1_no_dropout_6_epochs_decay_2", _ICE,
     (*BINARY, *NO_DROPOUT, "--config.total_steps=5622"), *ANALYSED),
    ("ablation/binary_shuffled_1_no_dropout_6_epochs_decay_2_seed_1", _ICE,
     (*BINARY, "--config.seed=1", *NO_DROPOUT, "--config.total_steps=5622")),
) + _lane(
    "textured",
    *[(f"textured_curve/shared_{n}_{loss}", f"configs/shift_mnist_{loss}.py:cpu",
       (*TEXTURED, "--config.dataset_options.texture_images=shared",
        f"--config.dataset_options.texture_images_per_class={n}"))
      for n in (1, 4, 23) for loss in ("ce", "ice")],
    *[(f"textured_curve/disjoint_{loss}", f"configs/shift_mnist_{loss}.py:cpu",
       (*TEXTURED, "--config.dataset_options.texture_images=disjoint")) for loss in ("ce", "ice")],
) + _lane(
    "selection",
    ("selection/binary_ice_6_epochs", _ICE, (*BINARY, *SIX_EPOCHS, *SELECT)),
    ("selection/binary_ce_6_epochs", _CE, (*BINARY, *SIX_EPOCHS, *SELECT)),
) + _lane(
    "full",
    # The paper's model (3 levels x 16 steps, width 128) on the :cpu schedule (issue 16).
    ("mnist_full/ce", "configs/mnist_ce.py:full", (), *WITH_ORACLE),
    ("mnist_full/ice", "configs/mnist_ice.py:full", (), *WITH_ORACLE),
    ("shift_mnist_full/binary_ce", "configs/shift_mnist_ce.py:full", BINARY),
    ("shift_mnist_full/binary_ice", "configs/shift_mnist_ice.py:full", BINARY),
    ("shift_mnist_full/binary_ice_6_epochs_selection", "configs/shift_mnist_ice.py:full",
     (*BINARY, *FULL_SIX_EPOCHS, *FULL_SELECT)),
    ("shift_mnist_full/binary_ce_6_epochs_selection", "configs/shift_mnist_ce.py:full",
     (*BINARY, *FULL_SIX_EPOCHS, *FULL_SELECT)),
)
"""Every run, the oracle first; within a lane in the order `make results` starts them."""

LANES = tuple(dict.fromkeys(run.lane for run in RUNS if run is not ORACLE))
"""The lanes `make results LANES=...` accepts (the oracle runs with any of them)."""

UNCOLLECTED = {
    "oracle": "the CNN that judges metamers, not a result itself",
    "selection": "read by docs/selection.md from its run folders, not collected into results/",
}
"""Groups of the grid without a results file, and why."""


def train_command(run: Run, runs: pathlib.Path) -> list[str]:
  """The arguments after `python` that train `run` under `runs` (or resume it, or re-evaluate it)."""
  return ["-m", "experiments.train", f"--workdir={runs / run.path}", f"--config={run.config}", *run.overrides]


def analysis_command(run: Run, runs: pathlib.Path) -> list[str]:
  """The arguments after `python` of `run`'s metamer analysis, with the post-hoc nuisance classifier."""
  oracle = [f"--oracle_workdir={runs / ORACLE.path}"] if run.oracle else []
  return ["-m", "experiments.metamers", f"--workdir={runs / run.path}", *oracle, "--posthoc", "--num_pairs=1000"]


def in_lanes(lanes: list[str]) -> list[Run]:
  """The runs of `lanes` and the oracle, in grid order; a ValueError names an unknown lane."""
  if unknown := sorted(set(lanes) - set(LANES)):
    raise ValueError(f"unknown lanes {unknown}: the grid's lanes are {list(LANES)}")
  return [run for run in RUNS if run is ORACLE or run.lane in lanes]
