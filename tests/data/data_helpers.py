"""A tiny byte-level BPE tokenizer with EOS, PAD and a simple chat template, shared by the data tests (a plain module: `conftest` names clash across test folders)."""
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"

# <|user|>Hi\n<|assistant|>Hello\n : the generation prompt is "<|assistant|>", each turn ends with "\n".
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = ["What is 2+2? It is 4. It is 5.", "Name a colour. Blue. Seven.", "Say hi. hi bye hello",
          "Human: Assistant: Capital of France? Paris.", "Write a haiku about rain. Tell me a joke."]


def build_tokenizer(chat_template: str | None = CHAT_TEMPLATE, vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    if chat_template:
        fast.chat_template = chat_template
    return fast


