"""Does the MTA-CNN multi-task model learn nucleus segmentation on the synthetic set?

A quick learning check (not a test): ``leukmodels.data`` prepares the synthetic 4-class
set with its nucleus masks (patient-grouped 80/10/10 split, masks carried through the
cache, the split and the augmentation), a :class:`~leukmodels.blocks.multitask.MultiTaskNet`
(plain encoder + U-Net decoder by default) trains with ``MultiTaskLoss`` (CE + the chosen
segmentation loss, equal weights, Adam lr 1e-3 as paper 001) and the test split is scored:
accuracy, Dice and IoU (macro over images and pooled).

Usage: python bench/multitask_check.py [--n 400] [--epochs 6] [--seg-loss focal] ...
Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from leukmodels.blocks.multitask import MultiTaskConfig, build_multitask
from leukmodels.config import DataSpec, TrialParams
from leukmodels.data.prepare import make_loaders, prepare_data
from leukmodels.losses import CrossEntropy
from leukmodels.seg_losses import MultiTaskLoss, build_seg_loss, foreground_weight
from leukmodels.seg_metrics import SegmentationMeter


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--encoder", default="plain")
    p.add_argument("--decoder", default="unet", choices=["unet", "transunet"])
    p.add_argument("--head", default="flat", choices=["flat", "hierarchical"])
    p.add_argument("--no-coupling", action="store_true")
    p.add_argument("--seg-loss", default="focal", choices=["bce", "dice", "focal"])
    p.add_argument("--augment", default="basic")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader) -> dict[str, float]:
    """Test accuracy and the segmentation metrics over ``loader``."""
    model.eval()
    meter, correct, seen = SegmentationMeter(), 0, 0
    for x, y, mask in loader:
        out = model(x)
        correct += int((out.logits.argmax(1) == y).sum())
        seen += len(y)
        meter.update(out.mask_logits, mask)
    return {"accuracy": correct / seen, **meter.compute()}


def main() -> None:
    args = _args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as cache:
        spec = DataSpec(
            dataset="synthetic", classes=4, n=args.n, patients=40, image_size=args.size,
            augment=args.augment, cache_dir=cache,
        )  # fmt: skip
        params = TrialParams(batch_size=args.batch, seed=args.seed)
        prepared = prepare_data(spec, params)
        train, _, test = make_loaders(prepared, params, seed=args.seed, with_masks=True)
        a_c = foreground_weight(prepared.train.mask(i) for i in range(len(prepared.train)))
        cfg = MultiTaskConfig(
            encoder=args.encoder, decoder=args.decoder, head=args.head,
            coupling=not args.no_coupling,
        )  # fmt: skip
        model = build_multitask(cfg, num_classes=4)
        loss_fn = MultiTaskLoss(CrossEntropy(), build_seg_loss(args.seg_loss, fg_weight=a_c))
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{cfg}\nparams {n_params}, train {len(prepared.train)}, test "
              f"{len(prepared.test)}, a_c = N_b/N_f = {a_c:.2f}")  # fmt: skip
        start = time.perf_counter()
        for epoch in range(args.epochs):
            model.train()
            for x, y, mask in train:
                out = model(x)
                loss, parts = loss_fn(out.logits, y, out.mask_logits, mask)
                opt.zero_grad()
                loss.backward()
                opt.step()
            scores = evaluate(model, test)
            print(
                f"epoch {epoch + 1}: cls {parts['cls']:.3f} seg {parts['seg']:.3f} | test "
                + " ".join(f"{k} {v:.3f}" for k, v in scores.items())
                + f" | alphas {[tuple(round(a, 3) for a in al) for al in model.alphas()]}"
                + f" | {time.perf_counter() - start:.0f} s"
            )


if __name__ == "__main__":
    main()
