"""The one module that decides where work runs: devices, thread budgets, Ray actor options and bundles.

Nothing else in pgkd names a device or a GPU count; logic modules take the device this module picks.
"""
from __future__ import annotations

import os

from pgkd.cluster.cpu import preload_libraries, teacher_dtype


def torch_device(gpus: float) -> str:
    """The device a student or evaluator should use given the GPUs it was granted."""
    import torch

    if gpus > 0 and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def cpu_device() -> str:
    return "cpu"


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def set_thread_budget(threads: int) -> None:
    """Fix this process's compute threads: on a small machine the actors share cores, and oversubscribed
    torch or OpenMP threads collapse throughput (measured: 2 threads beside a busy process ran 30x slower)."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def thread_env(threads: int) -> dict[str, str]:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}


def actor_options(name: str, namespace: str, threads: int, gpus: float = 0, extra_env: dict | None = None,
                  lifetime_detached: bool = False, resources: dict[str, float] | None = None,
                  max_restarts: int = 0) -> dict:
    """Ray options for one named actor: logical CPUs = its thread budget, GPUs as configured, plus the custom
    resources of its node pool (e.g. {"pgkd_teacher_gpu": 1}), so teachers and students never share GPU nodes."""
    env = thread_env(threads) | (extra_env or {})
    options = {"name": name, "namespace": namespace, "num_cpus": threads, "num_gpus": gpus,
               "runtime_env": {"env_vars": env}, "max_concurrency": 4}
    if resources:
        options["resources"] = dict(resources)
    if max_restarts:  # a restarted actor re-runs run(): it resumes from Redis and its last checkpoint
        options |= {"max_restarts": max_restarts, "max_task_retries": -1}
    if lifetime_detached:
        options["lifetime"] = "detached"
    return options


def scoring_options(threads: int, gpus: float) -> dict:
    """Ray resources of one pool-scoring actor (Ray Data map_batches): a student's own threads and GPUs, and the
    same thread budget in its environment."""
    return {"num_cpus": threads, "num_gpus": gpus, "runtime_env": {"env_vars": thread_env(threads)}}


def vllm_block_size() -> int | None:
    """KV-cache block size for the teacher engine. vLLM's CPU build defaults to 128-token blocks, and only full
    blocks are shared by the prefix cache, so prompts that share a 60-token template never hit it; 32 does.
    None on GPU keeps vLLM's default."""
    return None if has_gpu() else 32


def teacher_env(preload: bool = True, threads: int = 1) -> dict[str, str]:
    """vLLM settings for a teacher actor. On CPU, with threads 1, vLLM binds its OpenMP threads itself (every core
    but one, kept for the rest of the machine); threads N > 1 binds them to cores 0..N-1 and keeps none (measured
    on 2 cores: 92 against 49 completion tokens/s with nothing else running). With preload, tcmalloc and Intel
    OpenMP found in this Python's lib/ or the system's go into LD_PRELOAD (the teacher's process starts with it,
    and vLLM's engine processes inherit it)."""
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false"}
    cores = min(threads, os.cpu_count() or 1)
    if cores > 1 and not has_gpu():
        env |= {"VLLM_CPU_OMP_THREADS_BIND": f"0-{cores - 1}", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    libraries = preload_libraries(library_folders()) if preload and not has_gpu() else []
    if libraries:
        env["LD_PRELOAD"] = ":".join(libraries + [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p])
    return env


def library_folders() -> list[str]:
    import sys

    return [os.path.join(sys.prefix, "lib"), "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib"]


def engine_process(requested: str) -> str:
    """Where a vLLM engine core runs: 'auto' is in the replica's process on a CPU (measured: engine ready in 12 s
    against 32 s with vLLM's engine and worker processes, the same completions), vLLM's own processes on a GPU."""
    if requested != "auto":
        return requested
    return "separate" if has_gpu() else "in_process"


def engine_on_this_node(settings):
    """A teacher's engine settings as this node runs them: dtype "auto" becomes what its CPU (or GPU) runs
    fastest, engine_process "auto" where it starts fastest. Settings without an in-process engine pass as they are."""
    if getattr(settings, "engine_process", None) == "auto":
        settings = settings.model_copy(update={"engine_process": engine_process("auto")})
    dtype = settings.in_process_dtype()
    return settings if dtype is None else settings.with_dtype(engine_dtype(dtype, settings.gpus_per_replica))


def engine_dtype(requested: str, gpus: float) -> str:
    """The teacher engine's dtype on this machine (ValueError with the reason where the CPU cannot run it)."""
    return teacher_dtype(requested, on_gpu=gpus > 0 and has_gpu())


SCALE_HEADROOM_CPUS = 4


def local_cluster_cpus(teacher_replicas: int, teacher_threads: int, students_threads: int, evaluator_threads: int,
                       configured: int | None, pool_cpus: int = 0) -> int:
    """Logical CPUs for a local cluster: enough for every actor plus the driver, whatever the core count, and
    room for `pgkd scale` to add a few actors (a local cluster cannot grow later). Logical CPUs only schedule;
    the thread budgets above decide real core use."""
    if configured:
        return configured
    return (teacher_replicas * teacher_threads + students_threads + evaluator_threads + pool_cpus + 1
            + SCALE_HEADROOM_CPUS)
