"""PAI's built-in algorithm operators (provider ``pai``, version ``v1``) as local Python over CSV tables.

The identifiers and input names are PAI's, so the manual's ``PipelineStep("split", provider=
ProviderAlibabaPAI, ...)`` blocks work as written: ``split``, ``type_transform``, ``sql``,
``normalize_1``, ``logisticregression_binary``, ``Prediction_1``, ``evaluate_1``. Tables are
artifacts whose location is a CSV file; MaxCompute's ``execution``, ``lifecycle`` and the
``*TableName`` parameters are accepted and only name things; the PMML export is written beside the
model instead of to OSS. Each runs in the step's own process: ``python -m pai_lab.pipelines.builtins``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pai_lab.pipelines import platform_ops as _platform

PROVIDER = "pai"
VERSION = "v1"

_TABLE = {"type": {"DataSet": {"locationType": "FileSystem"}}}
_MODEL = {"type": {"Model": {"locationType": "FileSystem"}}}
_EVAL = {"type": {"ModelEvaluation": {"locationType": "FileSystem"}}}


def _p(name, default=None, typ="String"):
    return {"name": name, "type": typ, **({"value": default} if default is not None else {})}


def _a(name, meta=_TABLE, required=False):
    return {"name": name, "metadata": meta, **({"required": True} if required else {})}


_COMMON = [_p("execution", {}, "Map"), _p("lifecycle", "28")]

# identifier -> (input parameters, input artifacts, output parameters, output artifacts)
SPECS: dict[str, tuple[list, list, list, list]] = {
    "split": (
        [
            _p("fraction", "0.8"),
            _p("randomSeed", "1"),
            _p("output1TableName", ""),
            _p("output2TableName", ""),
            *_COMMON,
        ],
        [_a("inputTable", required=True)],
        [],
        [_a("output1Table"), _a("output2Table")],
    ),
    "type_transform": (
        [_p("cols_to_double", ""), _p("outputTable", ""), *_COMMON],
        [_a("inputTable", required=True)],
        [],
        [_a("outputTable")],
    ),
    "sql": (
        [_p("sql"), _p("outputTableName", ""), *_COMMON],
        [_a("inputTable1", required=True), _a("inputTable2"), _a("inputTable3"), _a("inputTable4")],
        [],
        [_a("outputTable")],
    ),
    "normalize_1": (
        [_p("selectedColNames", ""), _p("outputTableName", ""), _p("outputParaTableName", ""), *_COMMON],
        [_a("inputTable", required=True)],
        [],
        [_a("outputTable"), _a("outputParaTable")],
    ),
    "logisticregression_binary": (
        [
            _p("featureColNames"),
            _p("labelColName"),
            _p("goodValue", "1"),
            _p("regularizedLevel", "1.0"),
            _p("regularizedType", "l2"),
            _p("maxIter", "100"),
            _p("modelName", ""),
            _p("generatePmml", "False"),
            _p("pmmlOssEndpoint", ""),
            _p("pmmlOssBucket", ""),
            _p("pmmlOssPath", ""),
            _p("pmmlOverwrite", "False"),
            _p("roleArn", ""),
            *_COMMON,
        ],
        [_a("inputTable", required=True)],
        [],
        [_a("model", _MODEL), _a("PMMLOutput", _MODEL)],
    ),
    "Prediction_1": (
        [_p("featureColNames", ""), _p("appendColNames", ""), _p("outputTableName", ""), *_COMMON],
        [_a("model", _MODEL, required=True), _a("inputTable", required=True)],
        [],
        [_a("outputTable")],
    ),
    "evaluate_1": (
        [
            _p("labelColName"),
            _p("scoreColName", "prediction_score"),
            _p("positiveLabel", "1"),
            _p("outputDetailTableName", ""),
            _p("outputELDetailTableName", ""),
            _p("outputMetricTableName", ""),
            *_COMMON,
        ],
        [_a("inputTable", required=True)],
        [],
        [_a("outputMetricTable", _EVAL), _a("outputDetailTable")],
    ),
}


# pai_lab's own operators (a dataset, a DLC job, a model, a service, a labeling export) are listed and
# checked with these; they run in the control plane (platform_ops.py), never in a step's process
SPECS.update(_platform.SPECS)


def pipeline_id(identifier: str) -> str:
    return f"pai-{identifier}"


def manifest(identifier: str) -> dict:
    params, arts, out_params, out_arts = SPECS[identifier]
    return {
        "apiVersion": "core/v1",
        "metadata": {"identifier": identifier, "provider": PROVIDER, "version": VERSION},
        "spec": {
            "inputs": {"parameters": params, "artifacts": arts},
            "outputs": {"parameters": out_params, "artifacts": out_arts},
            "builtin": {"name": identifier},
        },
    }


# ------------------------------------------------------------------ implementations (in the step's process)


def _cols(text: str) -> list[str]:
    return [c.strip() for c in str(text or "").split(",") if c.strip()]


def _split(ctx, p):
    df = ctx.input_artifacts["inputTable"].read_dataframe()
    first = df.sample(frac=float(p["fraction"]), random_state=int(p.get("randomSeed") or 1))
    ctx.output_artifacts["output1Table"].save_dataframe(first)
    ctx.output_artifacts["output2Table"].save_dataframe(df.drop(first.index))


def _type_transform(ctx, p):
    df = ctx.input_artifacts["inputTable"].read_dataframe()
    for col in _cols(p.get("cols_to_double")):
        df[col] = df[col].astype("float64")
    ctx.output_artifacts["outputTable"].save_dataframe(df)


def _sql(ctx, p):
    """MaxCompute SQL over the input tables as ``${t1}``..``${t4}``, run by DuckDB in the step's process."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        query = p["sql"]
        for i in range(1, 5):
            art = ctx.input_artifacts[f"inputTable{i}"]
            if art:
                table = art.read_dataframe()
                for col in table.select_dtypes(include="bool").columns:  # CSV true/false text, as SQL compares it
                    table[col] = table[col].map({True: "true", False: "false"})
                con.register(f"t{i}", table)
                query = query.replace("${t%d}" % i, f"t{i}")
        df = con.execute(query.rstrip().rstrip(";")).df()
    finally:
        con.close()
    df.columns = [c.lower() for c in df.columns]  # MaxCompute's column names are lower case
    ctx.output_artifacts["outputTable"].save_dataframe(df)


