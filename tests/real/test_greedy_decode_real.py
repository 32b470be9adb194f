"""`alignkit decode --temperature 0` on SmolLM2 is transformers' greedy `generate` on the chat-templated prompt,
token for token: same number of tokens, same text, same finish reason, for prompts of different lengths decoded
together in one left-padded batch."""
import json

import pytest
from real_helpers import cli, pair_rows, read_jsonl

pytestmark = [pytest.mark.real, pytest.mark.slow]
MAX_NEW = 20


def test_greedy_decode_equals_generate(smollm2_dir, smollm2_model, smollm2_tokenizer, tmp_path):
    import torch

    rows = pair_rows()
    prompts = {i: rows[i]["prompt"] for i in (0, 11, 16, 18)}  # one-turn, one-turn, system turn, earlier exchange
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in prompts.items()))
    out = tmp_path / "greedy.jsonl"
    # --onednn off: torch's F.linear, as generate runs it (oneDNN's rounding could flip a near-tie)
    cli("decode", "--model", smollm2_dir, "--prompts", path, "--temperature", 0, "--max-new-tokens", MAX_NEW,
        "--dtype", "fp32", "--device", "cpu", "--onednn", "off", "--output", out)
    records = {r["prompt_id"]: r for r in read_jsonl(out)}
    assert sorted(records) == sorted(prompts)

    tokenizer = smollm2_tokenizer
    eos = {tokenizer.eos_token_id}
    finished = 0
    for i, prompt in prompts.items():
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                            return_dict=True)["input_ids"]
        with torch.no_grad():
            generated = smollm2_model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                                               dtype=torch.long), do_sample=False, max_new_tokens=MAX_NEW)
        new = generated[0, len(ids):].tolist()  # (n,) greedy tokens, EOS included when it came
        expected = {"num_tokens": len(new), "finish_reason": "eos" if new[-1] in eos else "length",
                    "text": tokenizer.decode([t for t in new if t not in eos], skip_special_tokens=True)}
        assert {k: records[i][k] for k in expected} == expected, f"prompt {i}: {prompt}"
        finished += expected["finish_reason"] == "eos"
    assert finished >= 1  # at least one answer ends on <|im_end|> within 20 tokens: the stop rule is exercised
