"""SmolLM2 end to end through the CLI: prepare -> train dpo --lora (2 steps) -> decode -> eval, with the model
given as the .gguf file itself (converted once by the GGUF resource)."""
import json

import pytest
from real_helpers import PAIRS, cli, read_jsonl

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_prepare_train_lora_decode_eval(smollm2_gguf, smollm2_dir, smollm2_tokenizer, tmp_path):
    gguf = str(smollm2_gguf)
    prepared = tmp_path / "prepared"
    cli("prepare", PAIRS, "--model", gguf, "--output", prepared)
    manifest = json.loads((prepared / "manifest.json").read_text())
    # prompt_cut 0: SmolLM2's template renders every prompt the same alone and followed by a response
    assert manifest["counts"] == {"read": 20, "kept": 20, "rejected": 0, "truncated": 0, "prompt_cut": 0,
                                  "rejected_by_reason": {}}
    assert manifest["template"] == "chat"
    from datasets import load_from_disk

    first = load_from_disk(str(prepared))[0]
    im_end = smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")
    # ChatML closes the assistant turn itself: the chosen response is "Blue.<|im_end|>\n", no EOS after it.
    assert smollm2_tokenizer.decode(first["chosen_input_ids"]) == "Blue.<|im_end|>\n"
    assert first["chosen_input_ids"].count(im_end) == 1

    run = tmp_path / "run"
    # --ref-mode per-step: the adapter-off reference scores only the 2 batches trained on, not all 20 pairs
    cli("train", "dpo", "--model", gguf, "--data", prepared, "--lora", "--lora-rank", 4, "--max-steps", 2,
        "--batch-size", 2, "--learning-rate", 1e-4, "--ref-mode", "per-step", "--dtype", "fp32", "--output", run)
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(abs(m["rewards/margins"]) < 50 and m["loss"] > 0 for m in metrics)
    # The first step's policy is the reference (adapter off, adapter initialised to zero): loss is log 2.
    assert abs(metrics[0]["loss"] - 0.6931) < 1e-3
    assert (run / "adapter_config.json").is_file()

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": i, "prompt": r["prompt"]}) + "\n"
                               for i, r in enumerate(read_jsonl(PAIRS)[:4])))
    generations = tmp_path / "gen.jsonl"
    cli("decode", "--model", run, "--prompts", prompts, "--num-samples", 2, "--max-new-tokens", 12,
        "--temperature", 0.8, "--dtype", "fp32", "--output", generations)
    records = read_jsonl(generations)
    assert sorted((r["prompt_id"], r["sample_id"]) for r in records) == [(i, s) for i in range(4) for s in (0, 1)]
    assert all(0 < r["num_tokens"] <= 12 and r["finish_reason"] in ("eos", "length") for r in records)
    assert all("<|im_end|>" not in r["text"] and "<|im_start|>" not in r["text"] for r in records)

    report_dir = tmp_path / "eval"
    cli("eval", generations, "--output", report_dir, "--bootstrap", 50)
    report = json.loads((report_dir / "report.json").read_text())
    (file,) = report["files"]
    # decode writes each conversational prompt as its list of messages; eval must read its own input back
    assert file["counts"]["evaluated"] == 8 and file["counts"]["prompts"] == 4, file["counts"]
    # 2 samples per prompt: the mean over prompts of mean tokens is the plain mean of decode's num_tokens
    mean_tokens = sum(r["num_tokens"] for r in records) / len(records)
    assert abs(file["metrics"]["mean-tokens"]["mean"] - mean_tokens) < 1e-9
    assert 0 < file["metrics"]["distinct-1"]["mean"] <= 1
