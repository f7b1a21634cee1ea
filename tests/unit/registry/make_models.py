#!/usr/bin/python3
"""Makes real model files (and malicious/impostor ones) for the intake tests.

usage: make_models.py OUTDIR
Writes OUTDIR/<name> files and OUTDIR/skipped.txt naming cases whose Python
package is missing (the C test skips only those).
"""
import io
import os
import pickle
import random
import sys
import tarfile
import warnings
import zipfile

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
skipped = []


def path(name):
    return os.path.join(out, name)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


class Evil:
    """Unpickling runs os.system (the scanner must refuse it unrun)."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


import numpy as np  # noqa: E402

X = np.random.RandomState(0).rand(40, 4)
y = (X[:, 0] > 0.5).astype(int)

# ---- scikit-learn: pickle and joblib (plain, zlib, gzip, bz2, lzma) ----------
try:
    import joblib
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(X, y)
    write("sk.pkl", pickle.dumps(clf, protocol=4))
    write("sk_p2.pkl", pickle.dumps(clf, protocol=2))
    write("sk_p5.pkl", pickle.dumps(clf, protocol=5))
    joblib.dump(clf, path("sk.joblib"))
    joblib.dump(clf, path("sk_zlib.joblib"), compress=3)
    joblib.dump(clf, path("sk_gzip.joblib"), compress=("gzip", 3))
    joblib.dump(clf, path("sk_bz2.joblib"), compress=("bz2", 3))
    joblib.dump(clf, path("sk_xz.joblib"), compress=("xz", 3))
    # object arrays: joblib writes a nested pickle inline after the wrapper
    joblib.dump({"model": clf, "names": np.array(["a", "b"], dtype=object)}, path("sk_obj.joblib"))
    joblib.dump({"model": clf, "evil": Evil()}, path("evil.joblib"))
    # the malicious object after a numpy array: the scanner must walk the array bytes
    joblib.dump([np.arange(1000, dtype=np.float64), Evil()], path("evil_after_array.joblib"))
except ImportError as e:
    skipped.append("sklearn %s" % e)

# ---- malicious pickles in every protocol -------------------------------------
for proto in (0, 1, 2, 3, 4, 5):
    write("evil_p%d.pkl" % proto, pickle.dumps(Evil(), protocol=proto))
write("benign_p0.pkl", pickle.dumps({"a": [1, 2.5, "x"], "b": (True, None)}, protocol=0))

# ---- XGBoost ------------------------------------------------------------------
try:
    import xgboost as xgb

    d = xgb.DMatrix(X, label=y, feature_names=["f_a", "f_b", "f_c", "f_d"])
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 2}, d, 3)
    bst.save_model(path("xgb.json"))
    bst.save_model(path("xgb.ubj"))
    bst.save_model(path("xgb.deprecated"))  # the legacy binary format
except ImportError as e:
    skipped.append("xgboost %s" % e)

# ---- ONNX via onnx.helper ------------------------------------------------------
try:
    import onnx
    from onnx import TensorProto, helper

    W = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], np.ones(8, dtype=np.float32).tolist())
    node = helper.make_node("MatMul", ["X", "W"], ["Y"])
    graph = helper.make_graph(
        [node], "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[W])
    model = helper.make_model(graph, producer_name="kiln-tests",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    write("tiny.onnx", model.SerializeToString())
    # external data escaping the model directory
    W2 = TensorProto()
    W2.name = "W"
    W2.data_type = TensorProto.FLOAT
    W2.dims.extend([4, 2])
    W2.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "32")):
        e = W2.external_data.add()
        e.key, e.value = k, v
    g2 = helper.make_graph([node], "ext", graph.input, graph.output, initializer=[W2])
    m2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 13)])
    write("ext_escape.onnx", m2.SerializeToString())
except ImportError as e:
    skipped.append("onnx %s" % e)

# ---- PyTorch: TorchScript, a state_dict, and a malicious torch zip --------------
try:
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    torch.jit.script(net).save(path("ts.pt"))
    torch.save(net.state_dict(), path("state_dict.pt"))
    torch.save({"w": torch.ones(2), "evil": Evil()}, path("evil_torch.pt"))
except ImportError as e:
    skipped.append("torch %s" % e)

# ---- Keras-like HDF5 (h5py; Keras itself is not in Debian 12) --------------------
try:
    import json

    import h5py

    cfg = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "dtype": "float32"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 1}}]}}
    with h5py.File(path("keras.h5"), "w") as f:
        f.attrs["keras_version"] = "2.11.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(cfg)
        f.create_dataset("model_weights/dense/kernel", data=np.ones((4, 1), dtype=np.float32))
    cfg["config"]["layers"].append({"class_name": "Lambda", "config": {"function": "4wEAAAAA"}})
    with h5py.File(path("keras_lambda.h5"), "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
    with h5py.File(path("weights_only.h5"), "w") as f:
        f.create_dataset("dense/kernel", data=np.ones((4, 1), dtype=np.float32))
except ImportError as e:
    skipped.append("h5py %s" % e)

# ---- LightGBM text (python3-lightgbm is not in Debian 12: a minimal real-looking one)
LGB = """tree
version=v3
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=3
objective=binary sigmoid:1
feature_names=f0 f1 f2 f3
feature_infos=[0:1] [0:1] [0:1] [0:1]
tree_sizes=300

