"""The files that let sentence-transformers load a saved encoder: `SentenceTransformer(str(directory))`
on a directory `TextEncoder.save` wrote embeds texts as `TextEncoder.encode` does (same ids, pooling,
normalisation and prefixes), so results can be reproduced outside this harness.

Written as plain JSON, without sentence-transformers, so saving never needs the `peers` extra. The
layout is the one sentence-transformers v2-v5 saves and v6 still reads (it maps the old class paths and
the `pooling_mode_*` keys onto its own):

    modules.json                        Transformer (model/) -> Pooling (1_Pooling/) -> Normalize (2_Normalize/)
    config_sentence_transformers.json   prompts: query_prefix as "query", passage_prefix as "passage"
                                        and "document" (what encode_document looks for first)
    model/                              the harness's `save_pretrained` output, with beside it:
        tokenizer.json                  the run's tokenizer; a trimmed vocabulary renumbered 0..n-1
        tokenizer_config.json           a PreTrainedTokenizerFast: special tokens, model_max_length
        special_tokens_map.json
        sentence_bert_config.json       max_seq_length = the encoder's max_length
    1_Pooling/config.json               mean over the attention mask, or the first ([CLS]) state
    2_Normalize/                        L2 normalisation (no files)

The harness's own files (encoder.json, the root tokenizer.json with the backend's ids) are untouched,
so `TextEncoder.load` reads the directory exactly as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer

from bench.data.tokenizer import UNK_TOKENS, RunTokenizer

TRANSFORMER_DIR = "model"  # the harness's weights double as the Transformer module: no second copy
POOLING_DIR = "1_Pooling"
NORMALIZE_DIR = "2_Normalize"
# Each role's token: WordPiece ("[PAD]") and SentencePiece ("<pad>") spellings, the first present wins.
SPECIAL_ROLES = {
    "pad_token": ("[PAD]", "<pad>"),
    "unk_token": UNK_TOKENS,
    "cls_token": ("[CLS]", "<s>"),
    "sep_token": ("[SEP]", "</s>"),
    "mask_token": ("[MASK]", "<mask>"),
    "bos_token": ("<s>",),  # SentencePiece vocabularies only, as XLM-R's tokenizer_config has them
    "eos_token": ("</s>",),
}
# Pooling config in the pre-v6 form, which every version reads: one flag per mode.
POOLING_FLAGS = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens"}
OTHER_POOLING_FLAGS = ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                       "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")  # fmt: skip


class ExportableEncoder(Protocol):
    """What is exported of a `bench.evaluation.encode.TextEncoder`, which calls this module from `save`
    (described here, not imported, so the import points one way)."""

    tokenizer: RunTokenizer  # truncating at max_length
    pooling: str
    max_length: int
    pad_id: int

    @property
    def dim(self) -> int: ...


def write_sentence_transformers(encoder: ExportableEncoder, directory: Path) -> Path:
    """Add the sentence-transformers files to an encoder directory (its model/ must already be saved)."""
    directory = Path(directory)
    transformer = directory / TRANSFORMER_DIR
    if not (transformer / "config.json").is_file():
        raise FileNotFoundError(f"{transformer} has no config.json: write the encoder with TextEncoder.save first")
    tokenizer = export_tokenizer(encoder.tokenizer)
    tokenizer.save(str(transformer / "tokenizer.json"))
    special = special_tokens(tokenizer, encoder.pad_id)
    _write_json(transformer / "special_tokens_map.json", special)
    _write_json(transformer / "tokenizer_config.json", {
        # The generic fast class reads tokenizer.json as it is; a model-specific class (BertTokenizerFast,
        # XLMRobertaTokenizerFast) may rebuild the normalizer or template from its own defaults.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": encoder.max_length,
        "padding_side": "right",  # as TextEncoder._pad
        "truncation_side": "right",  # as the backend's enable_truncation
        "clean_up_tokenization_spaces": False,
        **special,
    })  # fmt: skip
    _write_json(transformer / "sentence_bert_config.json", {
        "max_seq_length": encoder.max_length,
        "do_lower_case": False,
        # No pooler, as TextEncoder.load: pooling is the Pooling module's.
        "model_args": {"add_pooling_layer": False},
    })  # fmt: skip
    flags = {POOLING_FLAGS[mode]: mode == encoder.pooling for mode in POOLING_FLAGS}
    _write_json(directory / POOLING_DIR / "config.json", {
        "word_embedding_dimension": encoder.dim,
        **flags,
        **dict.fromkeys(OTHER_POOLING_FLAGS, False),
        # The prefix's tokens are pooled too, as bench.models.encoder.pool pools every unmasked token.
        "include_prompt": True,
    })  # fmt: skip
    (directory / NORMALIZE_DIR).mkdir(exist_ok=True)
    passage = encoder.tokenizer.passage_prefix
    _write_json(directory / "config_sentence_transformers.json", {
        "prompts": {"query": encoder.tokenizer.query_prefix, "passage": passage, "document": passage},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
        "model_type": "SentenceTransformer",
    })  # fmt: skip
    _write_json(directory / "modules.json", [
        {"idx": 0, "name": "0", "path": TRANSFORMER_DIR, "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": NORMALIZE_DIR, "type": "sentence_transformers.models.Normalize"},
    ])  # fmt: skip
    return directory


def export_tokenizer(tokenizer: RunTokenizer) -> Tokenizer:
    """The backend as a standalone tokenizer whose ids are the model's rows: for a trimmed vocabulary
    renumbered like `RunTokenizer.encode`. Padding and truncation are off (the caller's tokenizer sets them)."""
    exported = renumbered(tokenizer) if tokenizer.kept is not None else Tokenizer.from_str(tokenizer.backend.to_str())
    exported.no_padding()
    exported.no_truncation()
    return exported


def renumbered(tokenizer: RunTokenizer) -> Tokenizer:
    """The backend over only the kept ids, kept[i] becoming id i, as `RunTokenizer.encode` maps them.

    For a text the trimmed vocabulary covers, the ids are the harness's: WordPiece's longest match only
    ever used kept pieces and gains no candidate when others go. Unigram's best segmentation also used
    only kept pieces; its one new candidate is the unknown token for a character whose single-character
    piece was dropped, scored 10 below the lowest kept piece: it could win in principle, and did for none
    of the MLQA-R texts tests/evaluation/test_st_export.py checks against a vocabulary trimmed to XQuAD-R. A piece
    outside the vocabulary, which the harness maps to the unknown token, is segmented into kept pieces
    (or the unknown token) here instead."""
    backend, kept = tokenizer.backend, tokenizer.kept
    unk = next((t for t in UNK_TOKENS if backend.token_to_id(t) is not None), None)
    if unk is None or backend.token_to_id(unk) not in kept:
        raise ValueError("a trimmed vocabulary must keep its unknown token (RunTokenizer.trimmed keeps every special token)")
    state = json.loads(backend.to_str())
    model = state["model"]
    pieces = [backend.id_to_token(old) for old in kept]
    if model["type"] == "WordPiece":
        model["vocab"] = {piece: new for new, piece in enumerate(pieces)}
    elif model["type"] == "Unigram":
        # A kept id only the added vocabulary knows (never the case for XLM-R's) gets a placeholder score:
        # added tokens are split off before the model sees the text.
        scores = [score for _, score in model["vocab"]]
        model["vocab"] = [[piece, scores[old] if old < len(scores) else 0.0] for old, piece in zip(kept, pieces)]
        model["unk_id"] = tokenizer.token_id(unk)
    else:
        raise ValueError(f"a trimmed {model['type']} vocabulary cannot be exported (WordPiece and Unigram can)")
    new_id = {old: new for new, old in enumerate(kept)}
    # An added token outside the kept ids is dropped: the harness makes it the unknown token, which
    # cannot be given a second string here.
    state["added_tokens"] = [{**t, "id": new_id[t["id"]]} for t in state["added_tokens"] if t["id"] in new_id]
    state["post_processor"] = _renumber_processor(state["post_processor"], tokenizer)
    state["truncation"] = state["padding"] = None
    return Tokenizer.from_str(json.dumps(state))


def _renumber_processor(processor: dict | None, tokenizer: RunTokenizer) -> dict | None:
    """The template's special token ids as `RunTokenizer.encode` returns them."""
    if processor is None:
        return None
    kind = processor["type"]
    if kind == "Sequence":
        return {**processor, "processors": [_renumber_processor(p, tokenizer) for p in processor["processors"]]}
    if kind == "TemplateProcessing":
        special = {name: {**token, "ids": [tokenizer.token_id(t) for t in token["tokens"]]}
                   for name, token in processor["special_tokens"].items()}  # fmt: skip
        return {**processor, "special_tokens": special}
    if kind in ("BertProcessing", "RobertaProcessing"):  # "sep" and "cls" are [token, id]
        return {**processor, **{key: [processor[key][0], tokenizer.token_id(processor[key][0])] for key in ("sep", "cls")}}
    return processor  # ByteLevel and the like carry no ids


def special_tokens(tokenizer: Tokenizer, pad_id: int) -> dict[str, str]:
    """Each special role's token in this vocabulary; without a pad token, the token of the id the harness pads with."""
    tokens = {role: next((t for t in candidates if tokenizer.token_to_id(t) is not None), None)
              for role, candidates in SPECIAL_ROLES.items()}  # fmt: skip
    if tokens["pad_token"] is None:
        tokens["pad_token"] = tokenizer.id_to_token(pad_id)
    if tokens["cls_token"] == "[CLS]":  # a WordPiece vocabulary: "<s>" would be a word, not a sentence mark
        tokens["bos_token"] = tokens["eos_token"] = None
    return {role: token for role, token in tokens.items() if token is not None}


def _write_json(path: Path, payload: dict | list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
