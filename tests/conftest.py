"""Fixtures shared by the test suite: the shipped models and the MNIST test set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lipnet
from lipnet import data as D

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


@pytest.fixture(scope="session")
def load_model():
    """Load a shipped model by name (cached for the session)."""
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            cache[name] = lipnet.load(MODELS / name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def mnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    return D.load_mnist(split="test")


@pytest.fixture(scope="session")
def mnist08_test(mnist_test) -> tuple[torch.Tensor, torch.Tensor]:
    return D.mnist_binary(*mnist_test, (0, 8))


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (one per test module)."""
    from browser_helpers import launch_chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()
