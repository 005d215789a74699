"""Export to ONNX, torch.export (.pt2) and TorchScript: the files reproduce PyTorch, with a dynamic batch axis
(and, for the models of any size, dynamic height and width)."""

import re
import subprocess
import sys

import pytest
import torch

import aekit
from aekit.errors import AekitError
from aekit.export import TOLERANCE, export
from helpers import copy_run


def reference_output(model, part, x):
    with torch.no_grad():
        if part == "encoder":
            return model.encode(x)
        if part == "decoder":
            return model.decode(x)
        return model(x).recon


def part_input(model, part, batch):
    """Images for the whole model and the encoder, codes (from images) for the decoder."""
    c = model.config
    x = torch.rand(batch, c.in_channels, *c.input_size)
    if part == "decoder":
        with torch.no_grad():
            return model.encode(x)
    return x


@pytest.mark.parametrize("part", ["all", "encoder", "decoder"])
@pytest.mark.parametrize("name", aekit.list_models())
def test_onnx_file_runs_in_onnxruntime_like_pytorch_at_any_batch_size(name, part, tmp_path):
    import onnxruntime

    model = aekit.create_model(name).eval()
    if part == "decoder" and not model.decodes_codes:
        with pytest.raises(aekit.AekitError, match="cannot decode a bare code"):
            export(model, tmp_path / "m.onnx", part=part)
        return
    result = export(model, tmp_path / "m.onnx", part=part)
    assert result.max_abs_diff < TOLERANCE and result.path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # one file, no external data, no temporary
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert isinstance(inp.shape[0], str)  # a named, dynamic batch axis
    for batch in (1, 5):
        x = part_input(model, part, batch)
        (y,) = session.run(None, {inp.name: x.numpy()})
        assert (torch.from_numpy(y) - reference_output(model, part, x)).abs().max() < TOLERANCE


@pytest.mark.parametrize("part", ["all", "encoder", "decoder"])
@pytest.mark.parametrize("name", aekit.list_models())
def test_pt2_file_reloads_with_torch_export_and_matches_pytorch(name, part, tmp_path):
    model = aekit.create_model(name).eval()
    if part == "decoder" and not model.decodes_codes:
        return  # covered by the ONNX test: a clear error
    result = export(model, tmp_path / "m.pt2", part=part)  # the format from the suffix, as the CLI's
    assert result.format == "pt2" and result.max_abs_diff < TOLERANCE
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt2"]
    loaded = torch.export.load(str(result.path)).module()
    for batch in (1, 3):
        x = part_input(model, part, batch)
        assert (loaded(x) - reference_output(model, part, x)).abs().max() < TOLERANCE
    assert_holds_only_its_part(loaded, model, part)


def assert_holds_only_its_part(loaded, model, part):
    """A decoder's file carries no encoder weights (and the reverse), as an ONNX file drops them."""
    held = list(loaded.state_dict())
    assert held and not any(k.startswith("model.") and k.split(".")[1] == {"encoder": "decoder", "decoder": "encoder"}
                            .get(part) for k in held)
    whole = sum(p.numel() for p in model.parameters())
    ours = sum(v.numel() for k, v in loaded.state_dict().items() if any(k.endswith(n) for n, _ in model.named_parameters()))
    assert (ours == whole) == (part == "all")


ANY_SIZES = [(25, 25), (40, 24), (9, 13)]  # not multiples of the unet's 8, the smallest side it exports for


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript"])
@pytest.mark.parametrize("name", [n for n in aekit.list_models() if aekit.models.model_class(n).any_size])
def test_a_model_of_any_size_exports_with_dynamic_height_and_width(name, fmt, tmp_path):
    model = aekit.create_model(name).eval()
    result = export(model, tmp_path / "m", format=fmt)
    sizes = "32x32, 37x35 and 50x41" if name == "unet" else "32x32, 37x35 and 42x37"  # a trace: two other sizes
    sizes = sizes if fmt == "torchscript" else "32x32 and 37x35"
    assert result.any_size and result.checked_on == f"8 random images, at {sizes}"
    if fmt == "torchscript":  # the trace records the models' size arithmetic
        run = torch.jit.load(str(result.path))
    elif fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape == ["batch", 1, "height", "width"]
        assert session.get_outputs()[0].shape == ["batch", 1, "height", "width"]
        run = lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])  # noqa: E731
    else:
        run = torch.export.load(str(result.path)).module()
    for size in ANY_SIZES:
        x = torch.rand(2, 1, *size)
        y = run(x)
        assert y.shape == x.shape and (y - reference_output(model, "all", x)).abs().max() < TOLERANCE
    if fmt == "pt2":  # a side at or below the factor is refused, not silently wrong
        with pytest.raises(Exception, match="Guard failed"):
            run(torch.rand(1, 1, model.factor, 16))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
