"""The dataset block of a run: where the labelled folder is, how seeds are drawn, and the unlabelled pool."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from pgkd.basics.settings import Settings


class DatasetConfig(Settings):
    path: Path
    task: str = Field("Short texts", description="what the texts are, for teacher prompts: 'Customer messages to a bank'")
    seeds_per_class: int | None = Field(None, ge=1, description="keep N labelled train examples per class; null keeps all")
    sample_seed: int = 0
    max_validation: int | None = Field(None, ge=1, description="cap validation size (stratified) to bound eval time")
    pool_from_train: bool = Field(False, description="use the train texts left after seeding, labels hidden, as the "
                                  "unlabelled pool (as in PGKD's sparse setting; the hidden labels score the teacher)")
    max_pool: int | None = Field(2000, ge=1, description="cap the unlabelled pool taken from unlabeled.jsonl or "
                                 "pool_from_train (random sample); pool files are never capped")
    pool: list[Path] | None = Field(None, description="the unlabelled pool as files of any size: JSONL or Parquet "
                                    "files (a 'text' field each row) or folders of them; relative to the config")
    pool_shard_rows: int = Field(20_000, ge=1, description="the pool is scored in shards of about this many rows")
    pool_shards_per_round: int = Field(5, ge=1, description="shards scored after each new best student, in turn: "
                                       "a large pool is covered over several rounds, a small one every round")
    selection_share: float = Field(0.5, ge=0, lt=1, description="share of each class's validation texts held "
                                   "out to choose the best student; the teacher never sees them (0: one set for both)")

    @field_validator("pool", mode="before")
    @classmethod
    def _one_or_more_paths(cls, value):
        return [value] if isinstance(value, (str, Path)) else value

    @model_validator(mode="after")
    def _one_pool_source(self) -> "DatasetConfig":
        if self.pool and self.pool_from_train:
            raise ValueError("set dataset.pool or dataset.pool_from_train, not both")
        return self

    def resolve_paths(self, base: Path) -> None:
        """The dataset folder and pool files are read relative to the config's folder where they exist there."""
        if not self.path.is_absolute():
            candidate = (base / self.path).resolve()
            self.path = candidate if candidate.exists() or not self.path.exists() else self.path.resolve()
        if self.pool:
            self.pool = [p if p.is_absolute() or not (base / p).exists() else (base / p).resolve() for p in self.pool]

