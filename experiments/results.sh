#!/usr/bin/env bash
# Trains and analyses every run of docs/results.md, then writes results/*.json.
#
#   experiments/results.sh [RUNS_DIR [LANE...]]   (default runs/results, every lane; `make results`)
#
# Two jobs run at a time (one per core of the 2-core CPU the numbers were taken
# on). Named lanes (ce, ice, textured, selection, full) run side by side, without the final
# collection. Every command resumes: rerun the script after an interruption and
# it continues each run from its last checkpoint; finished runs are only
# re-evaluated. Logs go to RUNS_DIR/logs/<run>.log.
set -euo pipefail

RUNS="${1:-runs/results}"
PYTHON="${PYTHON:-python}"
mkdir -p "$RUNS/logs"

# train NAME CONFIG [OVERRIDES...]: trains RUNS/NAME; its log is RUNS/logs/NAME.log.
train() {
  local name="$1"; shift
  local log="$RUNS/logs/${name//\//_}.log"
  echo "$(date +%T) start $name (log: $log)"
  "$PYTHON" -m experiments.train --workdir="$RUNS/$name" --config="$@" >>"$log" 2>&1 \
    && echo "$(date +%T) done  $name" || echo "$(date +%T) FAILED $name: see $log" >&2
}

# analyse NAME [FLAGS...]: metamers and the post-hoc nuisance classifier of RUNS/NAME, plus
# the agreement of an oracle classifier with the metamers where FLAGS give one (MNIST runs).
analyse() {
  local name="$1"; shift
  "$PYTHON" -m experiments.metamers --workdir="$RUNS/$name" "$@" --posthoc --num_pairs=1000 \
    >>"$RUNS/logs/${name//\//_}_analysis.log" 2>&1 \
    && echo "$(date +%T) analysed $name" || echo "$(date +%T) FAILED analysis of $name" >&2
}
ORACLE=(--oracle_workdir="$RUNS/oracle/mnist_cnn")

# Textured shiftMNIST as SPEC 7 had it (the default before issue 16): half contrast, crops of all
# texture images, test crops from other images than the train crops.
SPEC7_TEXTURED=(--config.variant=textured --config.dataset_options.texture_max=128
  --config.dataset_options.texture_images=disjoint --config.dataset_options.texture_images_per_class=0)
# The textured feature as a stronger shortcut: whole 32x32 texture images at full contrast.
SHORTCUT=("${SPEC7_TEXTURED[@]}" --config.dataset_options.texture_max=255 --config.dataset_options.texture_size=32)
# Twice the :cpu budget, the learning rate decayed after epoch 5.
SIX_EPOCHS=(--config.total_steps=5622 "--config.optimizer.decay_epochs=(5,)")
# No dropout in the coupling networks: in training the flow then sees the z_n of evaluation, up to the
# dequantisation noise (without which the likelihood term diverges on the constant border pixels).
NO_DROPOUT=(--config.model.dropout=0.0)

lane_ce() {
  train mnist/ce configs/mnist_ce.py:cpu
  analyse mnist/ce "${ORACLE[@]}"
  train shift_mnist/binary_ce configs/shift_mnist_ce.py:cpu --config.variant=binary
  train shift_mnist/textured_ce configs/shift_mnist_ce.py:cpu "${SPEC7_TEXTURED[@]}"
  train ablation/binary_paper_0.1 configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.nuisance_form=paper --config.loss.nuisance_weight=0.1
  train ablation/textured_255_ce configs/shift_mnist_ce.py:cpu "${SPEC7_TEXTURED[@]}" \
    --config.dataset_options.texture_max=255
  train ablation/textured_255_ice configs/shift_mnist_ice.py:cpu "${SPEC7_TEXTURED[@]}" \
    --config.dataset_options.texture_max=255
  train ablation/binary_shuffled_3 configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.nuisance_weight=3.0
  train ablation/binary_shuffled_2 configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.nuisance_weight=2.0
  train ablation/textured_shared_32_255_ce configs/shift_mnist_ce.py:cpu "${SHORTCUT[@]}" \
    --config.dataset_options.texture_images=shared
  train ablation/textured_shared_32_255_ice_1.5 configs/shift_mnist_ice.py:cpu "${SHORTCUT[@]}" \
    --config.dataset_options.texture_images=shared --config.loss.nuisance_weight=1.5
  train ablation/textured_disjoint_32_255_ce configs/shift_mnist_ce.py:cpu "${SHORTCUT[@]}"
  train mnist_ablation/ice_mle_0 configs/mnist_ice.py:cpu --config.loss.mle_weight=0.0
  analyse mnist_ablation/ice_mle_0 "${ORACLE[@]}"
  train ablation/binary_shuffled_1_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary "${SIX_EPOCHS[@]}"
  analyse ablation/binary_shuffled_1_6_epochs
  train ablation/binary_ce_seed_1 configs/shift_mnist_ce.py:cpu --config.variant=binary --config.seed=1
  train mnist_ablation/ice_reset_200 configs/mnist_ice.py:cpu --config.nuisance_classifier.reset_every_steps=200
  analyse mnist_ablation/ice_reset_200 "${ORACLE[@]}"
  train ablation/binary_ce_sd_0.1_6_epochs configs/shift_mnist_ce.py:cpu --config.variant=binary \
    --config.loss.logit_penalty_weight=0.1 "${SIX_EPOCHS[@]}"
  train mnist_ablation/ice_6_epochs configs/mnist_ice.py:cpu "${SIX_EPOCHS[@]}"
  analyse mnist_ablation/ice_6_epochs "${ORACLE[@]}"
  train ablation/binary_ce_6_epochs configs/shift_mnist_ce.py:cpu --config.variant=binary "${SIX_EPOCHS[@]}"
  train ablation/binary_shuffled_1_6_epochs_decay_2 configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.total_steps=5622
  train ablation/binary_shuffled_1_dependence_1_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.label_dependence_weight=1 "${SIX_EPOCHS[@]}"
  train ablation/binary_ce_seed_2 configs/shift_mnist_ce.py:cpu --config.variant=binary --config.seed=2
  train mnist_ablation/ce_seed_1 configs/mnist_ce.py:cpu --config.seed=1
  analyse mnist_ablation/ce_seed_1 "${ORACLE[@]}"
  train ablation/binary_shuffled_1_no_dropout_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary \
    "${NO_DROPOUT[@]}" "${SIX_EPOCHS[@]}"
  analyse ablation/binary_shuffled_1_no_dropout_6_epochs
  train ablation/binary_shuffled_1_no_dropout_6_epochs_seed_1 configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.seed=1 "${NO_DROPOUT[@]}" "${SIX_EPOCHS[@]}"
  train ablation/binary_ce_no_dropout_6_epochs_decay_2 configs/shift_mnist_ce.py:cpu --config.variant=binary \
    "${NO_DROPOUT[@]}" --config.total_steps=5622
}

