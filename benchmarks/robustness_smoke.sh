#!/usr/bin/env bash
# Robustness of the smoke models with and without on-device augmentation (docs/results.md, "Robustness of the
# smoke models").
#
#   benchmarks/robustness_smoke.sh [RUNS_DIR] [OUT_DIR]
#
# Trains four runs of configs/smoke.py on the rendered corpus (spectrogram and waveform front-ends, each with
# and without augmentation) into RUNS_DIR (default runs/robustness_smoke), then scores each on the test split
# under the perturbations of `python -m jaxtag.analyze robustness` (time stretch, pitch shift, gain, white
# noise, MP3, each at its default strengths) into OUT_DIR/<run>/ (default benchmarks/results/robustness_smoke),
# and writes OUT_DIR/summary.{md,json} and OUT_DIR/robustness.png with the four runs side by side.
#
# Resumable: rerun the same command. A finished run is not trained again, a half-trained run resumes
# from its newest checkpoint (jaxtag's own resume), and a run whose robustness report exists is not scored again.
# Each step's console output goes to RUNS_DIR/<run>.log. Environment: PYTHON (default python), NICE (default 19),
# EXTRA (more --config.* flags for every run, e.g. EXTRA="--config.train.steps=20" for a dry run), WAVE_STEPS
# (training steps of the two waveform runs; default: the smoke recipe's 600).
set -euo pipefail
RUNS=${1:-runs/robustness_smoke}
OUT=${2:-benchmarks/results/robustness_smoke}
PY=${PYTHON:-python}
NICE=${NICE:-19}
EXTRA=${EXTRA:-}
WAVE_STEPS=${WAVE_STEPS:-600}
mkdir -p "$RUNS" "$OUT"

# The augmentation set: random gain +-6 dB, polarity flips half the time, crop jitter up to 0.25 s, white noise
# on half the examples at 10-40 dB SNR; the spectrogram model also gets SpecAugment (2 time masks of <= 20
# frames, 2 frequency masks of <= 12 of its 96 mel bins). No mixup and no varispeed: the point is to see whether
# training on gain and noise buys robustness to gain and noise (and what it does to the rest).
AUG_WAVE="--config.augment.gain_db=6 --config.augment.polarity=0.5 --config.augment.shift_seconds=0.25 \
--config.augment.noise_prob=0.5 --config.augment.noise_snr_min_db=10 --config.augment.noise_snr_max_db=40"
AUG_SPEC="$AUG_WAVE --config.augment.time_masks=2 --config.augment.time_mask_frames=20 \
--config.augment.freq_masks=2 --config.augment.freq_mask_bins=12"

declare -A CONFIG=([spec_clean]="configs/smoke.py" [spec_aug]="configs/smoke.py"
                   [wave_clean]="configs/smoke.py:waveform" [wave_aug]="configs/smoke.py:waveform")
declare -A AUG=([spec_clean]="" [spec_aug]="$AUG_SPEC" [wave_clean]="--config.train.steps=$WAVE_STEPS"
                [wave_aug]="$AUG_WAVE --config.train.steps=$WAVE_STEPS")
ORDER=(spec_clean spec_aug wave_clean wave_aug)

stamp() { date -u +%H:%M:%S; }
n=0
for run in "${ORDER[@]}"; do
  n=$((n + 1))
  # finished: summary.json without a stop signal (a SIGTERM-stopped run writes one too, and resumes here)
  if [[ -f "$RUNS/$run/summary.json" ]] && "$PY" -c "import json, sys; sys.exit(json.load(open(sys.argv[1]))\
.get('stopped_by') not in (None, 'early_stopping'))" "$RUNS/$run/summary.json"; then
    echo "$(stamp) [$n/4] train $run: done, skipped"
    continue
  fi
  echo "$(stamp) [$n/4] train $run (log: $RUNS/$run.log)"
  t0=$SECONDS
  # shellcheck disable=SC2086
  nice -n "$NICE" "$PY" -m jaxtag.main --config="${CONFIG[$run]}" --workdir="$RUNS/$run" ${AUG[$run]} $EXTRA \
      >>"$RUNS/$run.log" 2>&1
  echo "$(stamp) [$n/4] train $run: $((SECONDS - t0)) s"
done

n=0
for run in "${ORDER[@]}"; do
  n=$((n + 1))
  if [[ -f "$OUT/$run/robustness_test.json" ]]; then
    echo "$(stamp) [$n/4] robustness $run: done, skipped"
    continue
  fi
  echo "$(stamp) [$n/4] robustness $run (log: $RUNS/$run.robustness.log)"
  t0=$SECONDS
  nice -n "$NICE" "$PY" -m jaxtag.analyze robustness "$RUNS/$run" --out="$OUT" >>"$RUNS/$run.robustness.log" 2>&1
  echo "$(stamp) [$n/4] robustness $run: $((SECONDS - t0)) s"
done

nice -n "$NICE" "$PY" -m benchmarks.robustness_summary --out="$OUT" "${ORDER[@]}"
echo "$(stamp) wrote $OUT/summary.md, $OUT/summary.json, $OUT/robustness.png"
