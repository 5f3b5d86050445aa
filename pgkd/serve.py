"""Serve the teacher model over an OpenAI-compatible HTTP API with vLLM, for `teacher.backend: openai`.

    python -m pgkd.serve --port 8000               # the embedded Gemma 3 270M on 127.0.0.1:8000
    python -m pgkd.serve --model /models/qwen --host 0.0.0.0 --port 8000 --api-key "$KEY"

The process becomes the server (exec): a SIGTERM or Ctrl-C reaches vLLM itself, which stops its engine, and
nothing is left running. The API key goes to the server through its environment, never its command line (where
`ps` would show it); clients then send it as a Bearer token (`teacher.api_key_env`).

On a GPU machine `vllm serve MODEL` does the same; the CPU wheel's `vllm serve` entry point is broken
(missing package metadata), so this runs vLLM's api_server module, which both builds have.
"""
from __future__ import annotations

import argparse
import os
import sys

from pgkd.cluster.placement import vllm_block_size
from pgkd.teacher.model_store import chat_template_file, resolve_teacher_model

SERVED_NAME = "teacher"


def server_command(model: str, host: str = "127.0.0.1", port: int = 8000, max_model_len: int = 1024,
                   dtype: str = "bfloat16", enforce_eager: bool = True, served_name: str = SERVED_NAME,
                   chat_template: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_teacher_model(model),
               "--served-model-name", served_name, "--host", host, "--port", str(port), "--dtype", dtype,
               "--max-model-len", str(max_model_len)]
    block = vllm_block_size()
    command += ["--block-size", str(block)] if block else []
    template = chat_template_file(model, chat_template)
    command += ["--chat-template", template] if template else []  # without one, /chat/completions answers 400
    return command + (["--enforce-eager"] if enforce_eager else [])


def server_env(kv_cache_gib: float = 1, api_key: str | None = None) -> dict[str, str]:
    # On CPU the KV cache is carved from RAM; without this vLLM asks for 92% of it and refuses to start.
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": str(int(max(1, kv_cache_gib)))}
    return env | {"VLLM_API_KEY": api_key} if api_key else env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:gemma3-270m")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--kv-cache-gib", type=float, default=1)
    parser.add_argument("--chat-template", default=None, help="a Jinja chat template file for a model without one "
                        "(the embedded model gets Gemma's)")
    parser.add_argument("--api-key", default=os.environ.get("PGKD_SERVE_API_KEY"),
                        help="requests must carry it as a Bearer token (default: $PGKD_SERVE_API_KEY; none: open)")
    args = parser.parse_args(argv)
    command = server_command(args.model, args.host, args.port, args.max_model_len, chat_template=args.chat_template)
    os.execve(command[0], command, server_env(args.kv_cache_gib, args.api_key))  # never returns


if __name__ == "__main__":
    raise SystemExit(main())