lane_ice() {
  train shift_mnist/binary_cnn configs/shift_mnist_cnn.py:cpu --config.variant=binary
  train shift_mnist/textured_cnn configs/shift_mnist_cnn.py:cpu "${SPEC7_TEXTURED[@]}"
  train mnist/ice configs/mnist_ice.py:cpu
  analyse mnist/ice "${ORACLE[@]}"
  train shift_mnist/binary_ice configs/shift_mnist_ice.py:cpu --config.variant=binary
  analyse shift_mnist/binary_ice
  train shift_mnist/textured_ice configs/shift_mnist_ice.py:cpu "${SPEC7_TEXTURED[@]}"
  train ablation/binary_shuffled_0.1 configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.nuisance_weight=0.1
  train mnist_ablation/ice_nc_steps_20 configs/mnist_ice.py:cpu --config.nuisance_classifier.steps_per_batch=20
  analyse mnist_ablation/ice_nc_steps_20 "${ORACLE[@]}"
  train mnist_ablation/ice_weight_3 configs/mnist_ice.py:cpu --config.loss.nuisance_weight=3.0
  analyse mnist_ablation/ice_weight_3 "${ORACLE[@]}"
  train ablation/binary_shuffled_1.5 configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.nuisance_weight=1.5
  train ablation/textured_shared_32_255_ice configs/shift_mnist_ice.py:cpu "${SHORTCUT[@]}" \
    --config.dataset_options.texture_images=shared
  train ablation/textured_shared_32_255_cnn configs/shift_mnist_cnn.py:cpu "${SHORTCUT[@]}" \
    --config.dataset_options.texture_images=shared
  train mnist_ablation/ice_paper_0.1 configs/mnist_ice.py:cpu --config.loss.nuisance_form=paper \
    --config.loss.nuisance_weight=0.1
  analyse mnist_ablation/ice_paper_0.1 "${ORACLE[@]}"
  train ablation/binary_shuffled_1.5_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.nuisance_weight=1.5 "${SIX_EPOCHS[@]}"
  train ablation/binary_shuffled_1_seed_1 configs/shift_mnist_ice.py:cpu --config.variant=binary --config.seed=1
  train ablation/binary_shuffled_1_reset_200_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.nuisance_classifier.reset_every_steps=200 "${SIX_EPOCHS[@]}"
  analyse ablation/binary_shuffled_1_reset_200_6_epochs
  train ablation/binary_shuffled_1_sd_0.1_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.logit_penalty_weight=0.1 "${SIX_EPOCHS[@]}"
  train ablation/binary_shuffled_1_nc_steps_20_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.nuisance_classifier.steps_per_batch=20 "${SIX_EPOCHS[@]}"
  analyse ablation/binary_shuffled_1_nc_steps_20_6_epochs
  train mnist_ablation/ce_6_epochs configs/mnist_ce.py:cpu "${SIX_EPOCHS[@]}"
  analyse mnist_ablation/ce_6_epochs "${ORACLE[@]}"
  train ablation/binary_shuffled_1_dependence_10_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary \
    --config.loss.label_dependence_weight=10 "${SIX_EPOCHS[@]}"
  analyse ablation/binary_shuffled_1_dependence_10_6_epochs
  train ablation/binary_shuffled_1_seed_2 configs/shift_mnist_ice.py:cpu --config.variant=binary --config.seed=2
  train mnist_ablation/ice_seed_1 configs/mnist_ice.py:cpu --config.seed=1
  analyse mnist_ablation/ice_seed_1 "${ORACLE[@]}"
  train ablation/binary_shuffled_1_no_dropout_dependence_10_6_epochs configs/shift_mnist_ice.py:cpu \
    --config.variant=binary "${NO_DROPOUT[@]}" --config.loss.label_dependence_weight=10.0 "${SIX_EPOCHS[@]}"
  analyse ablation/binary_shuffled_1_no_dropout_dependence_10_6_epochs
  train ablation/binary_shuffled_1_no_dropout_6_epochs_decay_2 configs/shift_mnist_ice.py:cpu --config.variant=binary \
    "${NO_DROPOUT[@]}" --config.total_steps=5622
  analyse ablation/binary_shuffled_1_no_dropout_6_epochs_decay_2
  train ablation/binary_shuffled_1_no_dropout_6_epochs_decay_2_seed_1 configs/shift_mnist_ice.py:cpu \
    --config.variant=binary --config.seed=1 "${NO_DROPOUT[@]}" --config.total_steps=5622
}

