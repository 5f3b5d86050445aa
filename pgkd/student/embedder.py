"""Fixed text vectors from a frozen encoder, for tools outside the students that need the geometry a frozen
student sees (the simulated teacher's nearest texts, benchmarks)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from pgkd.student.kinds.encoder import EncoderSettings, EncoderStudent


def text_embedder(spec: str, device, max_length: int = 64,
                  cache_dir: Path | None = None) -> Callable[[list[str]], np.ndarray]:
    """Unit-norm mean-pooled embeddings of a frozen encoder, the geometry a frozen student sees; for tools that
    need fixed text vectors (the simulated teacher's nearest texts). With cache_dir, a large call's result is kept
    on disk by the encoder and the texts, so the next run with the same texts loads it instead."""
    settings = EncoderSettings(model=spec, pooling="mean", max_length=max_length, finetune=False, feature_scale=1.0)
    encoder = EncoderStudent(["-"], settings, device)

    def embed(texts: list[str]) -> np.ndarray:
        if cache_dir is None or len(texts) < 256:
            return encoder.embed(texts).cpu().numpy()
        key = hashlib.sha256("\n".join([spec, str(max_length), *texts]).encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"{key}.npy"
        if path.is_file():
            try:
                return np.load(path)
            except (OSError, ValueError):  # a torn write: compute again
                pass
        vectors = encoder.embed(texts).cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".tmp.npy"), vectors)
        path.with_suffix(".tmp.npy").replace(path)
        return vectors

    return embed
