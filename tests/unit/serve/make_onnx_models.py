# Builds the ONNX models the onnx backend's unit tests load, and next to each
# one a JSON file with inputs and the reference outputs computed here with
# numpy (tree ensembles are walked by hand, never by onnxruntime).
# Usage: make_onnx_models.py DIR
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
rng = np.random.default_rng(20240607)


def save(out, name, graph, ref):
    model = helper.make_model(graph, opset_imports=OPSETS, producer_name="kiln-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, name + ".onnx"))
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(ref, f)


def seq_of_map(key_type):
    # onnx 1.12's helper has no make_map_type_proto: fill the TypeProto by hand
    m = onnx.TypeProto()
    m.map_type.key_type = key_type
    m.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, []))
    return helper.make_sequence_type_proto(m)


def dyadic(shape, scale, den):
    # Multiples of 1/den: every float32 product and sum below stays exact, so
    # the reference does not depend on the order ONNX Runtime adds in.
    return (rng.integers(-scale, scale + 1, size=shape) / den).astype(np.float32)


def mlp(out):
    w1, b1 = dyadic((4, 8), 8, 8), dyadic((8,), 8, 4)
    w2, b2 = dyadic((8, 3), 8, 8), dyadic((3,), 8, 4)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["y"]),
    ]
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], inits)
    x = dyadic((7, 4), 16, 16)
    xd = x.astype(np.float64)
    y = np.maximum(xd @ w1 + b1, 0) @ w2 + b2
    save(out, "mlp", g, {"x": x.tolist(), "y": y.tolist()})


def random_trees(ntrees, depth, nfeat):
    """Complete binary trees: per tree a list of nodes (feature, threshold,
    true, false) with leaves as None. Thresholds are multiples of 0.25 and
    inputs below sit on odd multiples of 0.125, so no input ever equals a
    threshold."""
    trees = []
    for _ in range(ntrees):
        nodes = []
        n_internal = 2 ** depth - 1
        for i in range(2 ** (depth + 1) - 1):
            if i < n_internal:
                nodes.append((int(rng.integers(nfeat)), float(rng.integers(-8, 9)) * 0.25, 2 * i + 1, 2 * i + 2))
            else:
                nodes.append(None)
        trees.append(nodes)
    return trees


def tree_inputs(rows, nfeat):
    return ((rng.integers(-12, 12, size=(rows, nfeat)) * 0.25) + 0.125).astype(np.float32)


def walk(tree, row):
    i = 0
    while tree[i] is not None:
        f, thr, t, fl = tree[i]
        i = t if row[f] <= thr else fl
    return i


def tree_attrs(trees):
    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
                         "nodes_truenodeids", "nodes_falsenodeids")}
    for ti, tree in enumerate(trees):
        for ni, n in enumerate(tree):
            a["nodes_treeids"].append(ti)
            a["nodes_nodeids"].append(ni)
            a["nodes_featureids"].append(n[0] if n else 0)
            a["nodes_values"].append(n[1] if n else 0.0)
            a["nodes_modes"].append("BRANCH_LEQ" if n else "LEAF")
            a["nodes_truenodeids"].append(n[2] if n else 0)
            a["nodes_falsenodeids"].append(n[3] if n else 0)
    return a


def leaves(trees):
    return [(ti, ni) for ti, tree in enumerate(trees) for ni, n in enumerate(tree) if n is None]


def tree_regressor(out):
    nfeat, ntargets = 5, 2
    trees = random_trees(4, 3, nfeat)
    weights = {}
    attrs = tree_attrs(trees)
    tt, tn, tid, tw = [], [], [], []
    for ti, ni in leaves(trees):
        for k in range(ntargets):
            w = float(rng.integers(1, 64)) / 8
            weights[(ti, ni, k)] = w
            tt.append(ti), tn.append(ni), tid.append(k), tw.append(w)
    base = [0.5, -0.25]
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["variable"], domain="ai.onnx.ml", n_targets=ntargets,
                            target_treeids=tt, target_nodeids=tn, target_ids=tid, target_weights=tw,
                            base_values=base, aggregate_function="SUM", post_transform="NONE", **attrs)
    g = helper.make_graph([node], "tree_regressor",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, nfeat])],
                          [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, ntargets])])
    x = tree_inputs(9, nfeat)
    y = np.zeros((len(x), ntargets))
    for r, row in enumerate(x):
        for k in range(ntargets):
            y[r, k] = base[k] + sum(weights[(ti, walk(tree, row), k)] for ti, tree in enumerate(trees))
    save(out, "tree_regressor", g, {"x": x.tolist(), "y": y.tolist(), "features": nfeat})