Tree=0
num_leaves=2
num_cat=0
split_feature=0
split_gain=10
threshold=0.5
decision_type=2
left_child=-1
right_child=-2
leaf_value=-0.1 0.1
leaf_weight=20 20
leaf_count=20 20
internal_value=0
internal_weight=40
internal_count=40
is_linear=0
shrinkage=1


end of trees

feature_importances:
f0=1

parameters:
[objective: binary]
end of parameters

pandas_categorical:null
"""
write("model.lgb.txt", LGB.encode())

# ---- MLflow model directories, zipped and tar.gz'd ---------------------------------
MLMODEL = """artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.2
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.2.1
mlflow_version: 2.9.2
model_uuid: 0c3d9d0e1f5a4f3b9a6f3f1f2b7c9d11
run_id: 5b1e6e4e0d3c4b7a9a0e3f1f2b7c9d22
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}, {"type": "double", "name": "b", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
utc_time_created: '2024-01-02 03:04:05.000000'
"""
if os.path.exists(path("sk.pkl")):
    skbytes = open(path("sk.pkl"), "rb").read()
    with zipfile.ZipFile(path("mlflow.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model/MLmodel", MLMODEL)
        z.writestr("model/model.pkl", skbytes)
        z.writestr("model/input_example.json", '{"columns": ["a", "b"], "data": [[1, 2]]}')
    with tarfile.open(path("mlflow.tar.gz"), "w:gz") as t:
        for name, data in (("MLmodel", MLMODEL.encode()), ("model.pkl", skbytes)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(path("mlflow_evil.zip"), "w") as z:
        z.writestr("MLmodel", MLMODEL)
        z.writestr("model.pkl", pickle.dumps(Evil(), protocol=4))

# ---- hostile archives -------------------------------------------------------------
with zipfile.ZipFile(path("slip.zip"), "w") as z:
    z.writestr("../../evil.txt", "x")
with zipfile.ZipFile(path("bomb.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("model/MLmodel", MLMODEL)
    z.writestr("model/zeros.bin", b"\0" * (20 << 20))
with tarfile.open(path("symlink.tar.gz"), "w:gz") as t:
    info = tarfile.TarInfo("MLmodel")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    t.addfile(info)
with zipfile.ZipFile(path("plain.zip"), "w") as z:
    z.writestr("readme.txt", "hello")

# ---- impostors ------------------------------------------------------------------------
write("random.bin", bytes(random.Random(7).getrandbits(8) for _ in range(4096)))
write("text.onnx", b"this is not an onnx model\n")
if os.path.exists(path("tiny.onnx")):
    write("renamed_onnx.pkl", open(path("tiny.onnx"), "rb").read())  # content wins
    write("truncated.onnx", open(path("tiny.onnx"), "rb").read()[:60])
if os.path.exists(path("sk.pkl")):
    write("truncated.pkl", open(path("sk.pkl"), "rb").read()[:200])
if os.path.exists(path("xgb.json")):
    write("truncated_xgb.json", open(path("xgb.json"), "rb").read()[:300])
if os.path.exists(path("keras.h5")):
    write("truncated.h5", open(path("keras.h5"), "rb").read()[:1000])
if os.path.exists(path("ts.pt")):
    write("truncated_ts.pt", open(path("ts.pt"), "rb").read()[:500])

with open(path("skipped.txt"), "w") as f:
    f.write("\n".join(skipped))
print("made %d files; skipped: %s" % (len(os.listdir(out)), skipped or "none"))