# Textured shiftMNIST as a shortcut CE takes (issue 16): full contrast, train and test crops from the
# same n images per class, against n; the disjoint texture images of SPEC 7 for comparison.
TEXTURED=("${SPEC7_TEXTURED[@]}" --config.dataset_options.texture_max=255)
lane_textured() {
  local n loss
  for n in 1 4 23; do
    for loss in ce ice; do
      train "textured_curve/shared_${n}_${loss}" "configs/shift_mnist_${loss}.py:cpu" "${TEXTURED[@]}" \
        --config.dataset_options.texture_images=shared --config.dataset_options.texture_images_per_class="$n"
    done
  done
  for loss in ce ice; do
    train "textured_curve/disjoint_${loss}" "configs/shift_mnist_${loss}.py:cpu" "${TEXTURED[@]}" \
      --config.dataset_options.texture_images=disjoint
  done
}

# Shift-blind model selection (docs/selection.md), one option per line: 5,000 training examples held out;
# every $1 steps the held-out logit error and a fresh nuisance classifier's held-out cross-entropy on z_n
# pick the kept checkpoint.
selection_every() {
  printf '%s\n' --config.selection.holdout_examples=5000 --config.selection.every_steps="$1" \
    --config.selection.logit_error_tolerance=0.5 --config.checkpoint_every_steps="$1" --config.keep_checkpoints=30
}
mapfile -t SELECT < <(selection_every 215)  # a quarter epoch at batch 64
lane_selection() {
  train selection/binary_ice_6_epochs configs/shift_mnist_ice.py:cpu --config.variant=binary "${SIX_EPOCHS[@]}" \
    "${SELECT[@]}"
  train selection/binary_ce_6_epochs configs/shift_mnist_ce.py:cpu --config.variant=binary "${SIX_EPOCHS[@]}" \
    "${SELECT[@]}"
}

# The paper's model (3 levels x 16 steps, width 128) on the :cpu schedule (issue 16); at its batch of 128,
# six epochs are 2808 steps, and the selection runs every 117 steps (a quarter epoch, as 215 is at batch 64).
FULL_SIX_EPOCHS=(--config.total_steps=2808 "--config.optimizer.decay_epochs=(5,)")
mapfile -t FULL_SELECT < <(selection_every 117)
lane_full() {
  train mnist_full/ce configs/mnist_ce.py:full
  analyse mnist_full/ce "${ORACLE[@]}"
  train mnist_full/ice configs/mnist_ice.py:full
  analyse mnist_full/ice "${ORACLE[@]}"
  train shift_mnist_full/binary_ce configs/shift_mnist_ce.py:full --config.variant=binary
  train shift_mnist_full/binary_ice configs/shift_mnist_ice.py:full --config.variant=binary
  train shift_mnist_full/binary_ice_6_epochs_selection configs/shift_mnist_ice.py:full --config.variant=binary \
    "${FULL_SIX_EPOCHS[@]}" "${FULL_SELECT[@]}"
  train shift_mnist_full/binary_ce_6_epochs_selection configs/shift_mnist_ce.py:full --config.variant=binary \
    "${FULL_SIX_EPOCHS[@]}" "${FULL_SELECT[@]}"
}

train oracle/mnist_cnn configs/mnist_cnn.py:cpu
if (( $# > 1 )); then
  for lane in "${@:2}"; do "lane_$lane" & done
  wait
  exit
fi
{ lane_ce; lane_textured; } & first_lanes=$!
{ lane_ice; lane_selection; lane_full; } & second_lanes=$!
wait "$first_lanes" && wait "$second_lanes"
"$PYTHON" -m experiments.spheres --out="$RUNS/spheres" >"$RUNS/logs/spheres.log" 2>&1
echo "$(date +%T) spheres figure in $RUNS/spheres"
"$PYTHON" -m experiments.results --runs="$RUNS" --out=results --figures=docs/figures
