"""Streaming folders from disk: the Dataset path trains exactly like the in-memory path."""

import pytest
import torch
from image_folders import make_folder

import aekit
from aekit import folders
from aekit.data import epoch_batches, load_data
from aekit.folders import ImageFiles
from aekit.train import evaluate, fit


def tiny_model():
    return aekit.create_model("conv", in_channels=3, input_size=(16, 16), code_length=64,
                              encoder_channels=(4,), encoder_strides=(2,), decoder_channels=(4,), decoder_strides=(2,))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "pets", 20, size=(20, 28))


def test_streaming_holds_files_and_decodes_the_same_images(folder):
    memory = load_data(str(folder), size=(16, 16), workers=0)
    stream = load_data(str(folder), size=(16, 16), stream="on", workers=2)
    assert isinstance(stream.images, ImageFiles) and stream.images.shape == (20, 3, 16, 16)
    assert stream.names == memory.names and (stream.labels == memory.labels).all()
    assert torch.equal(torch.stack([stream.images[i] for i in range(20)]), memory.images)


def test_auto_streams_above_the_memory_budget(folder, monkeypatch):
    assert isinstance(load_data(str(folder), size=(16, 16), workers=0).images, torch.Tensor)
    monkeypatch.setattr(folders, "STREAM_ABOVE_BYTES", 20 * 3 * 16 * 16 * 4 - 1)
    assert isinstance(load_data(str(folder), size=(16, 16), workers=0).images, ImageFiles)


def test_batches_follow_the_given_order_through_worker_processes(folder):
    files = load_data(str(folder), size=(16, 16), stream="on", workers=2).images
    order = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    batches = list(epoch_batches(files, [order[s : s + 6] for s in range(0, 20, 6)]))
    assert [len(b) for b in batches] == [6, 6, 6, 2]
    want = torch.stack([files[int(i)] for i in order])
    assert torch.equal(torch.cat(batches), want)


def test_fit_and_evaluate_stream_exactly_like_memory(folder):
    memory = load_data(str(folder), size=(16, 16), workers=0)
    stream = load_data(str(folder), size=(16, 16), stream="on", workers=2)
    cfg = aekit.TrainConfig(epochs=2, batch_size=6, eval_every=1)

    def run(train, test):
        torch.manual_seed(0)
        model = tiny_model()
        history = fit(model, train, cfg, seed=5, test_images=test, progress=False, log=lambda s: None)
        return model, history

    m1, h1 = run(memory.images[:16], memory.images[16:])
    m2, h2 = run(stream.images.subset(range(16)), stream.images.subset(range(16, 20)))
    assert [h.loss_per_sample for h in h1] == [h.loss_per_sample for h in h2]
    assert h1[-1].heldout == pytest.approx(h2[-1].heldout, rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert evaluate(m1, memory.images, batch_size=7) == pytest.approx(evaluate(m1, stream.images, batch_size=7), rel=1e-6)


def test_a_file_broken_during_training_is_a_one_line_error(tmp_path):
    root = make_folder(tmp_path / "f", 8, size=(16, 16))
    files = load_data(str(root), stream="on", workers=2).images
    victim = files.files[5]
    with open(victim, "wb") as f:
        f.write(b"overwritten")
    with pytest.raises(aekit.DataError) as e:
        list(epoch_batches(files, [torch.arange(0, 4), torch.arange(4, 8)]))
    assert str(e.value).startswith(victim) and "\n" not in str(e.value)