@pytest.mark.parametrize("fixed", ["fails", "differs"])
def test_another_size_that_fails_or_differs_fixes_a_trace_and_refuses_a_dynamic_file(tmp_path, monkeypatch, fixed, fmt):
    """A .pt2 (or ONNX) file declares them dynamic: one that fails or differs at another size is not written."""
    writer = getattr(aekit.export, f"write_{fmt}")

    def fixing(module, example, path, shapes):  # a file that holds only at the size it was made at
        run = writer(module, example, path, shapes)

        def at_its_size(x):
            if x.shape[-2:] == example.shape[-2:]:
                return run(x)
            if fixed == "fails":  # as torch.jit says it of a size baked into a view
                raise RuntimeError(f"shape '[2, 24, 32, 32]' is invalid for input of size {x.numel() * 24}")
            return run(x) + 1

        return at_its_size

    monkeypatch.setattr(aekit.export, f"write_{fmt}", fixing)
    if fmt == "pt2":
        with pytest.raises(aekit.AekitError, match="differs from PyTorch by (inf|1) .* on 8 random images, at 32x32 "
                                                   "and 37x35; the file was not written"):
            export(aekit.create_model("unet").eval(), tmp_path / "m.pt2")
        assert not (tmp_path / "m.pt2").exists()
        return
    result = export(aekit.create_model("unet").eval(), tmp_path / "m.pt")
    assert result.path.is_file() and not result.any_size and result.checked_on == "8 random images"
    assert result.max_abs_diff < TOLERANCE


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("part", ["all", "decoder"])
@pytest.mark.parametrize("name", aekit.list_models())
def test_torchscript_file_reloads_and_matches_pytorch(name, part, tmp_path):
    model = aekit.create_model(name)
    if part == "decoder" and not model.decodes_codes:
        return  # covered by the ONNX test: a clear error
    model.train()
    result = export(model, tmp_path / "m.pt", part=part)
    assert result.format == "torchscript"
    assert result.max_abs_diff < TOLERANCE
    assert model.training  # the caller's model is left as it was
    model.eval()
    loaded = torch.jit.load(str(result.path))
    for batch in (1, 3):
        x = part_input(model, part, batch)
        assert (loaded(x) - reference_output(model, part, x)).abs().max() < TOLERANCE
    assert_holds_only_its_part(loaded, model, part)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_aekit_export_checks_a_run_on_its_own_images_and_prints_the_difference(tiny_run, tmp_path, cli):
    out = tmp_path / "run.onnx"
    r = cli("export", tiny_run.out, "--out", out)
    assert r.code == 0, r.err
    printed = r.out
    diff = re.search(r"Largest absolute difference from PyTorch: (\S+) \(on 8 held-out images of olivetti\)", printed)
    assert diff and float(diff.group(1)) < TOLERANCE, printed
    assert out.is_file()
    # the default file name sits in the run folder
    run = copy_run(tiny_run, tmp_path)  # the default file goes into the run folder: a private copy
    assert cli("export", run, "--part", "encoder", "--format", "torchscript").code == 0
    assert (run / "model-encoder.pt").is_file()
    # without --format, the suffix of --out chooses it
    r = cli("export", run, "--part", "decoder", "--out", tmp_path / "decoder.pt")
    assert r.code == 0 and "(torchscript, decoder)" in r.out, r.err
    torch.jit.load(str(tmp_path / "decoder.pt"))
    r = cli("export", run, "--out", tmp_path / "model.pt2")
    assert r.code == 0 and "(pt2, all)" in r.out, r.err  # a fixed-size model: no "any height and width"


def test_aekit_export_of_a_denoiser_says_it_takes_any_size(tmp_path, cli):
    aekit.save(aekit.create_model("unet", channels=4, blocks=1, code_length=32), tmp_path / "dn")
    r = cli("export", tmp_path / "dn", "--out", tmp_path / "dn.pt2")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == f"Wrote {tmp_path / 'dn.pt2'} (pt2, all; any height and width)"
    assert "(on 8 random images, at 32x32 and 37x35)" in r.out
    x = torch.rand(1, 1, 50, 70)
    assert torch.export.load(str(tmp_path / "dn.pt2")).module()(x).shape == x.shape


def test_a_file_that_fails_the_check_is_not_written(tiny_images, tmp_path, monkeypatch):
    monkeypatch.setattr("aekit.export.TOLERANCE", -1.0)  # every difference now fails the check
    with pytest.raises(AekitError, match=r"differs from PyTorch by .* the file was not written"):
        export(aekit.create_model("conv"), tmp_path / "m.pt", format="torchscript")
    assert list(tmp_path.iterdir()) == []


