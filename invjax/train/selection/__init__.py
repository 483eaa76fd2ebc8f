"""Shift-blind model selection (docs/selection.md), in three parts:

* `rule`: which checkpoint to keep, from measurements alone (pure; `selection.json`);
* `measurement`: what the rule measures at a checkpoint, on held-out training examples;
* `job`: the rule inside a training job (when to measure, keeping `selected/`, resuming).
"""
