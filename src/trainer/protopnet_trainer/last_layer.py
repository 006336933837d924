"""The last-layer stage (the paper's third): the last layer alone fitted on fixed similarity scores, with the L1
penalty on wrong-class weights, or those weights clamped to <= 0 (--last-layer-clamp)."""
from __future__ import annotations

import torch
from tqdm import tqdm

from .config import TrainConfig
from .losses import LossCoefficients, last_layer_loss
from .model import ProtoPNet


@torch.no_grad()
def clamp_wrong_class_weights(weight: torch.Tensor, prototype_classes: torch.Tensor) -> None:
    """Keep every weight from a prototype to a class other than its own <= 0 (K x M weight, in place), so a
    prototype can only ever count as evidence for its own class."""
    wrong = torch.ones_like(weight, dtype=torch.bool)
    wrong[prototype_classes.long().to(weight.device), torch.arange(weight.shape[1], device=weight.device)] = False
    weight.copy_(torch.where(wrong, weight.clamp(max=0.0), weight))


def fit_last_layer(model: ProtoPNet, scores: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
                   coefs: LossCoefficients, cfg: TrainConfig, iterations: int, generator: torch.Generator,
                   progress: bool = False) -> float:
    """The last-layer stage on fixed similarity scores [N, M]: CE + l1 * L1(wrong-class weights) in shuffled
    batches of `last_layer_batch_size`; with `last_layer_clamp` the wrong-class weights are clamped to <= 0 after
    every step. Returns the accuracy of the last pass."""
    batch_size = cfg.last_layer_batch_size or cfg.batch_size
    weight, prototype_classes = model.last_layer.weight, model.prototype_classes
    if cfg.last_layer_clamp:
        clamp_wrong_class_weights(weight, prototype_classes)
    accuracy = 0.0
    for _ in tqdm(range(iterations), desc="last layer", leave=False, disable=not progress):
        order = torch.randperm(len(labels), generator=generator).to(scores.device)
        correct = 0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            logits = model.last_layer(scores[batch])
            loss = last_layer_loss(logits, labels[batch], prototype_classes, weight, coefs)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if cfg.last_layer_clamp:
                clamp_wrong_class_weights(weight, prototype_classes)
            correct += int((logits.argmax(1) == labels[batch]).sum())
        accuracy = correct / len(order)
    return accuracy
