"""Tokenizers of the chat-template families alignkit must tokenize exactly as TRL does, built offline from files.

    base = trained_bpe()                       # a byte-level BPE trained here in a second (the fast lane)
    base = bpe_from_folder(smollm2_folder)     # SmolLM2's real 49k BPE, from the converted GGUF (the real lane)
    tokenizer = build(base, FAMILIES["llama3"], tmp_path / "llama3")

Each family takes a byte-level BPE, adds its own special tokens, sets which special tokens the tokenizer adds by
itself (a BOS post-processor, as Llama-2 / Llama-3 / Mistral / Gemma tokenizers have) and its chat template, saves
the folder and loads it back with AutoTokenizer, as `alignkit.data.tokenize.load_tokenizer` does. The templates are
written here after the well-known public shapes of each family (ChatML as Qwen2.5 writes it, Llama-3's header
blocks, Mistral's [INST] pairs, Gemma's turns), trimmed of tool use; they are not copies of any model's file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# ---- the templates (Jinja, rendered by transformers' apply_chat_template)

# ChatML as Qwen2.5 writes it: a default system turn, every turn closed by <|im_end|> and a newline.
QWEN_CHATML = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Llama-3: BOS written by the template, a header block per turn, contents trimmed, turns closed by <|eot_id|>.
LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim }}"
    "{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# Mistral (v0.1 shape): BOS, user turns in [INST] ... [/INST], an assistant turn closed by EOS; there is no
# generation prompt: the prompt already ends with [/INST].
MISTRAL = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('this template knows user and assistant turns only') }}{% endif %}"
    "{% endfor %}"
)

# Gemma: BOS, turns of `user` and `model`, contents trimmed, each turn closed by <end_of_turn> and a newline.
GEMMA = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

# A template whose generation prompt opens an empty thinking block that a finished conversation does not have
# (as some reasoning models' templates do): the prompt alone is not a prefix of prompt + response.
DIVERGING = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}{% endif %}"
)


# Llama-3's pre-tokenizer split (its tokenizer.json's Split regex, the well-known public pattern): newlines stay one
# piece before a word ("\n\nBlue" splits as "\n\n" + "Blue"), which the GPT-2 split of a plain BPE does not do.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# A template whose turns end with a plain newline, no special token (as some small or home-made templates do):
# nothing in the rendered text tells a model to stop, so alignkit ends its responses with EOS where TRL does not.
NEWLINE_TURNS = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    """What a family adds to a byte-level BPE: special tokens, which of them the tokenizer adds on its own, and
    the chat template. `turn_end` is the token that closes an assistant turn (what sampling must stop on)."""

    name: str
    specials: tuple[str, ...]
    eos: str
    bos: str | None = None
    pad: str | None = None
    adds_bos: bool = False          # a post-processor puts BOS before every plain text (Llama-2-like)
    template: str | None = None
    turn_end: str | None = None
    split: str | None = None        # a pre-tokenizer regex replacing the base's GPT-2 split (Llama-3's)
    system: bool = True             # the template accepts a system turn (Mistral's refuses one)


FAMILIES = {
    "chatml": Family("chatml", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), eos="<|endoftext|>",
                     pad="<|endoftext|>", template=QWEN_CHATML, turn_end="<|im_end|>"),
    "llama3": Family("llama3", ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                "<|eot_id|>"), eos="<|eot_id|>", bos="<|begin_of_text|>", adds_bos=True,
                     template=LLAMA3, turn_end="<|eot_id|>", split=LLAMA3_SPLIT),
    "mistral": Family("mistral", ("<unk>", "<s>", "</s>"), eos="</s>", bos="<s>", adds_bos=True, template=MISTRAL,
                      turn_end="</s>", system=False),
    "gemma": Family("gemma", ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"), eos="<eos>",
                    bos="<bos>", pad="<pad>", adds_bos=True, template=GEMMA, turn_end="<end_of_turn>"),
    "plain-bos": Family("plain-bos", ("<unk>", "<s>", "</s>"), eos="</s>", bos="<s>", adds_bos=True),
    "newline-turns": Family("newline-turns", ("<|endoftext|>",), eos="<|endoftext|>", template=NEWLINE_TURNS),
    "diverging": Family("diverging", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), eos="<|im_end|>",
                        template=DIVERGING, turn_end="<|im_end|>"),
}

# Text the fast lane's BPE is trained on: the rows' words, so merges (and merges across a prompt's end) happen.
CORPUS = [
    "What colour is the sky? The sky is blue. The sky is green. It is blue on a clear day.",
    "Name a fruit. An apple. A stone. Apples are fruit; stones are not.",
    "You are a terse assistant. Answer in one word. Yes. No. Maybe.",
    "Q: 2+2? A: 4. A: 5. Four. Five. Hello there! Hi. Bye.",
    "Translate to French: cat. chat. chien. dog. The cat sat on the mat.",
    "  leading and trailing spaces  \n\n new lines\n",
] * 10


def trained_bpe(vocab_size: int = 500):
    """A byte-level BPE (GPT-2 pre-tokenizer, as SmolLM2's) trained on CORPUS: a `tokenizers.Tokenizer`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def bpe_from_folder(folder: str | Path):
    """The `tokenizers.Tokenizer` of a saved transformers folder (e.g. SmolLM2's, converted from its GGUF)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))


def build(base, family: Family, folder: str | Path):
    """`base` with `family`'s special tokens, BOS post-processor and template, saved to `folder` and loaded
    back with AutoTokenizer (as alignkit loads any model's tokenizer)."""
    from tokenizers import AddedToken, Regex, Tokenizer, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer.from_str(base.to_str())  # a copy: the base is shared between families
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in family.specials])
    if family.split:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(family.split), behavior="isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                              use_regex=False)])
    if family.adds_bos:
        bos_id = tok.token_to_id(family.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A:0", pair=f"{family.bos} $A:0 {family.bos}:1 $B:1",
            special_tokens=[(family.bos, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=family.eos, bos_token=family.bos,
                                   pad_token=family.pad, unk_token="<unk>" if "<unk>" in family.specials else None)
    if family.template:
        fast.chat_template = family.template
    folder = Path(folder)
    fast.save_pretrained(folder)
    loaded = AutoTokenizer.from_pretrained(folder)
    return loaded