def _normalize(ctx, p):
    import pandas as pd

    df = ctx.input_artifacts["inputTable"].read_dataframe()
    rows = []
    for col in _cols(p.get("selectedColNames")) or list(df.select_dtypes("number").columns):
        low, high = float(df[col].min()), float(df[col].max())
        df[col] = 0.0 if high == low else (df[col] - low) / (high - low)
        rows.append({"colname": col, "min": low, "max": high})
    ctx.output_artifacts["outputTable"].save_dataframe(df)
    ctx.output_artifacts["outputParaTable"].save_dataframe(pd.DataFrame(rows))


def _pmml(model: dict) -> str:
    fields = "".join(f'<DataField name="{f}" optype="continuous" dataType="double"/>' for f in model["features"])
    mining = "".join(f'<MiningField name="{f}"/>' for f in model["features"])
    predictors = "".join(
        f'<NumericPredictor name="{f}" coefficient="{w!r}"/>' for f, w in zip(model["features"], model["weights"])
    )
    label = model["label"]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<PMML xmlns="http://www.dmg.org/PMML-4_2" version="4.2">'
        f'<Header description="logisticregression_binary"/><DataDictionary>{fields}'
        # the target's categories, so evaluators (PMML4S, JPMML) can score the classification
        f'<DataField name="{label}" optype="categorical" dataType="string"><Value value="{model["good_value"]}"/>'
        '<Value value="other"/></DataField></DataDictionary>'
        f'<RegressionModel functionName="classification" normalizationMethod="logit"><MiningSchema>{mining}'
        f'<MiningField name="{label}" usageType="target"/></MiningSchema>'
        f'<RegressionTable intercept="{model["bias"]!r}" targetCategory="{model["good_value"]}">{predictors}'
        f'</RegressionTable><RegressionTable intercept="0" targetCategory="other"/></RegressionModel></PMML>\n'
    )


def _logistic_regression(ctx, p):
    import numpy as np

    df = ctx.input_artifacts["inputTable"].read_dataframe()
    features, label = _cols(p["featureColNames"]), p["labelColName"].strip()
    good = str(p.get("goodValue", "1"))
    x = df[features].to_numpy(dtype="float64")
    y = (df[label].astype(str).str.replace(r"\.0$", "", regex=True) == good.removesuffix(".0")).to_numpy(float)
    lam = float(p.get("regularizedLevel") or 0) / max(len(y), 1)
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(int(p.get("maxIter") or 100) * 20):  # full-batch gradient descent on the log loss
        z = 1 / (1 + np.exp(-(x @ w + b)))
        w -= 0.5 * (x.T @ (z - y) / len(y) + lam * (w if p.get("regularizedType", "l2") == "l2" else np.sign(w)))
        b -= 0.5 * float(np.mean(z - y))
    model = {
        "kind": "logisticregression_binary",
        "features": features,
        "label": label,
        "good_value": good,
        "weights": [float(v) for v in w],
        "bias": float(b),
        "name": p.get("modelName") or "",
    }
    folder = Path(ctx.output_artifacts["model"].local_dir)
    (folder / "model.json").write_text(json.dumps(model, indent=1))
    ctx.output_artifacts["model"].write_output({"location": {"uri": f"file://{folder / 'model.json'}"}})
    pmml = Path(ctx.output_artifacts["PMMLOutput"].local_dir) / "model.pmml"
    pmml.write_text(_pmml(model))
    ctx.output_artifacts["PMMLOutput"].write_output({"location": {"uri": f"file://{pmml}"}})
    print(f"trained on {len(y)} rows, {len(features)} features")