def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tree_classifier(out):
    nfeat, labels = 4, [10, 20, 30]
    trees = random_trees(3, 3, nfeat)
    attrs = tree_attrs(trees)
    weights = {}
    ct, cn, cid, cw = [], [], [], []
    for ti, ni in leaves(trees):
        for k in range(len(labels)):
            w = float(rng.integers(0, 32)) / 8
            weights[(ti, ni, k)] = w
            ct.append(ti), cn.append(ni), cid.append(k), cw.append(w)
    clf = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
                           class_treeids=ct, class_nodeids=cn, class_ids=cid, class_weights=cw,
                           classlabels_int64s=labels, post_transform="SOFTMAX", **attrs)
    zm = helper.make_node("ZipMap", ["probabilities"], ["output_probability"], domain="ai.onnx.ml",
                          classlabels_int64s=labels)
    seq_map = seq_of_map(TensorProto.INT64)
    g = helper.make_graph([clf, zm], "tree_classifier",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, nfeat])],
                          [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                           helper.make_value_info("output_probability", seq_map)])
    x = tree_inputs(12, nfeat)
    scores = np.zeros((len(x), len(labels)))
    for r, row in enumerate(x):
        for k in range(len(labels)):
            scores[r, k] = sum(weights[(ti, walk(tree, row), k)] for ti, tree in enumerate(trees))
    # keep only rows with one clear winner so the label is well defined
    top = np.sort(scores, axis=1)
    keep = top[:, -1] > top[:, -2]
    x, scores = x[keep], scores[keep]
    label = [labels[i] for i in scores.argmax(axis=1)]
    proba = softmax(scores)
    save(out, "tree_classifier", g, {"x": x.tolist(), "label": label,
                                     "probabilities": [{str(l): p[i] for i, l in enumerate(labels)}
                                                       for p in proba.tolist()]})


def linear_classifier(out):
    nfeat, labels = 3, ["setosa", "versicolor", "virginica"]
    coef = dyadic((len(labels), nfeat), 16, 8)
    icpt = dyadic((len(labels),), 8, 4)
    lin = helper.make_node("LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                           coefficients=coef.flatten().tolist(), intercepts=icpt.tolist(),
                           classlabels_strings=labels, post_transform="SOFTMAX", multi_class=0)
    zm = helper.make_node("ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml", classlabels_strings=labels)
    seq_map = seq_of_map(TensorProto.STRING)
    g = helper.make_graph([lin, zm], "linear_classifier",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, nfeat])],
                          [helper.make_tensor_value_info("label", TensorProto.STRING, [None]),
                           helper.make_value_info("probabilities", seq_map)])
    x = dyadic((10, nfeat), 16, 4)
    scores = x.astype(np.float64) @ coef.T.astype(np.float64) + icpt
    top = np.sort(scores, axis=1)
    keep = top[:, -1] > top[:, -2]
    x, scores = x[keep], scores[keep]
    proba = softmax(scores)
    save(out, "linear_classifier", g, {"x": x.tolist(), "label": [labels[i] for i in scores.argmax(axis=1)],
                                       "probabilities": [{l: p[i] for i, l in enumerate(labels)}
                                                         for p in proba.tolist()]})


def v2_bytes(strings):
    b = b""
    for s in strings:
        e = s.encode("utf-8")
        b += len(e).to_bytes(4, "little") + e
    return b


