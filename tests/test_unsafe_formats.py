"""Weight formats besides pickle (scanner/evidence/unsafe_formats.py): numpy, Keras, HDF5, ONNX. Nothing is loaded.

Files are written with the real libraries (numpy, h5py, onnx); numpy object arrays are saved from harmless
stand-ins whose pickling only names os.system.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import h5py
import numpy as np
import pytest
from helpers import assert_fires, assert_quiet, make_repo, scan
from onnx import TensorProto, external_data_helper, helper

from scanner.evidence.unsafe_formats import (
    external_location_escapes,
    keras_code,
    scan_file,
    scan_hdf5,
    scan_keras,
    scan_numpy,
    scan_onnx,
)
from scanner.sources.bytesource import BytesByteSource, FileByteSource


class _Payload:
    def __reduce__(self):
        return os.system, ("true",)


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# Keras 3's serialisation format (keras.saving.serialize_keras_object): every object names its module.
def keras_layer(cls: str, module: str = "keras.layers", **config) -> dict:
    return {"module": module, "class_name": cls, "config": {"name": cls.lower(), **config}, "registered_name": None}


def keras_model(*layers: dict) -> dict:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {
            "name": "sequential",
            "trainable": True,
            "layers": [
                keras_layer("InputLayer", batch_shape=[None, 4], dtype="float32"),
                *layers,
                keras_layer(
                    "Dense",
                    units=2,
                    activation="linear",
                    dtype={
                        "module": "keras",
                        "class_name": "DTypePolicy",
                        "config": {"name": "float32"},
                        "registered_name": None,
                    },
                    kernel_initializer={
                        "module": "keras.initializers",
                        "class_name": "GlorotUniform",
                        "config": {"seed": None},
                        "registered_name": None,
                    },
                ),
            ],
        },
    }


LAMBDA = keras_layer("Lambda", function={"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA"}})


def dot_keras(config: dict | bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        zf.writestr("config.json", config if isinstance(config, bytes) else json.dumps(config))
        zf.writestr("model.weights.h5", b"")
    return buf.getvalue()


def h5(path, model_config: dict | None) -> bytes:
    with h5py.File(path, "w") as f:
        if model_config is not None:
            f.attrs["model_config"] = json.dumps(model_config).encode()
        f.create_dataset("model_weights/dense/kernel", data=np.zeros((4, 2), dtype=np.float32))
    return path.read_bytes()


# Keras 2's format (tf.keras 2.x HDF5): a Lambda's config carries its marshalled code and its module.
KERAS2_LAMBDA = {
    "class_name": "Sequential",
    "config": {
        "name": "sequential",
        "layers": [
            {"class_name": "Dense", "config": {"name": "dense", "units": 2}},
            {
                "class_name": "Lambda",
                "config": {
                    "name": "lambda",
                    "function": ["4wEAAAAAAAAA", None, None],
                    "function_type": "lambda",
                    "module": "__main__",
                },
            },
        ],
    },
}
KERAS2_PLAIN = {
    "class_name": "Sequential",
    "config": {"name": "sequential", "layers": [{"class_name": "Dense", "config": {"name": "dense", "units": 2}}]},
}


def onnx_model(location: str | None) -> bytes:
    """Identity(W); W's data lives in an external file at `location` (inline when None)."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [2], np.array([1, 2], np.float32).tobytes(), raw=True)
    if location is not None:
        external_data_helper.set_external_data(w, location=location)
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph(
        [helper.make_node("Identity", ["W"], ["Y"])],
        "g",
        [],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
        initializer=[w],
    )
    return helper.make_model(graph).SerializeToString()


def src(data: bytes) -> BytesByteSource:
    return BytesByteSource(data)


# == numpy ==========================================================================================================
def test_numeric_npy_and_npz_are_quiet():
    assert scan_numpy(src(npy(np.arange(6.0).reshape(2, 3))), "a.npy") == scan_numpy(src(npz(a=np.ones(3))), "b.npz")
    r = scan_numpy(src(npz(a=np.ones(3), b=np.zeros((2, 2), np.int8))), "b.npz")
    assert (r.objects, r.pickle, r.unverifiable) == ([], None, None)


def test_object_array_is_found_and_its_pickle_analysed():
    r = scan_numpy(src(npy(np.array([1, _Payload()], dtype=object))), "w.npy")
    assert r.objects == ["w.npy"] and r.pickle and f"{os.system.__module__} system" in r.pickle.unsafe


def test_object_array_inside_npz():
    r = scan_numpy(src(npz(ok=np.ones(2), names=np.array(["a", None], dtype=object))), "w.npz")
    assert r.objects == ["names"] and r.pickle and not r.pickle.dangerous  # strings only: no globals


def test_structured_dtype_with_an_object_field():
    r = scan_numpy(src(npy(np.zeros(2, dtype=[("x", "f4"), ("o", "O")]))), "s.npy")
    assert r.objects == ["s.npy"]


@pytest.mark.parametrize(
    "data",
    [
        b"\x93NUMPY\x01\x00\x05\x00{'de",
        b"\x93NUMPY\x09\x00" + b"x" * 20,
        b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 65535,
        b"PK\x03\x04 broken",
    ],
)
def test_malformed_numpy_is_unverifiable(data):
    assert scan_numpy(src(data), "x.npy").unverifiable


# == Keras ==========================================================================================================
def test_keras_lambda_layer_is_found():
    assert keras_code(keras_model(LAMBDA)) == ["Lambda layer 'lambda' (Python bytecode)"]
    assert scan_keras(src(dot_keras(keras_model(LAMBDA))), "m.keras").code


