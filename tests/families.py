"""Tiny extractive-QA checkpoints of every reader family, built offline, as a new user would.

Each tokenizer is trained on the sample corpus with the ``tokenizers`` library and
wrapped in the family's fast tokenizer class; each model is made from a small
config (hidden 32, 2 layers) with a scaled, seeded QA head, and both are saved as a
Hugging Face folder that ``qasearch model push DIR`` takes. The answers mean
nothing: these models test that the system reads exactly as the pipeline does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import (  # noqa: E402
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from tests.tiny_models import HEAD_SCALE  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "corpus.jsonl"
VOCAB = 1500
MAX_LEN = 512
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64}


def corpus_texts() -> list[str]:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    return [f"{r['title']}\n{r['text']}" for r in rows]


def _pair_template(tok: Tokenizer, cls: str, sep: str) -> None:
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
    )


def wordpiece(lowercase: bool) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus_texts(), trainers.WordPieceTrainer(
        vocab_size=VOCAB, special_tokens=specials))
    _pair_template(tok, "[CLS]", "[SEP]")
    return tok


def byte_level_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(corpus_texts(), trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
        trim_offsets=True, add_prefix_space=False)
    return tok


def unigram(lowercase: bool) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if lowercase:  # ALBERT's: accents stripped (NFKD), lowercased
        steps += [normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    specials = ["[PAD]", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus_texts(), trainers.UnigramTrainer(
        vocab_size=VOCAB, special_tokens=specials, unk_token="<unk>"))
    _pair_template(tok, "[CLS]", "[SEP]")
    return tok


BERT_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
               "cls_token": "[CLS]", "mask_token": "[MASK]"}
UNIGRAM_TOKENS = {**BERT_TOKENS, "unk_token": "<unk>"}


def _fast(cls_name: str, tok: Tokenizer, **kwargs):
    cls = getattr(transformers, cls_name)
    return cls(tokenizer_object=tok, model_max_length=MAX_LEN, **kwargs)


# family -> (tokenizer factory, model class, config factory taking the vocab size)
FAMILIES: dict[str, tuple[Callable, str, Callable[[int], object]]] = {
    "bert-cased": (
        lambda: _fast("BertTokenizerFast", wordpiece(False), do_lower_case=False, **BERT_TOKENS),
        "BertForQuestionAnswering",
        lambda v: transformers.BertConfig(vocab_size=v, **SMALL)),
    "bert-uncased": (
        lambda: _fast("BertTokenizerFast", wordpiece(True), do_lower_case=True, **BERT_TOKENS),
        "BertForQuestionAnswering",
        lambda v: transformers.BertConfig(vocab_size=v, **SMALL)),
    "distilbert-cased": (
        lambda: _fast("DistilBertTokenizerFast", wordpiece(False), do_lower_case=False,
                      **BERT_TOKENS),
        "DistilBertForQuestionAnswering",
        lambda v: transformers.DistilBertConfig(vocab_size=v, dim=32, n_layers=2, n_heads=2,
                                                hidden_dim=64)),
    "distilbert-uncased": (
        lambda: _fast("DistilBertTokenizerFast", wordpiece(True), do_lower_case=True,
                      **BERT_TOKENS),
        "DistilBertForQuestionAnswering",
        lambda v: transformers.DistilBertConfig(vocab_size=v, dim=32, n_layers=2, n_heads=2,
                                                hidden_dim=64)),
    "roberta": (
        lambda: _fast("RobertaTokenizerFast", byte_level_bpe(), bos_token="<s>",
                      eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                      pad_token="<pad>", mask_token="<mask>", add_prefix_space=False,
                      trim_offsets=True),
        "RobertaForQuestionAnswering",
        lambda v: transformers.RobertaConfig(vocab_size=v, max_position_embeddings=MAX_LEN + 2,
                                             pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                             type_vocab_size=1, **SMALL)),
    "albert": (
        lambda: _fast("AlbertTokenizerFast", unigram(True), do_lower_case=True,
                      **UNIGRAM_TOKENS),
        "AlbertForQuestionAnswering",
        lambda v: transformers.AlbertConfig(vocab_size=v, embedding_size=16, pad_token_id=0,
                                            **SMALL)),
    "electra": (
        lambda: _fast("ElectraTokenizerFast", wordpiece(True), do_lower_case=True,
                      **BERT_TOKENS),
        "ElectraForQuestionAnswering",
        lambda v: transformers.ElectraConfig(vocab_size=v, embedding_size=16, **SMALL)),
    "deberta-v3": (
        lambda: _fast("DebertaV2TokenizerFast", unigram(False), do_lower_case=False,
                      **UNIGRAM_TOKENS),
        "DebertaV2ForQuestionAnswering",
        lambda v: transformers.DebertaV2Config(
            vocab_size=v, relative_attention=True, position_buckets=64, max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"], type_vocab_size=0, position_biased_input=False,
            norm_rel_ebd="layer_norm", share_att_key=True, **SMALL)),
}


def tokenizer(family: str):
    """The family's fast tokenizer, trained on the sample corpus."""
    return FAMILIES[family][0]()


def qa_model(family: str, vocab_size: int, seed: int = 0):
    """A randomly initialised QA model of the family (seeded, head scaled)."""
    _, cls_name, config = FAMILIES[family]
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(config(vocab_size)).eval()
    with torch.no_grad():
        model.qa_outputs.weight.mul_(HEAD_SCALE)
    return model


def build(family: str, folder: Path, seed: int = 0) -> tuple[Path, object, object]:
    """Save the family's tiny checkpoint in ``folder``; returns (folder, model, tokenizer)."""
    tok = tokenizer(family)
    model = qa_model(family, len(tok), seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, model, tok
