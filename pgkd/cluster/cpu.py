"""What this machine's CPU can do, and the teacher engine settings that follow from it.

Read from /proc/cpuinfo (Linux); elsewhere nothing is known and nothing is refused. Measured on 2 cores (see
bench/README.md, "Teacher speed"): with AVX-512 bf16 bfloat16 is the fastest engine dtype; without AVX-512 vLLM's
CPU build has no 16-bit kernels and falls back to plain torch layers ("fallback to torch linear", about 7
completion tokens/s against 150-220), so there float32 is the choice and 16-bit types are refused.
"""
from __future__ import annotations

import glob
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DTYPES = ("auto", "bfloat16", "float16", "float32")
NATIVE_BF16 = {"avx512_bf16", "amx_bf16"}
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]
    cores: int

    @property
    def x86(self) -> bool:
        return platform.machine() in ("x86_64", "AMD64", "i686")

    def describe(self) -> str:
        """One line for logs and benchmark tables: model, cores and the flags that decide engine speed."""
        shown = [f for f in SHOWN_FLAGS if f in self.flags] or ["no AVX2"]
        return f"{self.model}, {self.cores} cores ({' '.join(shown)})"


@lru_cache(maxsize=None)
def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> CpuInfo:
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return CpuInfo(model, flags, os.cpu_count() or 1)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model, flags, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def dtype_refusal(dtype: str, cpu: CpuInfo) -> str | None:
    """Why this CPU cannot run the engine in dtype (None: it can, or the CPU is not known)."""
    if dtype not in DTYPES:
        return f"teacher.dtype '{dtype}' is not one of {', '.join(DTYPES)}"
    if dtype in ("bfloat16", "float16") and cpu.x86 and cpu.flags and "avx512f" not in cpu.flags:
        return (f"teacher.dtype {dtype} needs AVX-512 on a CPU (vLLM's 16-bit CPU kernels); this CPU "
                f"({cpu.describe()}) would fall back to plain torch layers about 20x slower. "
                f"Use teacher.dtype: auto (float32 here) or float32")
    return None


def teacher_dtype(requested: str, on_gpu: bool, cpu: CpuInfo | None = None) -> str:
    """The engine dtype for a teacher: on a GPU vLLM's own choice for "auto"; on a CPU "auto" is bfloat16 where the
    CPU computes in it natively, else float32. Raises ValueError (with the reason) for a dtype this CPU cannot run."""
    if on_gpu:
        return requested
    cpu = cpu or cpu_info()
    refusal = dtype_refusal(requested, cpu)
    if refusal:
        raise ValueError(refusal)
    if requested != "auto":
        return requested
    return "bfloat16" if cpu.flags & NATIVE_BF16 else "float32"


def preload_libraries(search: list[str]) -> list[str]:
    """tcmalloc and Intel OpenMP, where installed (vLLM's CPU guide asks for both in LD_PRELOAD): the first match
    of each under the given folders, e.g. the venv's lib/ where `intel-openmp` puts libiomp5.so."""
    found = []
    for patterns in (("libtcmalloc_minimal.so*", "libtcmalloc.so*"), ("libiomp5.so",)):  # one of each library
        matches = (sorted(glob.glob(os.path.join(folder, p))) for p in patterns for folder in search)
        first = next((m[0] for m in matches if m), None)
        if first:
            found.append(first)
    return found
