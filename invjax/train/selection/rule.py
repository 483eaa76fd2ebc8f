r"""Shift-blind model selection: which checkpoint of a run to keep, chosen on held-out training
data only (issue 16; docs/selection.md).

On binary shiftMNIST iCE's shifted-test error grows as training goes on (23.8%
after epoch 1, 97.8% after epoch 6), while the clean error stays near 0: the
last checkpoint is not the one to keep, and `test_shifted` may not choose it.
At every selection step the run measures, on its held-out training examples
(`measurement`), the logit error e_t and the cross-entropy c_t of a fresh
nuisance classifier on z_n (large c_t: little label information in z_n). The
rule, with tolerance tau (`config.selection.logit_error_tolerance`, points):

    best_t = min(e_1, ..., e_t)
    a checkpoint qualifies at t if its e <= best_t + tau;
    the kept checkpoint k is replaced by t if k no longer qualifies,
    or if t qualifies and c_t > c_k.

So the kept model always classifies within tau of the best held-out logit
error seen so far, and among those it holds the least label information in
z_n that a fresh classifier can find, which is what iCE's objective asks for.
It is causal: each decision uses measurements up to t only, so the run keeps
one extra checkpoint (`selected/`) and three numbers, not all checkpoints.
(When k drops out of the band, t is the new best: candidates seen between k
and t are not revisited.) With tau = 0 it is early stopping on the held-out
logit error, ties going to the larger c.

The state lives in `workdir/selection.json` (atomic writes) and the kept
checkpoint in `workdir/selected/`, a run folder of its own (config.json,
checkpoints/ with one verified checkpoint): `train.load_run(workdir /
"selected")` and every analysis command read it. Test splits are evaluated on
the selected checkpoint at the end of training, for reporting only; the rule
never reads them.
"""

import dataclasses
import json
import math
import pathlib

from invjax.train import run_folder
from invjax.train.selection.measurement import Measurement

RULE = ("among the checkpoints whose held-out logit error is within logit_error_tolerance points of the best held-out "
        "logit error so far, the one with the largest held-out cross-entropy of a fresh nuisance classifier on z_n")


@dataclasses.dataclass(frozen=True)
class SelectionState:
  """What the rule remembers: the best held-out logit error, the kept checkpoint's measurement,
  the last step measured (a resumed run does not measure a step twice) and, once training has
  ended, the selected checkpoint's evaluation on every split."""

  best_logit_error: float = math.inf
  selected: Measurement | None = None
  last_step: int = 0
  selected_evaluation: dict | None = None

  def qualifies(self, measurement: Measurement, tolerance: float) -> bool:
    return measurement.logit_error <= self.best_logit_error + tolerance


def update(state: SelectionState, measurement: Measurement, tolerance: float) -> tuple[SelectionState, bool]:
  """The state after `measurement`, and whether its checkpoint is now the kept one (the module's rule)."""
  state = dataclasses.replace(state, best_logit_error=min(state.best_logit_error, measurement.logit_error),
                              last_step=measurement.step)
  kept = state.selected
  take = (kept is None or not state.qualifies(kept, tolerance)
          or (state.qualifies(measurement, tolerance)
              and measurement.nuisance_cross_entropy > kept.nuisance_cross_entropy))
  return (dataclasses.replace(state, selected=measurement) if take else state), take


def select(measurements, tolerance: float) -> SelectionState:
  """The state after a sequence of measurements (what a run that measured them keeps)."""
  state = SelectionState()
  for measurement in measurements:
    state, _ = update(state, measurement, tolerance)
  return state


def to_json(state: SelectionState, tolerance: float) -> dict:
  return {
      "rule": RULE,
      "logit_error_tolerance": tolerance,
      "best_logit_error": None if math.isinf(state.best_logit_error) else state.best_logit_error,
      "last_step": state.last_step,
      "selected": None if state.selected is None else state.selected._asdict(),
      "selected_evaluation": state.selected_evaluation,
  }


def read_state(workdir: pathlib.Path) -> SelectionState:
  """The state in `workdir/selection.json`, or a fresh one before the first measurement."""
  path = pathlib.Path(workdir) / run_folder.SELECTION_FILE
  if not path.exists():
    return SelectionState()
  try:
    stored = json.loads(path.read_text())
    selected = stored["selected"]
    return SelectionState(
        best_logit_error=math.inf if stored["best_logit_error"] is None else stored["best_logit_error"],
        selected=None if selected is None else Measurement(**selected),
        last_step=stored["last_step"],
        selected_evaluation=stored["selected_evaluation"],
    )
  except (ValueError, KeyError, TypeError) as error:
    raise ValueError(f"{path} is damaged ({type(error).__name__}: {error}): move it and {run_folder.SELECTED_DIR}/ "
                     "away to select afresh from the next measurement on, or start a new run.") from None
