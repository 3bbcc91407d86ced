"""What ``qasearch model push`` refuses, before anything is stored, and why.

A reader is served only if the system can read exactly as the Hugging Face QA
pipeline does with it: an extractive-QA model (start and end logits over the
input tokens), a fast tokenizer that gives character offsets and word ids (the
pipeline widens answers to the tokenizer's words), padding on the right, and a
TorchScript trace that computes what the eager model computes. Each refusal is a
:class:`PushRefused` naming what is wrong.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

import torch
from torch import nn

TRACE_SHAPE = (2, 128)
CHECK_SHAPES = ((3, 77), (1, 200))
TRACE_TOLERANCE = 1e-4
SAMPLE_QUESTION = "Who wrote it?"
SAMPLE_PASSAGE = "In 1796, Edward Jenner's cow-pox work (3,000 cases) made vaccines possible."

# Heads that make a checkpoint something other than extractive QA.
CLASSIFIER_HEADS = ("ForSequenceClassification", "ForTokenClassification",
                    "ForMultipleChoice", "ForNextSentencePrediction")
GENERATIVE_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


class PushRefused(Exception):
    """The model cannot be packaged; the message says why and what to do."""


def check_checkpoint(config, source: str) -> None:
    """Refuse a checkpoint that is not an encoder for extractive QA (from its config)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = list(getattr(config, "architectures", None) or [])
    what = f"{source!r} ({', '.join(architectures) or config.model_type})"
    if getattr(config, "is_encoder_decoder", False):
        raise PushRefused(
            f"{what} is a sequence-to-sequence model: it generates answers, it does not "
            "point at them. The reader must be an extractive-QA checkpoint "
            "(…ForQuestionAnswering, e.g. distilbert-base-cased-distilled-squad).")
    if any(a.endswith(GENERATIVE_HEADS) for a in architectures) or (
        config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    ):
        raise PushRefused(
            f"{what} is a causal (generative) language model, not an extractive-QA "
            "reader. Push a …ForQuestionAnswering checkpoint.")
    classifier = [a for a in architectures if a.endswith(CLASSIFIER_HEADS)]
    if classifier:
        raise PushRefused(
            f"{what} is a classifier ({classifier[0]}): its head scores labels, not "
            "answer spans. Push a …ForQuestionAnswering checkpoint.")


def check_tokenizer(tokenizer, source: str) -> None:
    """Refuse a tokenizer the reader cannot reproduce the pipeline with."""
    if not getattr(tokenizer, "is_fast", False):
        raise PushRefused(
            f"{source!r} has no fast tokenizer (tokenizer.json): its "
            f"{type(tokenizer).__name__} gives no character offsets or word ids, which "
            "the reader needs to map answers back to the passage")
    if tokenizer.padding_side != "right":
        raise PushRefused(f"{source!r} pads on the left; only right-padding readers work")
    enc = tokenizer(SAMPLE_QUESTION, SAMPLE_PASSAGE, return_offsets_mapping=True)
    passage = [i for i, s in enumerate(enc.sequence_ids()) if s == 1]
    if not passage:
        raise PushRefused(f"{source!r}: its tokenizer does not encode a (question, passage) pair")
    offsets = [enc["offset_mapping"][i] for i in passage]
    ok = all(0 <= a <= b <= len(SAMPLE_PASSAGE) for a, b in offsets) and any(
        b > a for a, b in offsets)
    if not ok:
        raise PushRefused(
            f"{source!r}: its tokenizer gives no usable character offsets for the passage "
            f"({offsets[:5]}...), so answers could not be cut from the text")
    if any(enc.word_ids()[i] is None for i in passage):
        raise PushRefused(
            f"{source!r}: its tokenizer gives no word ids for passage tokens, so answers "
            "could not be widened to words as the pipeline widens them")


class _NoLossTypeLine(logging.Filter):
    # Tracing reads every attribute of the model's inner encoder (a PreTrainedModel
    # whose class names no head), and reading ``loss_function`` there makes
    # transformers say it will use a causal-LM loss. No loss is ever computed here.
    def filter(self, record: logging.LogRecord) -> bool:
        return "`loss_type=" not in record.getMessage()


@contextlib.contextmanager
def no_loss_type_line() -> Iterator[None]:
    """Silence transformers' misleading ``loss_type=None ... ForCausalLMLoss`` line."""
    logger = logging.getLogger("transformers.modeling_utils")
    quiet = _NoLossTypeLine()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def example_inputs(vocab_size: int, batch: int, length: int, pad_id: int,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random ids with ragged right padding (row 0 full) and a 0/1 type split."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(low=min(1000, vocab_size - 1), high=vocab_size, size=(batch, length),
                        generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    types = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        real = length if row == 0 else int(torch.randint(length // 2, length + 1, (1,),
                                                         generator=gen))
        mask[row, real:] = 0
        ids[row, real:] = pad_id
        types[row, real // 3 : real] = 1
    return ids, mask, types


def trace_checked(module: nn.Module, vocab_size: int, pad_id: int,
                  what: str) -> tuple[torch.jit.ScriptModule, float]:
    """Trace ``module`` and compare it with eager on other shapes; refuse a bad trace."""
    module.eval()
    with torch.no_grad(), warnings.catch_warnings(), no_loss_type_line():
        # The tracer warns about every Python-level branch it freezes; the
        # comparison below is what decides whether the trace is sound.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(
                module, example_inputs(vocab_size, *TRACE_SHAPE, pad_id, seed=1),
                strict=False, check_trace=False,
            )
            worst = 0.0
            for i, (batch, length) in enumerate(CHECK_SHAPES):
                inputs = example_inputs(vocab_size, batch, length, pad_id, seed=2 + i)
                eager, script = module(*inputs), traced(*inputs)
                eager = eager if isinstance(eager, tuple) else (eager,)
                script = script if isinstance(script, tuple) else (script,)
                for e, s in zip(eager, script):
                    worst = max(worst, float((e - s).abs().max()))
        except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
            raise PushRefused(
                f"the {what} does not trace to TorchScript ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); it cannot be served"
            ) from None
    if not worst < TRACE_TOLERANCE:
        raise PushRefused(
            f"refusing the traced {what}: it differs from the eager model by {worst:.2e} "
            f"(> {TRACE_TOLERANCE}) on another batch size / length"
        )
    return traced, worst