def test_keras_module_outside_keras_is_found():
    """Keras imports an object's `module` to deserialise it: a function from os is an import of os."""
    evil = keras_layer(
        "Dense",
        units=2,
        activation={"module": "os", "class_name": "function", "config": "system", "registered_name": "system"},
    )
    assert keras_code(keras_model(evil)) == ["os.function (imported from outside Keras)"]


def test_plain_keras_model_is_quiet():
    r = scan_keras(src(dot_keras(keras_model(keras_layer("Dropout", rate=0.1)))), "m.keras")
    assert (r.code, r.unverifiable) == ([], None)


@pytest.mark.parametrize(
    "data,why",
    [
        (dot_keras(b"{not json"), "not valid JSON"),
        (dot_keras(b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
        (b"PK\x03\x04 broken", "not a readable .keras archive"),
    ],
)
def test_malformed_keras_is_unverifiable(data, why):
    r = scan_keras(src(data), "m.keras")
    assert r.unverifiable and why in r.unverifiable


def test_keras_without_config():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.weights.h5", b"")
    assert "without config.json" in scan_keras(src(buf.getvalue()), "m.keras").unverifiable


def test_hdf5_keras2_lambda_is_found(tmp_path):
    path = tmp_path / "model.h5"
    h5(path, KERAS2_LAMBDA)
    source = FileByteSource(path)
    try:
        assert scan_hdf5(source, "model.h5").code == ["Lambda layer 'lambda' (Python bytecode)"]
    finally:
        source.close()


@pytest.mark.parametrize("config", [KERAS2_PLAIN, None], ids=["plain-model", "weights-only"])
def test_hdf5_without_code_is_quiet(tmp_path, config):
    r = scan_hdf5(src(h5(tmp_path / "m.h5", config)), "m.h5")
    assert (r.code, r.unverifiable) == ([], None)


def test_not_hdf5_is_unverifiable():
    assert "not a readable HDF5 file" in scan_hdf5(src(b"\x89HDF\r\n\x1a\n" + b"\0" * 64), "m.h5").unverifiable


# == ONNX ===========================================================================================================
@pytest.mark.parametrize(
    "location,escapes",
    [
        ("model.onnx_data", False),
        ("weights/w.bin", False),
        ("../onnx/w.bin", False),
        ("../../etc/passwd", True),
        ("/etc/passwd", True),
        ("C:\\Windows\\win.ini", True),
        ("..\\..\\x", True),
        ("~/.ssh/id_rsa", True),
        ("", True),
        ("weights/../../../x", True),
        ("file:///etc/passwd", True),
    ],
)
def test_external_location(location, escapes):
    assert external_location_escapes("onnx/model.onnx", location) is escapes


def test_onnx_external_data_outside_the_repo_is_found():
    r = scan_onnx(src(onnx_model("../../../etc/passwd")), "onnx/model.onnx")
    assert r.escapes == ["W -> '../../../etc/passwd'"]


@pytest.mark.parametrize("location", [None, "model.onnx_data"], ids=["inline", "external-beside"])
def test_onnx_inside_the_repo_is_quiet(location):
    r = scan_onnx(src(onnx_model(location)), "onnx/model.onnx")
    assert (r.escapes, r.unverifiable) == ([], None)


def test_onnx_tensor_in_a_subgraph_is_found():
    inner = helper.make_graph(
        [
            helper.make_node(
                "Constant",
                [],
                ["c"],
                value=helper.make_tensor("C", TensorProto.FLOAT, [1], np.ones(1, np.float32).tobytes(), raw=True),
            )
        ],
        "then",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )
    const = inner.node[0].attribute[0].t
    external_data_helper.set_external_data(const, location="/etc/shadow")
    const.ClearField("raw_data")
    const.data_location = TensorProto.EXTERNAL
    node = helper.make_node("If", ["cond"], ["c"], then_branch=inner, else_branch=inner)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )
    assert scan_onnx(src(helper.make_model(graph).SerializeToString()), "m.onnx").escapes


def test_onnx_beyond_the_download_budget_is_unverifiable_when_remote(monkeypatch):
    from scanner.evidence import unsafe_formats

    data = onnx_model("../../etc/passwd")
    monkeypatch.setattr(unsafe_formats, "MAX_REMOTE_ONNX_BYTES", len(data) - 1)
    assert scan_file(src(data), "m.onnx", remote=False).escapes
    remote = scan_file(src(data), "m.onnx", remote=True)
    assert remote.escapes == [] and "budget" in remote.unverifiable


def test_malformed_onnx_is_unverifiable():
    assert "not a readable ONNX model" in scan_onnx(src(b"\xff\xff\xff garbage"), "m.onnx").unverifiable


# == through the scanner ==========================================================================================
def test_scan_reports_each_format(tmp_path):
    repo = make_repo(
        tmp_path,
        card={"license": "mit"},
        files={
            "objects.npy": npy(np.array([_Payload()], dtype=object)),
            "numbers.npz": npz(a=np.ones(3)),
            "model.keras": dot_keras(keras_model(LAMBDA)),
            "onnx/model.onnx": onnx_model("../../secret"),
        },
    )
    report = scan(repo)
    assert [f.path for f in assert_fires(report, "security.numpy_object_array")] == ["objects.npy"]
    assert [f.path for f in assert_fires(report, "security.pickle_unsafe_import")] == ["objects.npy"]
    assert [f.path for f in assert_fires(report, "security.keras_code")] == ["model.keras"]
    assert [f.path for f in assert_fires(report, "security.onnx_external_data")] == ["onnx/model.onnx"]
    assert_quiet(report, "security.pickle_weights")  # none of these is a pickle weight file