# Export onto a full disk, in a process of its own: the file size limit (ulimit -f; Python ignores SIGXFSZ)
# stops every write past 16 KiB with EFBIG, as a full disk stops it with ENOSPC.
FULL_DISK = """
import resource, sys
from aekit import create_model
from aekit.export import export
model = create_model("conv")
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    export(model, sys.argv[1])
except Exception as e:
    print(type(e).__name__, e)
"""


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".pt", ".pt2", ".onnx"])
def test_a_full_disk_is_a_python_error_and_leaves_no_file(tmp_path, suffix):
    r = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / f"m{suffix}")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]  # TorchScript's own writer aborted the process (134, a C++ stack)
    assert "File too large" in r.stdout and "\n" not in r.stdout.strip(), r.stdout
    assert list(tmp_path.iterdir()) == []  # no hidden temporary left behind


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_an_existing_file_is_replaced_only_with_overwrite_and_only_by_a_file_that_passed(tmp_path, monkeypatch, cli,
                                                                                          tiny_run):
    out = tmp_path / "m.pt"
    out.write_bytes(b"an earlier export")
    r = cli("export", tiny_run.out, "--out", out)
    assert r.error == f"aekit: error: --out {out}: already exists (add --overwrite to replace it)"
    assert out.read_bytes() == b"an earlier export"
    monkeypatch.setattr("aekit.export.TOLERANCE", -1.0)  # the new file fails its check: the old one stays
    with pytest.raises(AekitError, match="the file was not written"):
        export(aekit.create_model("conv"), out, format="torchscript", overwrite=True)
    assert out.read_bytes() == b"an earlier export" and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    monkeypatch.undo()
    r = cli("export", tiny_run.out, "--out", out, "--overwrite")
    assert r.code == 0, r.err
    torch.jit.load(str(out))


def test_out_that_is_a_folder_is_refused_even_with_overwrite(tiny_run, tmp_path, cli):
    (tmp_path / "folder").mkdir()
    error = cli("export", tiny_run.out, "--out", tmp_path / "folder", "--overwrite").error
    assert error == f"aekit: error: --out {tmp_path / 'folder'}: is a folder; give the file to write"


def test_the_runs_own_files_are_never_an_out_even_with_overwrite(tiny_run, cli):
    weights = tiny_run.out / "model.safetensors"
    before = weights.read_bytes()
    assert cli("export", tiny_run.out, "--format", "onnx", "--out", weights, "--overwrite").error == (
        f"aekit: error: --out {weights}: is the run's own model.safetensors; give another file name")
    assert cli("evaluate", tiny_run.out, "--out", tiny_run.out / "model.json", "--overwrite").error.endswith(
        "is the run's own model.json; give another file name")
    assert weights.read_bytes() == before


def test_onnx_without_the_optional_packages_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(AekitError, match=r"needs the onnxruntime package: pip install 'aekit\[export\]'"):
        export(aekit.create_model("conv"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nothing-here"], "{tmp}/nothing-here: no such run or model folder"),
    (["{tmp}", "--out", "{tmp}/m.onnx"], "{tmp}: no model.json (not a finished aekit run or model folder)"),
    (["{run}", "--out", "{tmp}/no/such/m.onnx"], "--out {tmp}/no/such/m.onnx: folder {tmp}/no/such does not exist"),
    (["{run}", "--format", "onnx", "--out", "{tmp}/m.pt2"], "--format onnx does not match the suffix of --out "
     "{tmp}/m.pt2 (pt2); give a name ending in .onnx, or let the suffix decide alone"),
])
def test_export_mistakes_are_one_line_errors(args, message, tiny_run, tmp_path, cli):
    fill = {"tmp": tmp_path, "run": tiny_run.out}
    assert cli("export", *(a.format(**fill) for a in args)).error == "aekit: error: " + message.format(**fill)


def test_a_unet_that_estimates_its_noise_level_exports_to_onnx(tmp_path):
    import onnxruntime

    model = aekit.create_model("unet", channels=4, levels=2, blocks=1, code_length=16, level_input=True).eval()
    result = export(model, tmp_path / "m.onnx")
    assert result.max_abs_diff < TOLERANCE
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = (torch.rand(3, 1, 32, 32) * 0.5 + 0.25 + 0.1 * torch.randn(3, 1, 32, 32)).clamp(0, 1)
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert (torch.from_numpy(y) - reference_output(model, "all", x)).abs().max() < TOLERANCE
