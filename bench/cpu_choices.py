"""The classify service's automatic choices, measured on each kind of CPU this machine can run as.

    .venv/bin/python bench/cpu_choices.py [--kinds native,avx512-bf16,avx512,avx2] [--articles 128] [--rounds 3]

For each kind the service's own classifier (``load_classifier``, the shipped default model, its batch size) runs in
each precision and compile mode as one call of a thread per core (``CLASSIFY_WORKERS=1``), then as the service runs
it (its automatic choices, each batch's shares in as many calls at once as its plan says), plus the plain transformers
loop a user would write (fp32, batches of 32, one 256-token window), in alternating rounds in one process, and the
table prints the median rate and CPU milliseconds per article of each, side by side, with what ``auto`` picks there.

A kind is this CPU with its instruction sets capped, as a machine without them runs: ``avx2`` caps ATen, oneDNN and
MKL to AVX2 (no AVX-512, no bf16 instructions, as on the 2-core AVX2-only machine of issue #15); ``avx512-bf16``
caps oneDNN below AMX (bf16 by AVX512-BF16's instructions, as on a CPU without AMX); ``avx512`` keeps AVX-512 but
hides bf16 from oneDNN and from the service's choice; ``native`` is the CPU as it is. The caps are the libraries' own
switches (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``); torch.compile reads
``ATEN_CPU_CAPABILITY`` too, so the compiled kernels are the ones that CPU would get.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import articles_of, table

KINDS = {
    "native": {},
    # oneDNN's level below AMX: bf16 matrix products by AVX512-BF16's dot-product instructions, as on a CPU with
    # AVX512-BF16 and no AMX (Cooper Lake, AMD Zen 4 and 5).
    "avx512-bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
    "avx512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def measure(kind: str, count: int, rounds: int) -> list[dict[str, object]]:
    """Runs in the child process whose environment caps the CPU: every configuration, in alternating rounds."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from newsflow_classify.loader import load_classifier, worker_plan
    from newsflow_classify.model import Runtime, can_compile, compiles, cpu_has_bf16, resolve_model_path
    from newsflow_classify.settings import ClassifySettings
    from newsflow_classify.workers import TORCH_DEFAULT_THREADS, BatchWorkers

    service = ClassifySettings()
    path = resolve_model_path(service.classify_model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = articles_of(count, 256, tokenizer)
    batch = service.batch_max_records

    plain_model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()

    @torch.inference_mode()
    def plain(chunk: list[str]) -> None:
        encoded = tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = plain_model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1)
        (hidden * mask).sum(1) / mask.sum(1)

    cores = TORCH_DEFAULT_THREADS
    # label -> (classify, batch, torch threads of the calling thread). torch's thread count is the process's: each
    # run sets its own before it is timed, and each model is loaded (and compiled) under its own.
    runs: dict[str, tuple[Callable[[list[str]], object], int, int]] = {
        "plain transformers loop, fp32, batch 32, one window of 256": (plain, 32, cores)
    }
    auto = Runtime.choose("cpu", "auto")
    picked_precision = "bf16" if auto.dtype == torch.bfloat16 else "fp32"
    picked_compile = ClassifySettings().classify_compile
    # bf16 without bf16 instructions is emulated, ~100x slower: not worth minutes of the run.
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    for precision in precisions:
        for compile_mode in ("off", "on") if can_compile(torch.device("cpu")) else ("off",):
            # One call of a thread per core on the whole batch (CLASSIFY_WORKERS=1), as the first sessions measured.
            settings = ClassifySettings(classify_precision=precision, classify_compile=compile_mode, classify_workers=1)  # type: ignore[arg-type]
            classifier = load_classifier(settings)
            classifier.embedder.wait_compiled()  # type: ignore[attr-defined]
            label = f"service classifier, {precision}, " + ("torch.compile" if compile_mode == "on" else "eager")
            runs[label] = (classifier.classify, batch, cores)
    # What the service runs here: its automatic precision and compilation, its batch's shares in as many calls at once
    # as its plan says (CLASSIFY_WORKERS=0).
    settings = ClassifySettings()
    plan = worker_plan(settings)
    classifier = load_classifier(settings, plan)
    classifier.embedder.wait_compiled()  # type: ignore[attr-defined]
    label = f"the service as it runs: auto, {plan.workers} call(s) at once of {plan.threads_each} thread(s)"
    runs[label] = (BatchWorkers(classifier.classify, plan.workers), batch, plan.threads_each)
    if compiles(settings.classify_compile, Runtime.choose("cpu", settings.classify_precision)):
        # The same calls with the eager model: what compiling gains in the way the service runs, on this kind.
        eager = ClassifySettings(classify_compile="off")
        eager_classifier = load_classifier(eager, worker_plan(eager))
        runs["the service as it runs, but eager (CLASSIFY_COMPILE=off)"] = (
            BatchWorkers(eager_classifier.classify, plan.workers),
            batch,
            plan.threads_each,
        )
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in runs}
    for function, size, threads in runs.values():
        torch.set_num_threads(threads)
        function(texts[:size])  # warm up every shape once
    for _ in range(rounds):
        for label, (function, size, threads) in runs.items():
            torch.set_num_threads(threads)
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, count, size):
                function(texts[start : start + size])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            results[label].append((count / wall, cpu * 1000 / count))
    rows = [
        {
            "label": label,
            "rate": statistics.median(r for r, _ in samples),
            "cpu_ms": statistics.median(c for _, c in samples),
            "spread": f"{min(r for r, _ in samples):.1f}-{max(r for r, _ in samples):.1f}",
        }
        for label, samples in results.items()
    ]
    rows.append(
        {
            "label": "auto picks",
            "pick": f"{picked_precision}, compile {picked_compile} -> "
            + ("compiled" if compiles(picked_compile, auto) else "eager"),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": cores,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="native,avx512-bf16,avx512,avx2")
    parser.add_argument("--articles", type=int, default=128, help="articles per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.articles, args.rounds)))
        return
    kinds = args.kinds.split(",")
    found: dict[str, list[dict[str, object]]] = {}
    for kind in kinds:
        env = {**os.environ, **KINDS[kind]}
        argv = [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--articles",
            str(args.articles),
            "--rounds",
            str(args.rounds),
        ]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{kind}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        found[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    labels = list(dict.fromkeys(row["label"] for rows in found.values() for row in rows if "rate" in row))
    rows = []
    for label in labels:
        cells = [str(label)]
        for found_rows in found.values():
            row = next((r for r in found_rows if r["label"] == label), None)
            cells.append(f"{row['rate']:.1f} ({row['spread']}), {row['cpu_ms']:.0f}" if row else "-")
        rows.append(cells)
    picks = ["auto picks"]
    for found_rows in found.values():
        pick = next(r for r in found_rows if r["label"] == "auto picks")
        picks.append(f"{pick['pick']} ({pick['capability']}, {pick['threads']} threads)")
    rows.append(picks)
    table(
        f"Articles/s and CPU ms per article (median of {args.rounds} rounds of {args.articles}; range of rates)",
        ["configuration", *(f"{kind}: /s, CPU ms" for kind in found)],
        rows,
    )


if __name__ == "__main__":
    main()
