"""Do explanations point at the right part? On data with true part boxes (the synthetic set), compare the
box of the prototype that contributed most to the prediction with the pattern's true box."""
from __future__ import annotations

from typing import Dict

import torch
from torch.utils.data import DataLoader

from .data import ImageSet
from .model import ProtoPNet
from .boxes import box_iou, centre_inside, high_activation_box, upsample_activation


@torch.no_grad()
def localisation(model: ProtoPNet, image_set: ImageSet, device: torch.device, batch_size: int = 100) -> Dict[str, float]:
    """For each image: the prototype with the largest contribution w_kj * sim_j to the predicted class k;
    its 95th-percentile box on the image against the true box. Returns the share of images whose true box
    centre lies in that box, and the mean IoU."""
    boxes = image_set.split.true_boxes
    if not boxes:
        raise ValueError("this data set has no true part boxes")
    model.eval()
    hits, iou_sum, count = 0, 0.0, 0
    for images, _, indices in DataLoader(image_set, batch_size=batch_size):
        out = model(images.to(device))
        predicted = out.logits.argmax(1)
        contributions = out.similarities * model.last_layer.weight[predicted]
        top = contributions.argmax(1)
        for n in range(len(indices)):
            activation = out.similarity_maps[n, top[n]]
            box = high_activation_box(upsample_activation(activation, image_set.height, image_set.width))
            truth = tuple(boxes[int(indices[n])])
            hits += int(centre_inside(box, truth))
            iou_sum += box_iou(box, truth)
            count += 1
    return {"centre_hit_rate": hits / max(1, count), "mean_iou": iou_sum / max(1, count), "images": count}
