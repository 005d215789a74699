"""Worker processes short of shared memory (/dev/shm, ulimit -f): the images are loaded in this process,
said in one line, never a hang."""

import multiprocessing
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from aekit.data import epoch_batches, load_data, workers
from helpers import make_folder

# A process whose file size limit (ulimit -f) leaves no room for a worker's batch. "late": the room
# looks fine beforehand, and the workers fail as they hand their first batch over (or start).
SCRIPT = """
import resource, sys, torch
from aekit.data import epoch_batches, load_data, workers
if sys.argv[2] == "late":
    workers.shared_memory_problem = lambda *args: ""
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
held = load_data(sys.argv[1], size=(16, 16), workers=2).images
files = load_data(sys.argv[1], size=(16, 16), stream="on", workers=2).images
files.workers = 2
streamed = torch.cat(list(epoch_batches(files, [torch.arange(0, 7), torch.arange(7, 12)])))
print(repr(held.sum().item()), repr(streamed.sum().item()), files.workers)
"""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "late"])
def test_a_low_file_size_limit_loads_in_this_process_with_one_note(tmp_path, when):
    folder = make_folder(tmp_path / "f", 12, size=(16, 16))
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), when], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    want = load_data(str(folder), size=(16, 16), workers=0).images.sum().item()
    assert r.stdout.split() == [repr(want), repr(want), "0"]
    note = r.stderr.strip()
    assert note.startswith("aekit: note: ") and "\n" not in note and "data.workers 0" in note, note
    assert ("ulimit -f" if when == "before" else "could not start or hand over") in note


