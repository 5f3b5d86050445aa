"""The one training loop of the kinds that train a network on their texts: the distillation loss (kd_loss) with
optional class weights, shuffled mini-batches from a generator seeded by `seed`, epochs until done or until
on_epoch (the trainer's early stopping) says enough. A kind gives only what differs: how a batch of example rows
becomes logits, and its optimizers (usually `adamw` over its parameters at its lr)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from pgkd.bus.messages import Example
from pgkd.student.base import OnEpoch, Student, StudentSettings
from pgkd.student.kd_loss import class_weights, kd_loss, soft_matrix

WEIGHT_DECAY = 1e-4
# rows of this fit's examples (a CPU index tensor) and the loop's generator (for any train-time noise drawn in
# step with the batch order, e.g. word dropout) -> logits [rows, classes]
Logits = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def adamw(params: Iterable[torch.nn.Parameter], lr: float) -> list[torch.optim.Optimizer]:
    return [torch.optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY)]


@dataclass
class Targets:
    """What the loss compares against, per example row: hard label, teacher probabilities, class weight."""

    hard: torch.Tensor
    soft: torch.Tensor
    has_soft: torch.Tensor
    weights: torch.Tensor | None

    @classmethod
    def of(cls, examples: list[Example], labels: list[str], weighting: str, device) -> "Targets":
        index = {label: i for i, label in enumerate(labels)}
        hard = torch.tensor([index[e.label] for e in examples], device=device)
        soft, has_soft = soft_matrix([e.soft_label for e in examples], index)
        return cls(hard, soft.to(device), has_soft.to(device), class_weights(hard, len(labels), weighting))

    def loss(self, logits: torch.Tensor, rows: torch.Tensor, settings: StudentSettings) -> torch.Tensor:
        return kd_loss(logits, self.hard[rows], self.soft[rows], self.has_soft[rows], settings.temperature,
                       settings.alpha, None if self.weights is None else self.weights[rows])


def train_head(student: Student, examples: list[Example], settings: StudentSettings, logits: Logits,
               optimizers: list[torch.optim.Optimizer], on_epoch: OnEpoch | None = None,
               modules: Iterable[torch.nn.Module] = ()) -> float:
    """Train for settings.epochs at most; returns the last epoch's mean loss. `modules` go back to train mode at
    each epoch's start (on_epoch may have predicted in between, which leaves them in eval mode)."""
    targets = Targets.of(examples, student.labels, settings.class_weighting, student.device)
    generator = torch.Generator().manual_seed(settings.seed)
    modules = list(modules)
    last = float("nan")
    for epoch in range(settings.epochs):
        for module in modules:
            module.train()
        last = one_epoch(len(examples), logits, targets, optimizers, settings, generator, student.device)
        if on_epoch and on_epoch(epoch, last):  # the trainer's early stopping said enough
            break
    return last


def one_epoch(n: int, logits: Logits, targets: Targets, optimizers: list[torch.optim.Optimizer],
              settings: StudentSettings, generator: torch.Generator, device) -> float:
    order, total = torch.randperm(n, generator=generator), 0.0
    for start in range(0, n, settings.batch_size):
        rows = order[start:start + settings.batch_size]
        loss = targets.loss(logits(rows, generator), rows.to(device), settings)
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        total += loss.item() * len(rows)
    return total / n
