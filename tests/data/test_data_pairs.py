"""--positives class: the positive of an image is another image of its class (labelled mode of the
sthalles/SimCLR fork)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from simclr.cli import main
from simclr.data.loader import PARTNER_KEY, InMemoryBatchLoader
from simclr.data.pairs import SameClassPartners
from simclr.data.store import ImageStore
from simclr.errors import UserError
from simclr.views.config import ViewConfig
from simclr.views.params import sample_view_params
from simclr.views.pipeline import SimCLRViews


def numbered_store(labels: list[int]) -> ImageStore:
    """Image ``i`` is filled with the value ``i``, so a gathered image says which one it is."""
    n = len(labels)
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return ImageStore(images, torch.tensor(labels), [f"c{c}" for c in range(max(labels) + 1)])


def image_ids(images: torch.Tensor) -> list[int]:
    return images[:, 0, 0, 0].long().tolist()


def test_a_partner_is_another_image_of_the_same_class_drawn_uniformly() -> None:
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 0, 2])
    partners = SameClassPartners(labels)
    indices = torch.full((30_000,), 2)  # image 2 of class 0, whose other members are 0, 5 and 6
    drawn = partners.draw(indices, torch.rand(30_000, generator=torch.Generator().manual_seed(0)))
    counts = Counter(drawn.tolist())
    assert set(counts) == {0, 5, 6}
    for member in (0, 5, 6):
        assert counts[member] / 30_000 == pytest.approx(1 / 3, abs=0.015)
    everyone = torch.arange(8)
    for u in (0.0, 0.5, 0.999999):
        got = partners.draw(everyone, torch.full((8,), u))
        assert torch.equal(labels[got], labels) and not bool((got == everyone).any())


def test_unlabelled_images_or_a_class_of_one_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="unlabelled images"):
        SameClassPartners(torch.tensor([0, -1, 0]))
    with pytest.raises(UserError, match=r"1 class\(es\) have one \(lonely\)"):
        SameClassPartners(torch.tensor([0, 1, 0]), ["many", "lonely"])


def test_loader_batches_carry_same_class_partners_and_ranks_split_the_single_process_pairs() -> None:
    store = numbered_store([i % 3 for i in range(24)])
    partners = SameClassPartners(store.labels)

    def epoch_batches(rank: int, world: int, epoch: int) -> list[dict[str, torch.Tensor]]:
        loader = InMemoryBatchLoader(store, 4 // world, seed=7, rank=rank, world_size=world, partners=partners)
        loader.set_position(epoch, 0)
        return list(loader)

    single = epoch_batches(0, 1, 0)
    for batch in single:
        ids, partner_ids = image_ids(batch["images"]), image_ids(batch[PARTNER_KEY])
        assert [i % 3 for i in ids] == [p % 3 for p in partner_ids] and all(
            i != p for i, p in zip(ids, partner_ids, strict=True)
        )
    halves = zip(epoch_batches(0, 2, 0), epoch_batches(1, 2, 0), strict=True)
    for whole, (first, second) in zip(single, halves, strict=True):
        assert torch.equal(whole[PARTNER_KEY], torch.cat([first[PARTNER_KEY], second[PARTNER_KEY]]))
    again = epoch_batches(0, 1, 0)
    assert all(torch.equal(a[PARTNER_KEY], b[PARTNER_KEY]) for a, b in zip(single, again, strict=True))
    next_epoch = epoch_batches(0, 1, 1)
    first_pairs = {
        (i, p) for b in single for i, p in zip(image_ids(b["images"]), image_ids(b[PARTNER_KEY]), strict=True)
    }
    later_pairs = {
        (i, p) for b in next_epoch for i, p in zip(image_ids(b["images"]), image_ids(b[PARTNER_KEY]), strict=True)
    }
    assert first_pairs != later_pairs  # drawn afresh every epoch


def test_the_second_view_is_cut_from_the_partner_with_the_same_draw() -> None:
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (5, 3, 32, 32), generator=generator, dtype=torch.uint8)
    partners = torch.randint(0, 256, (5, 3, 32, 32), generator=generator, dtype=torch.uint8)
    config = ViewConfig(size=20, blur_p=0.5)
    maker = SimCLRViews(config)
    first, second = maker(images, torch.Generator().manual_seed(9), partners=partners)
    params = sample_view_params(10, (32, 32), config, torch.Generator().manual_seed(9))
    torch.testing.assert_close(first, maker.apply(images.float() / 255, params.narrow(0, 5)), atol=1e-6, rtol=0)
    torch.testing.assert_close(second, maker.apply(partners.float() / 255, params.narrow(5, 5)), atol=1e-6, rtol=0)


def test_pretraining_with_class_positives_runs_and_needs_labels(
    cifar_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--batch-size", "16", "--epochs", "1", "--max-steps", "2", "--precision", "32", "--workers", "1"]
    common += ["--knn-every-epochs", "0", "--limit-train-images", "64", "--quiet", "--positives", "class"]
    run = tmp_path / "run"
    assert main(["pretrain", "--dataset", "cifar10", "--data-dir", str(cifar_small), *common, "--out", str(run)]) == 0
    assert "another image of the same class" in (run / "train.log").read_text()
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted((cifar_small / "train" / "cat").iterdir())[:20]:
        (flat / image.name).write_bytes(image.read_bytes())
    capsys.readouterr()
    code = main(
        ["pretrain", "--dataset", "imagefolder", "--data-dir", str(flat), *common, "--out", str(tmp_path / "x")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "unlabelled images" in err and "\n" not in err
    assert not (tmp_path / "x").exists()  # refused before the run directory is made