def test_too_little_shared_memory_starts_no_worker(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(workers, "_said", False)
    monkeypatch.setattr(workers.os, "statvfs", lambda path: SimpleNamespace(f_bavail=16, f_frsize=4096))
    files = load_data(str(make_folder(tmp_path / "f", 6, size=(16, 16))), size=(16, 16), stream="on", workers=2).images
    batches = list(epoch_batches(files, [torch.arange(0, 4), torch.arange(4, 6)]))
    assert files.workers == 0 and torch.equal(torch.cat(batches), torch.stack([files[i] for i in range(6)]))
    list(epoch_batches(files.subset(range(3)), [torch.arange(0, 3)]))  # said once
    assert capsys.readouterr().err == (
        "aekit: note: /dev/shm has 64 KiB free, less than the 304 KiB that 2 worker processes hand over at once; "
        "loading the images in this process (data.workers 0 does so from the start)\n"
    )


def test_no_statvfs_windows_loads_with_worker_processes(tmp_path, monkeypatch):
    """Windows has no os.statvfs: every folder load with worker processes stopped with an AttributeError."""
    monkeypatch.delattr(workers.os, "statvfs")
    folder = str(make_folder(tmp_path / "f", 4, size=(16, 16)))
    loaded = load_data(folder, size=(16, 16), workers=1).images
    assert workers.shared_memory_problem(2, 1 << 20) == ""
    assert torch.equal(loaded, load_data(folder, size=(16, 16), workers=0).images)


@pytest.mark.slow
def test_worker_processes_draw_nothing_from_the_global_random_generator(tmp_path):
    """A VAE draws its noise from torch's global generator: a DataLoader that took its seed from there gave a streamed
    run other draws than the same run in memory, and a resume other draws than the run it continues."""
    files = load_data(str(make_folder(tmp_path / "f", 6, size=(16, 16))), size=(16, 16), stream="on", workers=2).images
    files.workers = 2
    torch.manual_seed(5)
    before = torch.get_rng_state()
    batches = list(epoch_batches(files, [torch.arange(0, 4), torch.arange(4, 6)]))
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(torch.cat(batches),
                                                                    torch.stack([files[i] for i in range(6)]))


class Pids(torch.utils.data.Dataset):
    """Item i: (i, the process that read it)."""
    workers = 2

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.tensor([i, os.getpid()])


def passes(dataset, *orders):
    """One pass over ``dataset`` for each order (batches of 5): (the items read, in order; the processes that read them)."""
    out = []
    for order in orders:
        got = torch.cat(list(epoch_batches(dataset, list(torch.tensor(order).split(5)))))
        out.append((got[:, 0].tolist(), set(got[:, 1].tolist())))
    return out


@pytest.mark.slow
def test_kept_workers_serve_every_pass_with_the_same_processes_then_stop():
    data, orders = Pids(), [list(range(12)), list(range(11, -1, -1)), [3, 1, 4, 1, 5, 9, 2, 6]]
    apart = passes(data, *orders[:2])
    assert apart[0][1].isdisjoint(apart[1][1])  # without: each pass starts its own
    with workers.kept_workers(data, None, torch.zeros(2)):
        first = epoch_batches(data, [torch.arange(5), torch.arange(5, 10)])
        assert next(first)[:, 0].tolist() == [0, 1, 2, 3, 4]  # a pass left part way (a time limit), then
        del first
        kept = passes(data, *orders)
        inner = epoch_batches(data, [torch.arange(2), torch.arange(2, 4)])  # a second pass while one is going on
        outer = epoch_batches(data, [torch.arange(4, 6), torch.arange(6, 8)])
        assert [b[:, 0].tolist() for b in zip(*(inner, outer)) for b in b] == [[0, 1], [4, 5], [2, 3], [6, 7]]
        del inner, outer  # (the second's own workers stop with it)
    assert [k[0] for k in kept] == orders
    assert len(kept[0][1]) == 2 and kept[0][1] == kept[1][1] == kept[2][1] and os.getpid() not in kept[0][1]
    assert workers._KEPT == {} and multiprocessing.active_children() == []  # stopped at the block's end
    with workers.kept_workers(data, data):  # one dataset given twice (fit's training and held-out images): kept once
        assert passes(data, orders[0])[0][0] == orders[0]
    assert workers._KEPT == {}


# A user's script under the spawn start method (macOS, Windows; Linux from Python 3.14), without or with the guard:
# each worker process imports the script again.
UNGUARDED = """
import multiprocessing, sys
multiprocessing.set_start_method("spawn", force=True)
import aekit
print("top level ran", flush=True)
cfg = {"data": {"source": sys.argv[1], "size": [16, 16], "workers": 1}, "train": {"epochs": 1, "compare": False}}
aekit.train(cfg, out=sys.argv[2], progress=False)
"""
GUARDED = """
import multiprocessing, sys
import aekit

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    print(len(aekit.load_data(sys.argv[1], size=(16, 16), workers=1)))
"""


@pytest.mark.slow
def test_a_script_that_calls_aekit_unguarded_under_spawn_says_so_in_one_line(tmp_path):
    folder = make_folder(tmp_path / "f", 12, size=(16, 16))
    (tmp_path / "script.py").write_text(UNGUARDED)
    r = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(folder), str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout.split("\n").count("top level ran") == 2  # the script, and the worker that stopped as it started
    # Python's traceback of the script's error, ending in its one line: nothing from the worker (it trained, took
    # the run's lock ...), nor torch's "exited unexpectedly" or Python's bootstrapping message
    assert r.stderr.count("Traceback") == 1 and "exited unexpectedly" not in r.stderr and "bootstrapping" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("aekit.errors.DataError: the worker processes that decode the images (data.workers 1) "
                           "exited as they started") and 'if __name__ == "__main__":' in last, r.stderr
    assert "data.workers 0" in last


@pytest.mark.slow
def test_a_guarded_script_runs_worker_processes_under_spawn(tmp_path):
    folder = make_folder(tmp_path / "f", 12, size=(16, 16))
    (tmp_path / "script.py").write_text(GUARDED)
    r = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(folder)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.split() == ["12"] and not r.stderr, r.stderr


# Every process that imports this script takes 12x12 images as large (above Pillow's warning limit, said once a file).
LARGE = """
import multiprocessing, sys, torch
from PIL import Image
from aekit.data import epoch_batches, load_data
Image.MAX_IMAGE_PIXELS = 100

if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[2], force=True)
    files = load_data(sys.argv[1], size=(12, 12), stream="on", decode=False, workers=1).images  # each file probed
    print(len(list(epoch_batches(files, [torch.arange(0, 6), torch.arange(6, 12)]))))  # a pass, in a new worker
"""


@pytest.mark.slow
def test_a_large_image_is_said_once_under_spawn_as_under_fork(tmp_path):
    folder = make_folder(tmp_path / "f", 12, size=(12, 12))
    (tmp_path / "script.py").write_text(LARGE)
    r = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(folder), "spawn"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["2"], r.stderr
    notes = r.stderr.splitlines()
    assert len(notes) == 12 and len(set(notes)) == 12 and all("12x12 pixels, more than the 100" in n for n in notes)


def test_files_decoded_by_workers_without_a_probe_are_each_said_once(tmp_path, monkeypatch, capfd):
    from PIL import Image

    from aekit.data import decoding, find_images, load_image, read_each

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 12x12 is large (the forked workers take it too)
    monkeypatch.setattr("aekit.data.image_file._NOTED", set())
    monkeypatch.setattr(decoding, "BATCH", 4)  # worker processes from 5 files
    folder = make_folder(tmp_path / "f", 12, size=(12, 12))
    images, kept, _ = read_each(find_images([folder]), load_image, shape=(3, 12, 12), skip_bad=None, inputs=[folder],
                                workers=2)
    assert len(kept) == 12
    notes = capfd.readouterr().err.splitlines()
    assert sorted(notes) == sorted(f"aekit: note: {f}: 12x12 pixels, more than the 100 above which Pillow warns of a "
                                   "decompression bomb; reading it anyway takes gigabytes of memory" for f, _ in kept)


def test_worker_and_thread_counts_are_bounded_by_the_cores(tmp_path, monkeypatch):
    """A run folder from elsewhere may ask for hundreds of workers or thousands of threads (a resume obeys them)."""
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 2)
    assert [workers.worker_count(n) for n in (None, 0, 3, 8, 500)] == [2, 0, 3, 8, 8]


# A guarded script that trains on a streamed folder (each epoch's images decoded by worker processes) under the start
# method of argv[3]; every process that imports it (the script, and each worker that spawn starts) says "started".
TRAIN = """
import multiprocessing, sys
print("started", flush=True, file=sys.stderr)
import aekit

if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[3], force=True)
    cfg = {"data": {"source": sys.argv[1], "size": [16, 16], "workers": 1, "stream": "on"},
           "train": {"epochs": 8, "compare": False}}
    aekit.train(cfg, out=sys.argv[2], progress=False)
"""


@pytest.mark.slow
def test_training_under_spawn_keeps_its_workers_across_epochs_and_trains_as_under_fork(tmp_path):
    folder = make_folder(tmp_path / "f", 24, size=(16, 16))
    (tmp_path / "script.py").write_text(TRAIN)
    runs = {}
    for method in ("spawn", "fork"):
        r = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(folder), str(tmp_path / method), method],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        runs[method] = r.stderr.splitlines().count("started") - 1  # the worker processes started
    # 8 epochs, each a pass over the training and the validation images: kept, their workers start once, not per pass
    assert runs["fork"] == 0 and 2 <= runs["spawn"] < 8
    weights = [(tmp_path / method / "model.safetensors").read_bytes() for method in ("spawn", "fork")]
    assert weights[0] == weights[1]
