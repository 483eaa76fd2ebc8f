"""Training: the two-player iCE game (and plain CE) as a resumable job."""

from invjax import _extras

with _extras.train_extra("invjax.train"):
  from invjax.train.checkpoints import Run, load_run
  from invjax.train.loop import evaluate, train_and_evaluate
  from invjax.train.state import TrainState, build, build_model
  from invjax.train.step import make_eval_step, make_train_step
  from invjax.train.validation import validate

__all__ = [
    "Run",
    "TrainState",
    "build",
    "build_model",
    "evaluate",
    "load_run",
    "make_eval_step",
    "make_train_step",
    "train_and_evaluate",
    "validate",
]
