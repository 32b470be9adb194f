#!/usr/bin/env bash
# bash examples/quickstart.sh [FOLDER]        (default: quickstart/)
#
# The whole pipeline on the embedded toy world, offline, in a few minutes on 2 CPU cores:
#   prepare -> train dpo, hdpo, qempo (offline and online), dpo --poet -> decode each, and the instruct model
#   with and without --conformative -> eval of all of them -> the quality-vs-diversity plot.
# Every command is the one a user types; runs are short (a few hundred pairs, 150 steps) so that it stays quick:
# docs/algorithms/*.md give the full-length commands and their exact figures. Set ALIGNKIT to run another install
# (ALIGNKIT="python -m alignkit"); CI runs this script (tests/examples/test_quickstart.py).
set -euo pipefail

OUT="${1:-quickstart}"
read -ra ALIGNKIT <<< "${ALIGNKIT:-alignkit}"
# The toy models are 85k parameters: one thread is faster than several fighting over loaded cores (measured 5x on a
# busy 2-core machine). Everything is packaged, so nothing needs the Hub.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
mkdir -p "$OUT/generations"
step() { printf '\n== %s\n' "$*"; }
ak() { "${ALIGNKIT[@]}" "$@"; }

# On-policy pairs (both responses drawn from toy:instruct, the model training starts from), as preference data is
# usually collected from the SFT model; toy:prefs, mostly drawn from toy:base, is the length trap of
# docs/toy-world.md.
step "prepare: 400 of toy:prefs-onpolicy's pairs, tokenized with toy:instruct's tokenizer"
ak prepare toy:prefs-onpolicy --model toy:instruct --limit 400 --output "$OUT/data"

# Offline objectives from toy:instruct on the same pairs; each run prints the toy world's exact before/after
# figures.
TRAIN=(--data "$OUT/data" --max-steps 150)
step "train dpo";                  ak train dpo --beta 0.1 "${TRAIN[@]}" --output "$OUT/dpo"
step "train hdpo (alpha 0.8)";     ak train hdpo --alpha 0.8 "${TRAIN[@]}" --output "$OUT/hdpo"
step "train qempo (kl)";           ak train qempo --constraint kl "${TRAIN[@]}" --output "$OUT/qempo"
step "train dpo --poet";           ak train dpo --poet "${TRAIN[@]}" --output "$OUT/dpo-poet"
# Online: sample from the policy, score with the toy reward, hold the mean reward at 0.85 by dual ascent.
step "train qempo --online (min reward 0.85)"
ak train qempo --online --constraint kl --beta 0.1 --min-reward 0.85 --reward toy --max-steps 60 \
  --learning-rate 5e-4 --lr-schedule constant --max-new-tokens 16 --output "$OUT/qempo-online"

DECODE=(--num-samples 16 --max-new-tokens 16)
step "decode: toy:instruct, with and without --conformative (mixing in toy:base)"
ak decode --model toy:instruct "${DECODE[@]}" --output "$OUT/generations/instruct.jsonl"
ak decode --model toy:instruct --conformative --conformative-base-model toy:base --conformative-weight 0.5 \
  "${DECODE[@]}" --output "$OUT/generations/conformative.jsonl"
for run in dpo hdpo qempo dpo-poet qempo-online; do
  step "decode $run"
  ak decode --model "$OUT/$run" "${DECODE[@]}" --output "$OUT/generations/$run.jsonl"
done

step "eval: quality (toy reward) and diversity of all of them, side by side"
ak eval "$OUT"/generations/*.jsonl --reward toy --output "$OUT/eval"

printf '\nDone. The comparison: %s\n' "$OUT/eval/plots/quality_vs_diversity.png"
printf 'The table: %s   Each run'"'"'s exact figures: %s/<run>/exact.json\n' "$OUT/eval/report.md" "$OUT"
