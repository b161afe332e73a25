import zipfile

import numpy as np
import pytest

from nmfsep import model
from nmfsep.errors import ModelError


def make_model(**changes):
    fields = dict(bases=np.random.default_rng(0).random((513, 4), dtype=np.float32), sample_rate=16000,
                  n_fft=1024, hop_length=256, beta=1.0, name="voice")
    fields.update(changes)
    return model.Model(**fields)


def test_save_load_round_trip(tmp_path):
    frames = np.random.default_rng(1).random((513, 7)).astype(np.float16)
    original = make_model(frames=frames, pitch_shifts=2)
    model.save(original, tmp_path / "m.npz")
    loaded = model.load(str(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.bases, original.bases)
    np.testing.assert_array_equal(loaded.frames, frames)
    assert (loaded.sample_rate, loaded.n_fft, loaded.hop_length, loaded.beta, loaded.name) == (16000, 1024, 256, 1.0, "voice")
    assert loaded.pitch_shifts == 2
    assert loaded.format_version == model.FORMAT_VERSION and loaded.nmfsep_version


def test_a_version_1_model_still_loads(tmp_path):
    path = save_raw(tmp_path / "m.npz", format_version=np.asarray(1))   # the version-1 fields only
    loaded = model.load(path)
    assert loaded.format_version == 1 and loaded.frames is None and loaded.pitch_shifts == 0
    np.testing.assert_array_equal(loaded.bases, make_model().bases)


def save_raw(path, **overrides):
    m = make_model()
    fields = {name: np.asarray(getattr(m, name)) for name in model.FIELDS}
    fields.update(overrides)
    fields = {k: v for k, v in fields.items() if v is not None}
    np.savez(path, **fields)
    return str(path)


@pytest.mark.parametrize("overrides,message", [
    ({"format_version": np.asarray(model.FORMAT_VERSION + 1)},
     f"model format version {model.FORMAT_VERSION + 1} is newer than this nmfsep reads \\({model.FORMAT_VERSION}\\)"),
    ({"frames": np.ones((100, 3), np.float16)}, "training frames must be finite, non-negative and have 513 bins"),
    ({"frames": -np.ones((513, 3), np.float16)}, "training frames must be finite, non-negative"),
    ({"frames": np.ones((513, model.MAX_FRAMES + 1), np.float16)}, "frames of shape \\(513, 4097\\) are out of range"),
    ({"pitch_shifts": np.asarray(13)}, "invalid pitch shifts 13"),
    ({"bases": None}, "not an nmfsep model \\(no field 'bases'\\)"),
    ({"bases": -np.ones((513, 2), np.float32)}, "bases must be finite and non-negative"),
    ({"bases": np.full((513, 2), np.nan, np.float32)}, "bases must be finite and non-negative"),
    ({"bases": np.zeros((513, 2), np.float32)}, "every basis is all zero: the model describes no sound"),
    ({"bases": np.ones((100, 2), np.float32)}, "bases have 100 bins but n_fft 1024 gives 513"),
    ({"bases": np.ones(513, np.float32)}, "field 'bases' has 1 dimensions, expected 2"),
    ({"name": np.array([1, 2], dtype=object)}, "field 'name' has type object"),
    ({"hop_length": np.asarray(4096)}, "invalid STFT parameters"),
])
def test_invalid_model_files_are_refused(tmp_path, overrides, message):
    path = save_raw(tmp_path / "m.npz", **overrides)
    with pytest.raises(ModelError, match=message):
        model.load(path)


def test_non_model_files_are_refused(tmp_path):
    text = tmp_path / "t.npz"
    text.write_text("hello")
    with pytest.raises(ModelError, match="not an nmfsep model \\(not an .npz archive\\)"):
        model.load(str(text))
    with pytest.raises(ModelError, match="no such model file"):
        model.load(str(tmp_path / "none.npz"))


def test_truncated_model_is_refused(tmp_path):
    path = save_raw(tmp_path / "m.npz")
    data = open(path, "rb").read()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.npz: "):
        model.load(str(tmp_path / "cut.npz"))


@pytest.mark.parametrize("shape,message", [((70000, 4000), "bases of shape \\(70000, 4000\\) are out of range"),
                                           ((20000, 4000), "field 'bases' is truncated")])
def test_header_claiming_huge_array_is_refused_before_allocation(tmp_path, shape, message):
    path = save_raw(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with open(tmp_path / "bases.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(b"\0" * 64)
    members["bases.npy"] = (tmp_path / "bases.npy").read_bytes()
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(ModelError, match=message):
        model.load(str(tmp_path / "huge.npz"))