def dtypes(out):
    """Identity per element type (the bytes must come back unchanged) and two
    Casts (values converted the way numpy converts them)."""
    rows = 3
    spec = [  # input name, ONNX type, V2 datatype, numpy values
        ("b", TensorProto.BOOL, "BOOL", np.array([[True, False], [False, True], [True, True]])),
        ("u8", TensorProto.UINT8, "UINT8", np.array([[0, 255], [1, 128], [7, 254]], np.uint8)),
        ("u16", TensorProto.UINT16, "UINT16", np.array([[0, 65535], [1, 40000], [2, 3]], np.uint16)),
        ("u32", TensorProto.UINT32, "UINT32", np.array([[0, 4294967295], [1, 3000000000], [5, 6]], np.uint32)),
        ("u64", TensorProto.UINT64, "UINT64",
         np.array([[0, 18446744073709551615], [1, 12345678901234567890], [9, 10]], np.uint64)),
        ("i8", TensorProto.INT8, "INT8", np.array([[-128, 127], [0, -1], [5, -6]], np.int8)),
        ("i16", TensorProto.INT16, "INT16", np.array([[-32768, 32767], [0, -1], [300, -301]], np.int16)),
        ("i32", TensorProto.INT32, "INT32",
         np.array([[-2147483648, 2147483647], [0, -1], [16777217, -16777217]], np.int32)),
        ("i64", TensorProto.INT64, "INT64",
         np.array([[-9223372036854775808, 9223372036854775807], [0, -1], [2**53 + 1, -(2**53 + 1)]], np.int64)),
        ("f16", TensorProto.FLOAT16, "FP16", np.array([[0.5, -65504], [6.1e-05, 1.0009765625], [3.0, -0.0]], np.float16)),
        ("f32", TensorProto.FLOAT, "FP32", np.array([[0.1, -3.4e38], [1e-45, np.inf], [np.nan, -0.0]], np.float32)),
        ("f64", TensorProto.DOUBLE, "FP64", np.array([[0.1, -1.7e308], [5e-324, 1.0 / 3], [-np.inf, 2.0]], np.float64)),
    ]
    bf16_bits = np.array([[0x3F80, 0xC2F7], [0x0001, 0x7F7F], [0x8000, 0x4049]], np.uint16)
    strings = [["", "a"], ["naïve ☃", "x" * 300], ["tab\tnew\nline", "nul\x00byte"]]

    inputs, outputs, nodes, ref = [], [], [], {"inputs": [], "outputs": []}

    def add(name, onnx_t, v2, raw, shape):
        inputs.append(helper.make_tensor_value_info(name, onnx_t, [None, 2]))
        outputs.append(helper.make_tensor_value_info(name + "_out", onnx_t, [None, 2]))
        nodes.append(helper.make_node("Identity", [name], [name + "_out"]))
        ref["inputs"].append({"name": name, "datatype": v2, "shape": shape, "hex": raw.hex()})
        ref["outputs"].append({"name": name + "_out", "datatype": v2, "shape": shape, "hex": raw.hex()})

    for name, t, v2, vals in spec:
        add(name, t, v2, vals.astype(vals.dtype.newbyteorder("<")).tobytes(), [rows, 2])
    add("bf16", TensorProto.BFLOAT16, "BF16", bf16_bits.astype("<u2").tobytes(), [rows, 2])
    add("s", TensorProto.STRING, "BYTES", v2_bytes([s for r in strings for s in r]), [rows, 2])

    casts = [("i32", TensorProto.DOUBLE, "FP64", spec[7][3].astype(np.float64)),
             ("f16", TensorProto.FLOAT, "FP32", spec[9][3].astype(np.float32)),
             ("u8", TensorProto.INT64, "INT64", spec[1][3].astype(np.int64))]
    for src, to, v2, vals in casts:
        name = "cast_" + src
        nodes.append(helper.make_node("Cast", [src], [name], to=to))
        outputs.append(helper.make_tensor_value_info(name, to, [None, 2]))
        ref["outputs"].append({"name": name, "datatype": v2, "shape": [rows, 2],
                               "hex": vals.astype(vals.dtype.newbyteorder("<")).tobytes().hex()})
    save(out, "dtypes", helper.make_graph(nodes, "dtypes", inputs, outputs), ref)


def two_io(out):
    a, b = dyadic((6, 3), 16, 8), dyadic((6, 3), 16, 8)
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]),
             helper.make_node("Mul", ["a", "b"], ["prod"]),
             helper.make_node("ReduceSum", ["prod", "axes"], ["dot"], keepdims=0)]
    g = helper.make_graph(nodes, "two_io",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 3]),
                           helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 3])],
                          [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["n", 3]),
                           helper.make_tensor_value_info("dot", TensorProto.FLOAT, ["n"])], [axes])
    ad, bd = a.astype(np.float64), b.astype(np.float64)
    save(out, "two_io", g, {"a": a.tolist(), "b": b.tolist(), "sum": (ad + bd).tolist(),
                            "dot": (ad * bd).sum(axis=1).tolist()})


def sequence(out):
    """A sequence-of-tensors output (not per row: one JSON value per element)
    and a fixed first dimension, so the model is not batched."""
    nodes = [helper.make_node("Neg", ["x"], ["nx"]),
             helper.make_node("SequenceConstruct", ["x", "nx"], ["seq"])]
    seq_t = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.INT64, [2, 2]))
    g = helper.make_graph(nodes, "sequence", [helper.make_tensor_value_info("x", TensorProto.INT64, [2, 2])],
                          [helper.make_value_info("seq", seq_t)])
    x = [[1, -2], [3, 4]]
    save(out, "sequence", g, {"x": x, "seq": [x, [[-v for v in r] for r in x]]})


def unsupported(out):
    """Models ONNX Runtime runs but Kiln cannot feed: an (unused) FLOAT8E4M3FN
    input, and a sequence input."""
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "float8_input",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2]),
                           helper.make_tensor_value_info("f8", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    # onnx 1.12 predates FLOAT8E4M3FN (17): set the number by hand and skip
    # the checker, which would not know it
    g.input[1].type.tensor_type.elem_type = 17
    model = helper.make_model(g, opset_imports=OPSETS, producer_name="kiln-tests")
    model.ir_version = 8
    onnx.save(model, os.path.join(out, "float8_input.onnx"))
    seq_t = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2]))
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    g = helper.make_graph([helper.make_node("SequenceAt", ["s", "zero"], ["y"])], "sequence_input",
                          [helper.make_value_info("s", seq_t)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [zero])
    save(out, "sequence_input", g, {})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for make in (mlp, tree_regressor, tree_classifier, linear_classifier, dtypes, two_io, sequence, unsupported):
        make(out)
    with open(os.path.join(out, "corrupt.onnx"), "wb") as f:
        f.write(b"\x08\x08\x12\x04kiln" + bytes(range(256)) * 4)


if __name__ == "__main__":
    main()