def _predict(ctx, p):
    import numpy as np
    import pandas as pd

    model = json.loads(Path(ctx.input_artifacts["model"].local_path()).read_text())
    df = ctx.input_artifacts["inputTable"].read_dataframe()
    features = _cols(p.get("featureColNames")) or model["features"]
    score = 1 / (1 + np.exp(-(df[features].to_numpy(dtype="float64") @ np.array(model["weights"]) + model["bias"])))
    out = df[_cols(p.get("appendColNames"))].copy() if p.get("appendColNames") else pd.DataFrame(index=df.index)
    out["prediction_result"] = np.where(score >= 0.5, model["good_value"], "other")
    out["prediction_score"] = score
    out["prediction_detail"] = [json.dumps({model["good_value"]: float(s), "other": float(1 - s)}) for s in score]
    ctx.output_artifacts["outputTable"].save_dataframe(out)


def _evaluate(ctx, p):
    import numpy as np
    import pandas as pd

    df = ctx.input_artifacts["inputTable"].read_dataframe()
    label = p["labelColName"].strip()
    positive = str(p.get("positiveLabel", "1")).removesuffix(".0")
    y = (df[label].astype(str).str.replace(r"\.0$", "", regex=True) == positive).to_numpy(int)
    s = df[p.get("scoreColName") or "prediction_score"].to_numpy(float)
    pred = (s >= 0.5).astype(int)
    tp, fp = int(((pred == 1) & (y == 1)).sum()), int(((pred == 1) & (y == 0)).sum())
    fn, tn = int(((pred == 0) & (y == 1)).sum()), int(((pred == 0) & (y == 0)).sum())
    order = np.argsort(s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    auc = float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg)) if pos and neg else float("nan")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    metrics = {
        "AUC": auc,
        "Accuracy": (tp + tn) / max(len(y), 1),
        "Precision": precision,
        "Recall": recall,
        "F1 Score": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "LogLoss": float(-np.mean(y * np.log(np.clip(s, 1e-15, 1)) + (1 - y) * np.log(np.clip(1 - s, 1e-15, 1)))),
        "Total": len(y),
    }
    ctx.output_artifacts["outputMetricTable"].save_dataframe(pd.DataFrame([metrics]))
    ctx.output_artifacts["outputDetailTable"].save_dataframe(
        pd.DataFrame({"tp": [tp], "fp": [fp], "fn": [fn], "tn": [tn]})
    )
    print(json.dumps(metrics))


RUNNERS = {
    "split": _split,
    "type_transform": _type_transform,
    "sql": _sql,
    "normalize_1": _normalize,
    "logisticregression_binary": _logistic_regression,
    "Prediction_1": _predict,
    "evaluate_1": _evaluate,
}


def heart_disease_sample(path: str | Path, rows: int = 300, seed: int = 7) -> Path:
    """A synthetic table shaped like the manual's heart_disease_prediction (13 features and ``status``,
    categorical columns as text), with a learnable link between the features and being sick."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(29, 78, rows)
    chol = rng.integers(150, 400, rows)
    thalach = rng.integers(90, 200, rows)
    oldpeak = np.round(rng.uniform(0, 5, rows), 1)
    ca = rng.integers(0, 4, rows)
    cp = rng.choice(["angina", "notang", "abnang", "asympt"], rows)
    exang = rng.choice(["true", "false"], rows)
    risk = (
        0.04 * (age - 50)
        + 0.8 * (cp == "asympt")
        + 0.9 * (exang == "true")
        + 0.6 * oldpeak
        - 0.03 * (thalach - 150)
        + 0.7 * ca
        + rng.normal(0, 0.8, rows)
    )
    df = pd.DataFrame(
        {
            "age": age,
            "sex": rng.choice(["male", "female"], rows),
            "cp": cp,
            "trestbps": rng.integers(94, 200, rows),
            "chol": chol,
            "fbs": rng.choice(["true", "false"], rows, p=[0.15, 0.85]),
            "restecg": rng.choice(["norm", "abn", "hyp"], rows),
            "thalach": thalach,
            "exang": exang,
            "oldpeak": oldpeak,
            "slop": rng.choice(["up", "flat", "down"], rows),
            "ca": ca,
            "thal": rng.choice(["norm", "fix", "rev"], rows),
            "status": np.where(risk > np.median(risk), "sick", "buff"),
        }
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def _main(work_dir: str, identifier: str, step: dict | None = None) -> int:
    """A built-in step: in its own process (its ``step.json`` read) or in its run's warm runner (``step``)."""
    from pai_lab.pipelines.context import Context

    step = step if step is not None else json.loads((Path(work_dir) / "step.json").read_text())
    RUNNERS[identifier](Context(work_dir), {k: v for k, v in step["parameters"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2]))
