"""Build what one real LLaMA-Factory training step needs, locally and without downloads: a tiny
random model of the plan's family (built from a config, saved with `save_pretrained`), a small
word-level tokenizer with the chat tokens LLaMA-Factory's template uses, and a 4-sample dataset
in LLaMA-Factory's alpaca format with its `dataset_info.json` (LLaMA-Factory data/README.md).

Runs inside .lfvenv (transformers 5.6, LLaMA-Factory 0.9.5), called by test_one_training_step.py:

    python tiny_llamafactory_run.py MODEL_TYPE MODEL_DIR DATA_DIR DATASET_NAME
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SAMPLES = [
    {"instruction": "name three colours", "input": "", "output": "red green blue"},
    {"instruction": "count to four", "input": "", "output": "one two three four"},
    {"instruction": "say hello", "input": "to the world", "output": "hello world"},
    {"instruction": "what is the opposite of up", "input": "", "output": "down"},
]
# The chat tokens of LLaMA-Factory's qwen/chatml templates (data/template.py), special so that
# they stay whole; the eos and pad tokens as Qwen's tokenizers name them.
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def tokenizer(words: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["[UNK]", *SPECIAL, *sorted(set(words))])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", additional_special_tokens=["<|im_start|>"])
    fast.chat_template = CHATML
    return fast


def tiny_model(model_type: str, tok):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=4096, tie_word_embeddings=False,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    return AutoModelForCausalLM.from_config(config)


def main(model_type: str, model_dir: str, data_dir: str, dataset_name: str) -> None:
    words = [w for sample in SAMPLES for text in sample.values() for w in text.split()]
    words += "system user assistant You are Qwen created by Alibaba Cloud a helpful".split()
    tok = tokenizer(words)
    tok.save_pretrained(model_dir)
    tiny_model(model_type, tok).save_pretrained(model_dir)
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    (data / f"{dataset_name}.json").write_text(json.dumps(SAMPLES, indent=1))
    (data / "dataset_info.json").write_text(json.dumps({dataset_name: {"file_name": f"{dataset_name}.json"}}))


if __name__ == "__main__":
    main(*sys.argv[1:])
