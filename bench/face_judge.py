"""A strong, independent judge of CelebA attributes for the face benchmarks.

Run: LIPNET_DATA=../shared/data python bench/face_judge.py [--epochs 10]

An unconstrained CNN (batch norm, average pooling: an architecture no face
model uses, seed 1234, never used to make counterfactuals) on the low-pass
view (2x2 area down-sampling, 32 px) of the training split of `celeba-hkr`'s
config (the identity split: the test faces are people neither the judge nor
the models saw). One output per attribute of that config, binary
cross-entropy with each attribute's positives weighted by its rarity; each
output's threshold is chosen on the validation split for the best balanced
accuracy. The weights (our own) and their numbers go to `bench/judges/`;
`bench_counterfactuals.py` and `bench_alignment.py` load them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lipnet.attacks.quality import LowPass
from lipnet.attributes import balanced_accuracy
from lipnet.train_attributes import augment, load_faces, loss_function

ROOT = Path(__file__).resolve().parents[1]
JUDGES = ROOT / "bench" / "judges"
CONFIG = ROOT / "configs" / "celeba-hkr.json"
SEED = 1234  # every face model is trained with seed 0
FACTOR = 2
ARCHITECTURE = (
    "CNN (32c3-bn)x2-avgpool-(64c3-bn)x2-avgpool-(128c3-bn)x2-avgpool-"
    "dropout-fc128-fcA on the 2x2 area down-sampled view"
)


def judge_net(n_out: int) -> nn.Sequential:
    """The judge's trunk on the 32 px low-pass view (input 3 x 32 x 32)."""
    layers: list[nn.Module] = []
    c = 3
    for width in (32, 64, 128):
        for _ in range(2):
            layers += [
                nn.Conv2d(c, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            c = width
        layers.append(nn.AvgPool2d(2))
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(128 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, n_out),
    )


class FaceJudge(nn.Module):
    """Full-resolution faces in [0, 1] → one logit per attribute, shifted by
    each attribute's validation threshold (positive = present)."""

    def __init__(self, attributes: list[str]) -> None:
        super().__init__()
        self.attributes = list(attributes)
        self.view = LowPass(FACTOR)
        self.net = judge_net(len(attributes))
        self.register_buffer("threshold", torch.zeros(len(attributes)))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.view(x)) - self.threshold

    def only(self, attribute: str) -> nn.Module:
        """The binary judge of one attribute: (N, 1) logits."""
        return _Column(self, self.attributes.index(attribute))


class _Column(nn.Module):
    def __init__(self, judge: FaceJudge, index: int) -> None:
        super().__init__()
        self.judge, self.index = judge, index

    def forward(self, x: Tensor) -> Tensor:
        return self.judge(x)[:, self.index : self.index + 1]


def scores(judge: nn.Module, images: Tensor, batch: int = 500) -> Tensor:
    """The judge's logits on uint8 or float images, in eval mode."""
    judge.eval()
    with torch.no_grad():
        return torch.cat(
            [
                judge(b.float().div(255.0) if b.dtype == torch.uint8 else b)
                for b in images.split(batch)
            ]
        )


def best_thresholds(logits: Tensor, labels: Tensor) -> Tensor:
    """Per attribute, the logit threshold with the best balanced accuracy."""
    out = []
    for a in range(logits.shape[1]):
        candidates = torch.quantile(logits[:, a], torch.linspace(0.01, 0.99, 197))
        accs = torch.stack(
            [
                balanced_accuracy(logits[:, a : a + 1] - t, labels[:, a : a + 1])[0]
                for t in candidates
            ]
        )
        out.append(candidates[int(accs.argmax())])
    return torch.stack(out)


def train(config: dict[str, Any], epochs: int, threads: int) -> dict[str, Any]:
    """Train the judge on the config's training faces; save it and its numbers."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    data = load_faces(config)
    attributes = list(config["attributes"])
    torch.manual_seed(SEED)
    judge = FaceJudge(attributes)
    xs, ys = data["train"]["images"], data["train"]["labels"]
    loss_fn = loss_function({"loss": {"kind": "bce-multilabel"}}, ys)
    batch = 128
    steps = epochs * -(-len(ys) // batch)
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(SEED)
    augmentation = {"augment": {"shift": 3, "flip": True, "scale": 0.05, "rotate": 6}}
    for epoch in range(1, epochs + 1):
        judge.train()
        for idx in torch.randperm(len(ys), generator=gen).split(batch):
            loss = loss_fn(judge(augment(xs[idx], augmentation, gen)), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        val = scores(judge, data["val"]["images"])
        acc = balanced_accuracy(val, data["val"]["labels"])
        print(f"epoch {epoch}: validation balanced accuracy {acc.mean():.4f}")
    judge.threshold.copy_(best_thresholds(val, data["val"]["labels"]))
    test = scores(judge, data["test"]["images"])
    info = {
        "architecture": ARCHITECTURE,
        "seed": SEED,
        "epochs": epochs,
        "config": CONFIG.name,
        "train_images": len(ys),
        "attributes": attributes,
        "thresholds": "per attribute, best balanced accuracy on the validation split",
        "test_balanced_accuracy": {
            a: round(float(v), 4)
            for a, v in zip(
                attributes, balanced_accuracy(test, data["test"]["labels"]), strict=True
            )
        },
        "time_s": round(time.perf_counter() - start, 1),
    }
    JUDGES.mkdir(parents=True, exist_ok=True)
    save_file(judge.state_dict(), JUDGES / "celeba-judge.safetensors")
    (JUDGES / "celeba-judge.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def load_judge() -> tuple[FaceJudge, dict[str, Any]]:
    """The trained judge and its numbers; FileNotFoundError before training."""
    info = json.loads((JUDGES / "celeba-judge.json").read_text())
    judge = FaceJudge(info["attributes"])
    judge.load_state_dict(load_file(JUDGES / "celeba-judge.safetensors"))
    return judge.eval(), info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    info = train(json.loads(CONFIG.read_text()), args.epochs, args.threads)
    print(json.dumps(info["test_balanced_accuracy"], indent=2))


if __name__ == "__main__":
    main()
