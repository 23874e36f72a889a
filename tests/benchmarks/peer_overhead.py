"""The harness's training step against its peers, on the same model and the same batches, in one process.

    python tests/benchmarks/peer_overhead.py --rounds 20 --steps 5 --out results/benchmarks/peer_overhead.txt  # tiny
    python tests/benchmarks/peer_overhead.py --rounds 10 --steps 3 model=me5-small model.freeze_embeddings=true

Three trainers run the same sequence of batches, interleaved round by round in a shuffled order so
drift of the machine spreads over all three:
  harness  the run's own step: collation from pre-tokenised ids, accelerate's autocast and backward,
           the step timer's phase marks (bench.training.loop.train_step);
  bare     a plain PyTorch loop over the same already-collated tensors: forward, backward, step, zero_grad;
  st       sentence-transformers' MultipleNegativesRankingLoss (scale = 1 / temperature) on the same
           encoder weights and pooling, tokenising each batch's texts as it normally does.
Each has its own copy of the model (same initial weights) and its own AdamW. Prints the median time
per step of each and the median of the per-round ratios harness/bare and harness/st, with their
interquartile ranges; `--out` writes those lines and their provenance sidecar (`<file>.provenance.json`,
the machine's calibration measured before the rounds). Requires sentence-transformers (pip install -e ".[peers]").
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from accelerate import Accelerator  # noqa: E402

from bench.config import plan_runs  # noqa: E402
from bench.measure.evidence import Transcript, command_line, evidence_header, write_evidence  # noqa: E402
from bench.measure.timing import StepTimer  # noqa: E402
from bench.stages import build_objective, build_optimizer, make_collate, plan_batches, prepare_data  # noqa: E402
from bench.training.loop import train_step  # noqa: E402


def sentence_transformer(objective, tokenizer, pooling: str, max_length: int):
    """The same encoder weights as a SentenceTransformer (Transformer + Pooling modules)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import PreTrainedTokenizerFast

    directory = Path(tempfile.mkdtemp(prefix="peer-st-"))
    copy.deepcopy(objective.encoder).save_pretrained(directory)
    special = {k: v for k, v in (("pad_token", "[PAD]"), ("unk_token", "[UNK]"), ("cls_token", "[CLS]"), ("sep_token", "[SEP]"),
                                  ("mask_token", "[MASK]")) if tokenizer.backend.token_to_id(v) is not None}  # fmt: skip
    if not special:  # SentencePiece vocabularies (XLM-R, mE5)
        special = {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}
    PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend, model_max_length=max_length, **special).save_pretrained(directory)
    transformer = modules.Transformer(str(directory), max_seq_length=max_length)
    pool = modules.Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)
    return SentenceTransformer(modules=[transformer, pool], device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="run overrides (model=..., train.batch_size=...)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5, help="steps per trainer per round")
    parser.add_argument("--out", type=Path, help="write the results here (and their provenance sidecar)")
    args = parser.parse_args()
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    (planned,) = plan_runs("config", ["strategy=crosslingual", "languages=2", "eval=none", "train.budget=fixed",
                                      f"train.steps={args.steps}", *args.overrides], sweep=False)  # fmt: skip
    cfg = planned.config
    torch.set_num_threads(cfg.train.threads)
    header = evidence_header(command_line(), cfg.train.threads)
    prepared = prepare_data(cfg)
    plan = plan_batches(cfg, prepared.pairs)
    collate = make_collate(cfg, prepared)
    texts = [([cfg.model.query_prefix + prepared.pairs.queries[(r.group, r.query_lang)] for r in refs],
              [cfg.model.passage_prefix + prepared.pairs.passages[(r.group, r.passage_lang)] for r in refs]) for refs in plan]  # fmt: skip

    harness = build_objective(cfg, prepared)
    bare = copy.deepcopy(harness)
    st_model = sentence_transformer(harness, prepared.tokenizer, cfg.model.pooling, cfg.train.max_length)
    st_loss = MultipleNegativesRankingLoss(st_model, scale=1.0 / cfg.strategy.temperature)
    accelerator = Accelerator(cpu=True)
    optimizers = {"harness": build_optimizer(cfg, harness), "bare": build_optimizer(cfg, bare),
                  "st": torch.optim.AdamW([p for p in st_model.parameters() if p.requires_grad], lr=cfg.train.lr,
                                          weight_decay=cfg.train.weight_decay)}  # fmt: skip
    collated = [collate(step, refs).inputs for step, refs in enumerate(plan)]
    for module in (harness, bare, st_model):
        module.train()

    def run_harness() -> None:
        timer = StepTimer(torch.device("cpu"))
        for step, refs in enumerate(plan):
            with timer.step(measured=True):
                with timer.phase("data"):
                    batch = collate(step, refs)
                train_step(harness, optimizers["harness"], accelerator, batch, timer)

    def run_bare() -> None:
        for inputs in collated:
            loss = bare(**inputs)
            loss.backward()
            optimizers["bare"].step()
            optimizers["bare"].zero_grad(set_to_none=True)

    def run_st() -> None:
        for queries, passages in texts:
            features = [st_model.preprocess(queries), st_model.preprocess(passages)]
            loss = st_loss(features, None)
            loss.backward()
            optimizers["st"].step()
            optimizers["st"].zero_grad(set_to_none=True)

    trainers = {"harness": run_harness, "bare": run_bare, "st": run_st}
    for run in trainers.values():  # warm-up: allocator, thread pools, first-call paths
        run()
    seconds: dict[str, list[float]] = {name: [] for name in trainers}
    order = list(trainers)
    rng = random.Random(0)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            trainers[name]()
            seconds[name].append((time.perf_counter() - started) / args.steps)

    def quartiles(values: list[float]) -> str:
        q = statistics.quantiles(values, n=4)
        return f"{statistics.median(values):.4f} (IQR {q[0]:.4f}-{q[2]:.4f})"

    say = Transcript()
    say(f"model={cfg.model.name}, batch {cfg.train.batch_size}, max_length {cfg.train.max_length}, "
        f"{cfg.train.threads} threads, {args.rounds} rounds x {args.steps} steps; {header['cpu_model']}; "
        f"calibration {header['calibration']['matmul_gflops']} GFLOP/s before the rounds")  # fmt: skip
    for name in trainers:
        say(f"  {name:8s} s/step: {quartiles(seconds[name])}")
    for rival in ("bare", "st"):
        ratios = [h / r for h, r in zip(seconds["harness"], seconds[rival])]
        say(f"  harness / {rival:5s}: median {quartiles(ratios)}")
    if args.out:
        write_evidence(args.out, say.text, header)


if __name__ == "__main__":
    main()
