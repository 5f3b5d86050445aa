import pytest
import torch
import torch.nn.functional as F

from pgkd.student.kd_loss import kd_loss, soft_matrix, soften


def test_alpha_zero_is_cross_entropy():
    logits, hard = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    soft, mask = soft_matrix([{"a": 0.7, "b": 0.3}] * 4, {"a": 0, "b": 1, "c": 2})
    assert torch.allclose(kd_loss(logits, hard, soft, mask, 2.0, 0.0), F.cross_entropy(logits, hard))


def test_examples_without_soft_labels_fall_back_to_hard_labels():
    logits, hard = torch.randn(2, 3), torch.tensor([0, 1])
    soft, mask = soft_matrix([None, None], {"a": 0, "b": 1, "c": 2})
    assert not mask.any()
    assert torch.allclose(kd_loss(logits, hard, soft, mask, 2.0, 1.0), F.cross_entropy(logits, hard))


def test_kd_term_is_zero_when_student_matches_softened_teacher():
    teacher = torch.tensor([[0.6, 0.3, 0.1]])
    temperature = 2.0
    logits = torch.log(soften(teacher, temperature)) * temperature  # student/T equals teacher softened by T
    loss = kd_loss(logits, torch.tensor([0]), teacher, torch.tensor([True]), temperature, 1.0)
    assert loss.abs() < 1e-5


def test_soft_matrix_normalises_and_ignores_unknown_labels():
    soft, mask = soft_matrix([{"a": 1.0, "b": 1.0, "zzz": 5.0}], {"a": 0, "b": 1})
    assert torch.allclose(soft, torch.tensor([[0.5, 0.5]])) and mask.all()


def test_kd_gradient_moves_student_toward_teacher():
    logits = torch.zeros(1, 3, requires_grad=True)
    teacher = torch.tensor([[0.1, 0.8, 0.1]])
    kd_loss(logits, torch.tensor([0]), teacher, torch.tensor([True]), 1.0, 1.0).backward()
    assert logits.grad[0, 1] < 0  # descending the loss raises the teacher's favourite


def test_balanced_class_weights_give_every_class_the_same_total_weight():
    from pgkd.student.kd_loss import class_weights

    hard = torch.tensor([0, 0, 0, 1])
    weights = class_weights(hard, 3, "balanced")
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[:3].sum().item() == pytest.approx(weights[3].item())  # three of class 0 weigh one of class 1
    assert class_weights(hard, 3, "none") is None
