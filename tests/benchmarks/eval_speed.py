"""How long the full XQuAD-R evaluation takes for the default model (target: <= 15 s, <= 4 GiB RSS, 2 threads).

The workload is every LAReQA setting of all of XQuAD-R (11 languages, 13,090 questions,
13,014 candidates: 11 mono pools, 110 cross pairs and the 13,090 x 13,014 multilingual
pool), encoding included, with the `tiny` preset: a random-init BertModel (hidden 128,
2 layers, 2 heads, intermediate 512, vocabulary 16,000) truncating at 128 tokens. Weights
do not change the cost, so random init measures what a trained model would. Setup (data,
a 16k WordPiece vocabulary trained on XQuAD-R and cached, the model) is not timed; each
repeat times `bench.evaluation.retrieval.evaluate` end to end, and the encode / rank split is timed
separately once. The load average is printed: the machine may be shared, and a busy
neighbour inflates every figure.

    python tests/benchmarks/eval_speed.py --repeats 3 --out results/benchmarks/eval_speed.txt
    python tests/benchmarks/eval_speed.py --lexical   # the lexical baseline on XQuAD-R and MLQA-R

`--out` writes the printed lines and their provenance sidecar (`<file>.provenance.json`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a checkout, installed or not

from bench.evaluation.encode import TextEncoder  # noqa: E402
from bench.evaluation.lexical import LexicalEncoder  # noqa: E402
from bench.measure.evidence import Transcript, command_line, evidence_header, write_evidence  # noqa: E402
from bench.measure.memory import peak_rss_bytes, reset_peak_rss  # noqa: E402
from bench.config import plan_runs  # noqa: E402
from bench.evaluation.retrieval import encode_set, evaluate, rank_set  # noqa: E402
from bench.evaluation.sets import EvalSet  # noqa: E402
from bench.stages import load_eval_sets  # noqa: E402
from bench.data.tokenizer import RunTokenizer, cached_wordpiece  # noqa: E402

TARGET_S = 15.0
TARGET_RSS_BYTES = 4 * 2**30


def default_encoder(dataset) -> TextEncoder:
    texts = [t for d in dataset.by_lang.values() for t in [q.text for q in d.questions] + [c.text for c in d.candidates]]
    tokenizer = RunTokenizer(cached_wordpiece(texts, vocab_size=16000, min_frequency=2, cache_dir=".cache/tokenizers"),
                             "wordpiece-eval-speed")  # the encoder tokenises through a run's tokenizer
    torch.manual_seed(0)
    config = BertConfig(vocab_size=16000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512, max_position_embeddings=512)
    return TextEncoder(BertModel(config, add_pooling_layer=False), tokenizer, "cls", 128)


def load_eval_set(name: str) -> EvalSet:
    """All of XQuAD-R (the default data's set `all`, named xquad-r) or an external set such as mlqa-r, as a run's
    evaluation builds it from conf/ (the function this script once imported moved into the run's stages)."""
    (planned,) = plan_runs("config", ["eval.sets=[all]" if name == "xquad-r" else f"eval.sets=[{name}]"], sweep=False)
    (eval_set,) = load_eval_sets(planned.config, every_run=True)
    return eval_set


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def time_default(repeats: int, batch_size: int, query_chunk: int, say: Transcript) -> None:
    eval_set = load_eval_set("xquad-r")
    encoder = default_encoder(eval_set.dataset)
    say(f"XQuAD-R: {eval_set.dataset.n_questions()} questions x {eval_set.dataset.n_candidates()} candidates, "
        f"{len(eval_set.dataset.languages)} languages; threads={torch.get_num_threads()}")
    rss_reset = reset_peak_rss()
    samples = []
    for repeat in range(repeats):
        start = time.perf_counter()
        result = evaluate(encoder, [eval_set], batch_size=batch_size, query_chunk=query_chunk)
        samples.append(time.perf_counter() - start)
        say(f"  repeat {repeat}: {samples[-1]:.2f} s  (load average {load()})")
    start = time.perf_counter()
    encoded = encode_set(encoder, eval_set.dataset, batch_size)
    encode_s = time.perf_counter() - start
    rank_set(encoded, query_chunk)
    rank_s = time.perf_counter() - start - encode_s
    rss = peak_rss_bytes(include_children=False)
    say(f"evaluate: min {min(samples):.2f} s, median {statistics.median(samples):.2f} s (target <= {TARGET_S:.0f} s)")
    say(f"  split of one more pass: encode {encode_s:.2f} s, rank all settings {rank_s:.2f} s")
    say(f"peak RSS {'since setup' if rss_reset else 'of the process'}: {rss / 2**30:.2f} GiB (target <= 4 GiB)")
    say(summary_line(result.summaries["xquad-r"]))
    if min(samples) > TARGET_S or rss > TARGET_RSS_BYTES:
        say("TARGET MISSED" + (f" (load average {load()}: the machine is busy)" if os.getloadavg()[0] > 1.5 else ""))


def summary_line(summary: dict) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in summary.items() if v is not None)


def lexical_numbers(batch_size: int, query_chunk: int, say: Transcript) -> None:
    for name in ("xquad-r", "mlqa-r"):
        start = time.perf_counter()
        result = evaluate(LexicalEncoder(), [load_eval_set(name)], batch_size=batch_size, query_chunk=query_chunk)
        say(f"lexical {name} ({time.perf_counter() - start:.1f} s): {summary_line(result.summaries[name])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--query-chunk", type=int, default=1024)
    parser.add_argument("--lexical", action="store_true", help="report the lexical baseline instead of timing")
    parser.add_argument("--out", type=Path, help="write the results here (and their provenance sidecar)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header = evidence_header(command_line(), args.threads)  # calibrated before anything is timed
    say = Transcript()
    if args.lexical:
        lexical_numbers(args.batch_size, args.query_chunk, say)
    else:
        time_default(args.repeats, args.batch_size, args.query_chunk, say)
    if args.out:
        write_evidence(args.out, say.text, header)


if __name__ == "__main__":
    main()
