"""Threads under a competing load: CPU seconds of one piece of e2wm work, quiet and beside busy processes, with
torch's OpenMP threads spinning while they wait (the default: OMP_WAIT_POLICY unset) and sleeping
(OMP_WAIT_POLICY=PASSIVE, what the `e2wm` command sets).

On a machine whose cores other jobs keep busy, a spinning thread burns its time slice waiting at a barrier for
a thread that is not running; the CPU time of the same work grows many times (a `make demo` under load 5-7 took
56 min of CPU against 18 quiet). The work here is a few LoRA-free training steps of a small random Llama
(forward + backward, as `e2wm train` runs them) in a fresh process; the load is N processes that spin in
Python. Printed: CPU and wall seconds of each way (spinning, passive, passive with one thread), quiet and
loaded, the ratio loaded/quiet, and passive's wall time against spinning's.

    python benchmarks/load_threads.py [--load 6] [--steps 6] [--threads 2]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

WORK = r"""
import sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
config = LlamaConfig(vocab_size=4096, hidden_size=512, intermediate_size=1408, num_hidden_layers=6,
                     num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=512)
model = LlamaForCausalLM(config)
ids = torch.randint(0, 4096, (4, 256))
optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
for _ in range(int(sys.argv[1])):
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimiser.step()
    optimiser.zero_grad()
"""


def run_work(steps: int, threads: int, policy: str | None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the work in a fresh process with the given OpenMP wait policy."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["OMP_NUM_THREADS"] = str(threads)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", WORK, str(steps)], env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=6, help="competing busy processes")
    parser.add_argument("--steps", type=int, default=6, help="training steps of the work")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the work")
    args = parser.parse_args()
    # (label, wait policy, threads): the naive way (OpenMP's default, spinning), e2wm's, and one thread
    ways = [("spinning", None, args.threads), ("passive", "PASSIVE", args.threads), ("passive-1", "PASSIVE", 1)]
    results = {}
    for loaded in (False, True):
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load * loaded)]
        try:
            for label, policy, threads in ways:
                cpu, wall = run_work(args.steps, threads, policy)
                results[(label, loaded)] = (cpu, wall)
                print(f"{label:9s} {'loaded' if loaded else 'quiet ':6s}: {cpu:7.1f} s CPU {wall:7.1f} s wall",
                      flush=True)
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
    summary = {}
    for label, _, _ in ways:
        (quiet_cpu, quiet_wall), (loaded_cpu, loaded_wall) = results[(label, False)], results[(label, True)]
        summary[label] = {"quiet_cpu_s": round(quiet_cpu, 1), "loaded_cpu_s": round(loaded_cpu, 1),
                          "cpu_ratio": round(loaded_cpu / quiet_cpu, 2), "quiet_wall_s": round(quiet_wall, 1),
                          "loaded_wall_s": round(loaded_wall, 1)}
        print(f"{label}: CPU loaded/quiet {loaded_cpu / quiet_cpu:.2f}x; wall {loaded_wall / quiet_wall:.2f}x")
    for loaded in (False, True):
        ratio = results[("passive", loaded)][1] / results[("spinning", loaded)][1]
        print(f"{'loaded' if loaded else 'quiet'}: passive's wall time against spinning's {ratio:.2f}x")
    print(json.dumps({"threads": args.threads, "load": args.load, "steps": args.steps, "cpus": os.cpu_count(),
                      "results": summary}))


if __name__ == "__main__":
    main()
