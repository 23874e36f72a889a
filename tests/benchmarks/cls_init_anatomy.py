"""At init, what the [CLS] state is made of (attention and FFN contributions against the residual), CLS vs mean pooling.

    python tests/benchmarks/cls_init_anatomy.py [overrides...]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import torch
from torch.nn import functional as F

from bench.config import plan_runs
from bench.stages import build_objective, make_collate, plan_batches, prepare_data

torch.set_num_threads(2)
cfg = plan_runs("config", ["strategy=crosslingual", "languages=2", "eval=none", "model.pooling=cls", "model.dropout=0.1", *sys.argv[1:]], sweep=False)[0].config
prep = prepare_data(cfg)
batch = make_collate(cfg, prep)(0, plan_batches(cfg, prep.pairs)[0])
enc = build_objective(cfg, prep).encoder.eval()
ids, mask = batch.inputs["query_ids"], batch.inputs["query_mask"]
print(f"initializer_range={enc.config.initializer_range}, hidden={enc.config.hidden_size}, tokens/text mean={mask.sum(1).float().mean():.1f}")
captured = {}
hooks = []
for i, layer in enumerate(enc.encoder.layer):
    hooks.append(layer.attention.output.dense.register_forward_hook(lambda m, a, o, i=i: captured.__setitem__(f"attn{i}", o.detach())))
    hooks.append(layer.output.dense.register_forward_hook(lambda m, a, o, i=i: captured.__setitem__(f"ffn{i}", o.detach())))
with torch.no_grad():
    out = enc(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=False)
hs = out.hidden_states


def spread(x):  # per-text deviation from the batch mean, relative to the mean's norm
    m = x.mean(0, keepdim=True)
    return float((x - m).norm(dim=-1).mean() / m.norm())


for i in range(len(enc.encoder.layer)):
    res = hs[i][:, 0]
    a = captured[f"attn{i}"][:, 0]
    f = captured[f"ffn{i}"][:, 0]
    print(f"layer {i}: |residual in| {res.norm(dim=-1).mean():.2f}  |attn out| {a.norm(dim=-1).mean():.3f}  "
          f"text-specific part of attn out {(a - a.mean(0)).norm(dim=-1).mean():.3f}  |ffn out| {f.norm(dim=-1).mean():.3f}  "
          f"text-specific part of ffn out {(f - f.mean(0)).norm(dim=-1).mean():.3f}")
cls = hs[-1][:, 0]
w = mask.unsqueeze(-1).float()
mean = (hs[-1] * w).sum(1) / w.sum(1)
emb = hs[0]
emb_mean = (emb * w).sum(1) / w.sum(1)
off = ~torch.eye(len(ids), dtype=torch.bool)
for name, x in (("CLS final", cls), ("mean final", mean), ("CLS embedding-layer output", emb[:, 0]), ("mean of embedding-layer outputs", emb_mean)):
    n = F.normalize(x, dim=-1)
    print(f"{name:34s} mean pairwise cos {float((n @ n.T)[off].mean()):.5f}  rel spread {spread(x):.4f}")
# How much of the embedding-layer output is shared: token-type and position-0 vs word embedding
E = enc.embeddings
print("norms of raw embeddings (pre-LN): word[CLS] %.3f  pos[0] %.3f  type[0] %.3f  avg word %.3f" % (
    E.word_embeddings.weight[ids[0, 0]].norm(), E.position_embeddings.weight[0].norm(), E.token_type_embeddings.weight[0].norm(),
    E.word_embeddings.weight[ids[mask.bool()]].norm(dim=-1).mean()))
