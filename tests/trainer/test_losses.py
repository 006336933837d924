"""Loss terms against hand-computed values."""
import math

import pytest
import torch

from protopnet_trainer.losses import (LossCoefficients, cluster_cost, l1_wrong_class, last_layer_loss,
                                      own_class_mask, protopnet_loss, separation_cost)

# 2 images (classes 0 and 1), 4 prototypes (classes 0, 0, 1, 1).
MIN_DISTANCES = torch.tensor([[1.0, 4.0, 2.0, 9.0],
                              [3.0, 0.5, 6.0, 7.0]])
LABELS = torch.tensor([0, 1])
PROTOTYPE_CLASSES = torch.tensor([0, 0, 1, 1])
WEIGHT = torch.tensor([[1.0, 2.0, -3.0, 0.5],
                       [4.0, -1.0, 1.0, 1.0]])
LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0]])


def test_cluster_cost_is_mean_min_distance_to_own_class_prototypes():
    own = own_class_mask(PROTOTYPE_CLASSES, LABELS)
    # image 0: min(1, 4) = 1; image 1: min(6, 7) = 6
    assert cluster_cost(MIN_DISTANCES, own).item() == pytest.approx(3.5)


def test_separation_cost_is_mean_min_distance_to_other_class_prototypes():
    own = own_class_mask(PROTOTYPE_CLASSES, LABELS)
    # image 0: min(2, 9) = 2; image 1: min(3, 0.5) = 0.5
    assert separation_cost(MIN_DISTANCES, own).item() == pytest.approx(1.25)


def test_l1_only_counts_wrong_class_weights():
    # class 0 row, prototypes 2 and 3: 3 + 0.5; class 1 row, prototypes 0 and 1: 4 + 1
    assert l1_wrong_class(WEIGHT, PROTOTYPE_CLASSES).item() == pytest.approx(8.5)


def test_total_uses_reference_coefficients():
    coefs = LossCoefficients()
    assert (coefs.crs_ent, coefs.clst, coefs.sep, coefs.l1) == (1.0, 0.8, -0.08, 1e-4)
    terms = protopnet_loss(LOGITS, MIN_DISTANCES, LABELS, PROTOTYPE_CLASSES, WEIGHT, coefs)
    ce = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    assert terms["cross_entropy"].item() == pytest.approx(ce, rel=1e-6)
    expected = ce + 0.8 * 3.5 - 0.08 * 1.25 + 1e-4 * 8.5
    assert terms["total"].item() == pytest.approx(expected, rel=1e-6)


def test_last_layer_loss_is_cross_entropy_plus_l1():
    coefs = LossCoefficients(l1=0.01)
    ce = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    value = last_layer_loss(LOGITS, LABELS, PROTOTYPE_CLASSES, WEIGHT, coefs).item()
    assert value == pytest.approx(ce + 0.01 * 8.5, rel=1e-6)


def test_class_without_prototypes_contributes_no_cluster_cost():
    own = own_class_mask(torch.tensor([0, 0]), torch.tensor([0, 1]))
    distances = torch.tensor([[2.0, 3.0], [1.0, 1.0]])
    assert cluster_cost(distances, own).item() == pytest.approx(1.0)   # (2 + 0) / 2


def test_foreground_distances_replace_the_distances_in_the_cluster_cost_only():
    # The background-aware recipe's distances over foreground cells: image 0 min(5, 8) = 5, image 1 min(1, 2) = 1.
    foreground = torch.tensor([[5.0, 8.0, 0.1, 0.1],
                               [0.1, 0.1, 1.0, 2.0]])
    terms = protopnet_loss(LOGITS, MIN_DISTANCES, LABELS, PROTOTYPE_CLASSES, WEIGHT, LossCoefficients(), foreground)
    assert terms["cluster"].item() == pytest.approx(3.0)
    assert terms["separation"].item() == pytest.approx(1.25)   # still over every cell, not the foreground's 0.1


def test_the_default_recipe_weighs_the_losses_as_the_paper_does():
    """A run trains with TrainConfig's coefficients (the command line's defaults), not LossCoefficients': those must
    be the paper's too (CE 1, clst 0.8, sep -0.08, l1 1e-4)."""
    from protopnet_trainer.config import TrainConfig
    from protopnet_trainer.train import coefficients
    assert coefficients(TrainConfig()) == LossCoefficients() == LossCoefficients(1.0, 0.8, -0.08, 1e-4)
