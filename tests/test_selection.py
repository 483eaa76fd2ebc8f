"""Shift-blind model selection (issue 16): the held-out examples, the rule, resuming, and the
selected checkpoint (invjax/train/selection/: rule.py, job.py, measurement.py)."""

import dataclasses
import hashlib
import itertools
import json

import jax
import numpy as np
import pytest

from invjax import data, train
from invjax.train import loop, preemption, run_folder
from invjax.train.selection import job as selection_job
from invjax.train.selection import measurement as measurement_lib
from invjax.train.selection import rule
from test_reliability_config import with_value
from test_reliability_train import assert_same_parameters
from test_train import micro_config

SELECTING = {"selection.holdout_examples": 256, "selection.every_steps": 1, "selection.logit_error_tolerance": 0.5}


def selecting_config(**overrides):
  return micro_config(**{**SELECTING, **overrides})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A finished 4-step run measured at every step (about 30 s on the 2-core CPU: the tests that use it are slow)."""
  workdir = tmp_path_factory.mktemp("selecting")
  train.train_and_evaluate(selecting_config(), workdir)
  return workdir


def _hashes(images) -> set[str]:
  return {hashlib.sha1(image.tobytes()).hexdigest() for image in images}


def test_the_held_out_examples_never_enter_the_training_stream():
  config = selecting_config(batch_size=1000, **{"selection.holdout_examples": 5000})
  steps_per_epoch = data.num_examples("mnist", "train", holdout_examples=5000) // 1000
  epoch = itertools.islice(loop.train_batches(config, None, 0, steps_per_epoch), steps_per_epoch)
  trained = _hashes(np.concatenate([batch["image"] for batch in epoch]))
  held_out = _hashes(data.as_numpy("mnist", "holdout", holdout_examples=5000)[0])
  assert len(trained) == 55_000 and len(held_out) == 5_000  # (MNIST's 60,000 training images are distinct)
  assert not trained & held_out


def m(step, logit_error, cross_entropy):
  return measurement_lib.Measurement(step, logit_error, 0.0, cross_entropy, 0.0)


@pytest.mark.parametrize("tolerance,sequence,kept,taken", [
    # Within 0.5 points of the best logit error, the largest cross-entropy; step 5's is larger but it
    # classifies 0.6 points worse than step 4.
    (0.5, [m(1, 3.0, 0.1), m(2, 0.4, 0.5), m(3, 0.2, 1.0), m(4, 0.0, 0.3), m(5, 0.6, 2.0), m(6, 0.1, 0.8)],
     3, [True, True, True, False, False, False]),
    # The kept checkpoint leaves the band when a better classifier comes: the new best replaces it.
    (0.5, [m(1, 0.9, 5.0), m(2, 0.3, 0.1)], 2, [True, True]),
    # Tolerance 0: early stopping on the held-out logit error, ties to the larger cross-entropy.
    (0.0, [m(1, 1.0, 9.0), m(2, 0.5, 0.1), m(3, 0.5, 0.2), m(4, 0.7, 5.0)], 3, [True, True, True, False]),
])
def test_the_rule_keeps_the_least_label_dependent_z_n_among_good_classifiers(tolerance, sequence, kept, taken):
  state, decisions = rule.SelectionState(), []
  for measurement in sequence:
    state, take = rule.update(state, measurement, tolerance)
    decisions.append(take)
  assert state.selected.step == kept and decisions == taken
  assert state.best_logit_error == min(x.logit_error for x in sequence) and state.last_step == sequence[-1].step
  assert rule.select(sequence, tolerance) == state


def test_the_state_reads_back_as_written(tmp_path):
  state = rule.select([m(2, 0.4, 0.5), m(4, 0.1, 0.7)], 0.5)
  state = dataclasses.replace(state, selected_evaluation={"test/logit_error": 0.3})
  (tmp_path / run_folder.SELECTION_FILE).write_text(json.dumps(rule.to_json(state, 0.5)))
  assert rule.read_state(tmp_path) == state
  (tmp_path / run_folder.SELECTION_FILE).write_text("{")
  with pytest.raises(ValueError, match="is damaged"):
    rule.read_state(tmp_path)


def _measurements_in_log(workdir) -> dict[int, dict]:
  return {record["step"]: record for record in run_folder.read_records(workdir)
          if "selection/holdout_logit_error" in record}


@pytest.mark.slow
def test_the_run_records_every_measurement_and_what_it_kept(run):
  state = rule.read_state(run)
  logged = _measurements_in_log(run)
  assert sorted(logged) == [1, 2, 3, 4]
  rebuilt = rule.select(
      [measurement_lib.Measurement(step, *(logged[step][f"selection/holdout_{name}"]
                                           for name in measurement_lib.Measurement._fields[1:]))
       for step in sorted(logged)],
      SELECTING["selection.logit_error_tolerance"])
  assert rebuilt.selected == state.selected and rebuilt.best_logit_error == state.best_logit_error
  assert logged[4]["selection/selected_step"] == state.selected.step
  final = json.loads((run / run_folder.FINAL_METRICS_FILE).read_text())
  assert final["selected/step"] == state.selected.step
  assert final["selected/test/logit_error"] == state.selected_evaluation["test/logit_error"]
  assert sorted(p.name for p in (run / run_folder.SELECTED_DIR / "checkpoints").iterdir()) == [str(state.selected.step)]


@pytest.mark.slow
def test_the_selected_checkpoint_loads_and_reproduces_its_logged_metrics(run):
  state = rule.read_state(run)
  selected = train.load_run(run / run_folder.SELECTED_DIR)
  assert selected.step == state.selected.step
  config = selected.config
  params = selected.variables["params"]
  encode = jax.jit(measurement_lib.make_encode(config, selected.model))
  again = measurement_lib.measure(config, None, encode, params, selected.step)
  np.testing.assert_allclose(again, state.selected, rtol=1e-4)
  images, labels = data.as_numpy(config.dataset, "test", max_examples=config.eval_examples)
  logits, _ = encode(params, {"image": images})
  test_error = 100 * np.mean(np.argmax(logits, -1) != labels)
  np.testing.assert_allclose(test_error, state.selected_evaluation["test/logit_error"], atol=1e-9)


def _read_everything(workdir):
  return rule.read_state(workdir), train.load_run(workdir / run_folder.SELECTED_DIR).variables


@pytest.mark.slow
def test_a_preempted_run_resumes_to_the_same_selection(run, tmp_path, monkeypatch):
  monkeypatch.setattr(loop, "_stop_requested", lambda watcher, checkpoint_manager, step: step == 3)  # as after a SIGTERM
  with pytest.raises(preemption.Preempted, match=r"after step 3"):
    train.train_and_evaluate(selecting_config(), tmp_path)
  assert rule.read_state(tmp_path).last_step == 2  # step 3 was saved, not measured
  monkeypatch.undo()
  train.train_and_evaluate(selecting_config(), tmp_path)
  resumed, expected = _read_everything(tmp_path), _read_everything(run)
  assert resumed[0] == expected[0]
  assert_same_parameters(resumed[1], expected[1])
  assert sorted(_measurements_in_log(tmp_path)) == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_job_killed_between_keeping_a_checkpoint_and_recording_it_resumes_to_the_same_selection(
    run, tmp_path, monkeypatch):
  original_update, original_commit = rule.update, selection_job.Selector._commit

  def keeps_step_three(state, measurement, tolerance):
    new_state, take = original_update(state, measurement, tolerance)
    return (dataclasses.replace(new_state, selected=measurement), True) if measurement.step == 3 else (new_state, take)

  def killed_before_recording_step_three(self, new_state):
    if new_state.last_step == 3:
      raise RuntimeError("killed")
    original_commit(self, new_state)

  monkeypatch.setattr(rule, "update", keeps_step_three)
  monkeypatch.setattr(selection_job.Selector, "_commit", killed_before_recording_step_three)
  with pytest.raises(RuntimeError, match="killed"):
    train.train_and_evaluate(selecting_config(), tmp_path)
  assert "3" in {p.name for p in (tmp_path / run_folder.SELECTED_DIR / "checkpoints").iterdir()}
  monkeypatch.undo()
  train.train_and_evaluate(selecting_config(), tmp_path)
  resumed, expected = _read_everything(tmp_path), _read_everything(run)
  assert resumed[0] == expected[0]
  assert_same_parameters(resumed[1], expected[1])
  kept = sorted(p.name for p in (tmp_path / run_folder.SELECTED_DIR / "checkpoints").iterdir())
  assert kept == [str(expected[0].selected.step)]


@pytest.mark.parametrize("changes,message", [
    ({"selection.holdout_examples": -1}, r"config.selection.holdout_examples=-1 must be an integer >= 0"),
    ({"selection.every_steps": 1.5}, r"config.selection.every_steps=1.5 must be an integer >= 0"),
    ({"selection.logit_error_tolerance": -0.5}, r"config.selection.logit_error_tolerance=-0.5 must be a finite"),
    ({"selection.probe_examples": 100}, r"config.selection.probe_examples=100 .* must be >= 128"),
    ({"selection.holdout_examples": 50_000, "selection.probe_examples": 20_000}, r"exceed the 60000 training"),
    ({"model.kind": "cnn", "loss.nuisance_weight": 0.0, "loss.mle_weight": 0.0}, r"needs a fi_revnet"),
])
def test_bad_selection_settings_are_refused_in_one_line(changes, message):
  config = selecting_config()
  for name, value in changes.items():
    config = with_value(name, value, config)
  with pytest.raises(ValueError, match=message) as error:
    train.validate(config, 1)
  assert "\n" not in str(error.value)
