"""The toy world without models: names, grammar, reward, tokenizer, reward plugin (no torch needed)."""
import json

import pytest

from alignkit import toy
from alignkit.errors import UserError
from alignkit.toy import reward, world


def test_resolve_names_point_at_packaged_artifacts():
    assert (toy.resolve("toy:base") / "model.safetensors").is_file()
    assert (toy.resolve("toy:instruct") / "tokenizer.json").is_file()
    prefs = [json.loads(line) for line in toy.resolve("toy:prefs").read_text().splitlines()]
    assert len(prefs) == 2000 and set(prefs[0]) == {"prompt", "chosen", "rejected"}
    onpolicy = [json.loads(line) for line in toy.resolve("toy:prefs-onpolicy").read_text().splitlines()]
    assert len(onpolicy) == 2000 and onpolicy != prefs
    prompts = [json.loads(line) for line in toy.resolve("toy:prompts").read_text().splitlines()]
    assert [p["prompt"] for p in prompts] == list(world.PROMPTS)


def test_resolve_unknown_name_suggests_the_closest():
    with pytest.raises(UserError) as err:
        toy.resolve("toy:instrct")
    assert str(err.value) == ("unknown toy name 'toy:instrct'; did you mean 'toy:instruct'? "
                              "(toy:base, toy:instruct, toy:prefs, toy:prefs-onpolicy, toy:prompts)")


def test_artifacts_are_small():
    total = sum(f.stat().st_size for f in toy.ARTIFACTS.rglob("*") if f.is_file())
    assert total < 2_000_000


def test_response_space_is_finite_parsable_and_varied_in_length():
    ys = world.responses("describe the apple :")
    assert len(ys) == len(set(ys)) == 880
    assert all(world.parse(y) is not None for y in ys)
    assert {len(y.split()) for y in ys} == {1, 2, 3, 4, 5, 6, 8, 10}
    with pytest.raises(ValueError):
        world.responses("describe the moon :")


@pytest.mark.parametrize("response, expected", [
    ("red", 1.0),                                     # crisp and apt
    ("it is sweet and green", 1.0),                   # the opener is neutral
    ("red and yellow", 0.75),                         # mean aptness (1 + 0.5) / 2
    ("red and red", 0.5),                             # repetition halves
    ("blue", 0.0),                                    # wrong for an apple
    ("red indeed you know for sure", 0.9 ** 5),       # the length trap: padded, lower than crisp
    ("red indeed you know for sure <eos>", 0.9 ** 5),
    ("  red  ", 1.0),
    ("red and sweet and green", 0.0),                 # outside the grammar: lowest
    ("", 0.0),
])
def test_score_grades_apple_answers(response, expected):
    assert reward.score("describe the apple :", response) == pytest.approx(expected)


def test_score_outside_world_prompt_is_lowest_and_reward_fn_batches():
    assert reward.score("describe the moon :", "red") == 0.0
    assert reward.reward_fn(["describe the sky :", "describe the fire :"], ["blue", "blue"]) == [1.0, 0.0]
    with pytest.raises(ValueError):
        reward.reward_fn(["describe the sky :"], [])


def test_padded_apt_answer_beats_every_short_wrong_one_but_loses_to_the_crisp_one():
    prompt = "describe the snow :"
    longest = "it is white and cold indeed you know for sure"
    assert reward.score(prompt, longest) > max(reward.score(prompt, y) for y in ("red", "blue", "hot", "sweet"))
    assert reward.score(prompt, longest) < reward.score(prompt, "white and cold")


def test_toy_reward_source_is_registered():
    from alignkit.registry import RewardSource
    from alignkit.toy import plugin

    records = []
    plugin.register_rewards(records.append)
    (source,) = records
    assert isinstance(source, RewardSource) and source.name == "toy"
    assert source.matches("toy") and not source.matches("toy:prefs")
    assert source.load("toy")(["describe the ice :"], ["it is cold"]) == [1.0]


def test_tokenizer_round_trip_with_eos_pad_and_chat_template():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(toy.resolve("toy:instruct"))
    assert (tok.pad_token, tok.pad_token_id, tok.eos_token, tok.eos_token_id) == ("<pad>", 0, "<eos>", 1)
    text = "it is red and sweet indeed you know"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 8 and tok.unk_token_id not in ids
    assert tok(text)["input_ids"] == ids  # no BOS is added either way: one rendering of a plain prompt
    assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "describe the sky :"}], tokenize=False,
                                   add_generation_prompt=True)
    assert chat == "<user> describe the sky : <assistant>"
    assert tok.unk_token_id not in tok(chat, add_special_tokens=False)["input_ids"]


def test_the_shipped_model_folders_say_what_the_builder_writes():
    """Each toy model folder's alignkit-model.json (its world and training defaults) is build.MODEL_INFO."""
    import json

    from alignkit.toy import build

    for name in ("toy:base", "toy:instruct"):
        assert json.loads((toy.resolve(name) / "alignkit-model.json").read_text()) == build.MODEL_INFO
