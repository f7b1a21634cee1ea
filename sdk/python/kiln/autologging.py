"""``kiln.autolog()``: log scikit-learn and XGBoost training without changing
the training code.

- scikit-learn: every estimator's ``fit`` (the classes of
  ``sklearn.utils.all_estimators()``, and so their subclasses) logs, for the
  outermost call only (a Pipeline's or a search's inner fits are not runs of
  their own): the params (``get_params(deep=True)``), training metrics
  computed on the fit data (``training_score`` from ``score(X, y)``; for
  classifiers accuracy, weighted precision, recall and F1; for regressors
  MSE, RMSE, MAE and R²), the tags ``estimator_name`` / ``estimator_class``,
  and the fitted model (joblib) as the artifact ``model/model.joblib``.
- XGBoost: ``xgboost.train`` (and so the scikit-learn wrappers' ``fit``) logs
  its params and ``num_boost_round``, every ``evals`` metric at each
  iteration as ``<eval name>-<metric>`` with the iteration as step (live,
  through a training callback), ``best_iteration`` when early stopping
  ran, and the booster as the artifact ``model/model.xgb.json``.

A fit outside any run gets a run of its own, ended when the fit returns.
When the server has no artifact endpoint the model is not uploaded and the
tag ``kiln.autolog.model`` says so. Logging problems are warned about and
never break the fit.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import os
import tempfile
import threading
import warnings
from typing import Any, Callable, Dict, List, Optional

from . import tracking as _t

__all__ = ["autolog"]

log = logging.getLogger("kiln")
_state = threading.local()
_patched: List[tuple] = []
_config: Dict[str, Any] = {"log_models": True, "disable": False}

MODEL_NOTE = ("not uploaded: this server has no artifact endpoint (/api/2.0/mlflow-artifacts); "
              "the model was trained but is not stored")


def autolog(log_models: bool = True, disable: bool = False, sklearn: bool = True, xgboost: bool = True,
            silent: bool = False) -> Dict[str, bool]:
    """Turn on automatic logging for scikit-learn and XGBoost (those that import).

    Args:
        log_models: Upload the fitted model as an artifact.
        disable: Undo the patches (``autolog(disable=True)``).
        sklearn, xgboost: Which libraries to patch.
        silent: Do not warn when a library is missing.

    Returns:
        ``{"sklearn": bool, "xgboost": bool}``: which libraries are patched.
    """
    _config["log_models"] = log_models
    if disable:
        _unpatch()
        return {"sklearn": False, "xgboost": False}
    done = {"sklearn": False, "xgboost": False}
    if sklearn:
        done["sklearn"] = _patch_sklearn(silent)
    if xgboost:
        done["xgboost"] = _patch_xgboost(silent)
    return done


def _unpatch() -> None:
    while _patched:
        owner, name, original = _patched.pop()
        setattr(owner, name, original)


def _patch(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if original is None or getattr(original, "__kiln_patched__", False):
        return
    wrapper = make(original)
    wrapper.__kiln_patched__ = True  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)
    _patched.append((owner, name, original))


# ---- runs around a fit --------------------------------------------------------


class _FitRun:
    """The run a fit logs into: the active one, or one started for it."""

    def __init__(self, name: str) -> None:
        self.own = _t.active_run() is None
        self.name = name

    def __enter__(self) -> "_FitRun":
        if self.own:
            _t.start_run(run_name=None, tags={"kiln.autolog": self.name})
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.own:
            _t.end_run("FAILED" if exc_type else "FINISHED")


def _outermost() -> bool:
    return getattr(_state, "depth", 0) == 0


class _Depth:
    def __enter__(self) -> None:
        _state.depth = getattr(_state, "depth", 0) + 1

    def __exit__(self, *a: Any) -> None:
        _state.depth -= 1


def _safe(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as err:
        warnings.warn(f"kiln.autolog: could not log {what}: {err}")
        return None


def _log_model(save: Callable[[str], None], filename: str) -> None:
    if not _config["log_models"]:
        return
    if not _t.artifacts_supported():
        _t.set_tag("kiln.autolog.model", MODEL_NOTE)
        return
    with tempfile.TemporaryDirectory(prefix="kiln-model-") as d:
        path = os.path.join(d, filename)
        save(path)
        _t.log_artifact(path, "model")
    _t.set_tag("kiln.autolog.model", f"model/{filename}")


def _params_for_logging(params: Dict[str, Any]) -> Dict[str, str]:
    out = {}
    for k, v in params.items():
        try:
            _t._check_key("param", k)
        except ValueError:
            continue
        out[k] = str(v)[:6000]
    return out


# ---- scikit-learn --------------------------------------------------------------


def _patch_sklearn(silent: bool) -> bool:
    try:
        from sklearn.utils import all_estimators
    except ImportError:
        if not silent:
            warnings.warn("kiln.autolog: scikit-learn is not installed; not patched")
        return False
    for _name, cls in all_estimators():
        if "fit" in cls.__dict__:
            _patch(cls, "fit", _wrap_sklearn_fit)
    return True


def _wrap_sklearn_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _outermost():
            with _Depth():
                return original(self, *args, **kwargs)
        name = type(self).__name__
        with _FitRun(f"sklearn.{name}"):
            _safe("params", lambda: _t.log_params(_params_for_logging(self.get_params(deep=True))))
            _safe("tags", lambda: _t.set_tags({"estimator_name": name,
                                               "estimator_class": f"{type(self).__module__}.{name}"}))
            with _Depth():
                result = original(self, *args, **kwargs)
            X = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            _safe("training metrics", lambda: _sklearn_metrics(self, X, y))
            _safe("the model", lambda: _log_model(lambda p: _joblib_dump(self, p), "model.joblib"))
        return result

    return fit


def _joblib_dump(model: Any, path: str) -> None:
    import joblib  # scikit-learn depends on it

    joblib.dump(model, path)


def _sklearn_metrics(est: Any, X: Any, y: Any) -> None:
    if X is None or y is None:
        return
    from sklearn import base, metrics as skm

    out: Dict[str, float] = {}
    with _Depth():  # score/predict may call fits of nothing, but never log again
        if hasattr(est, "score"):
            _try(out, "training_score", lambda: est.score(X, y))
        if hasattr(est, "predict") and (base.is_classifier(est) or base.is_regressor(est)):
            pred = est.predict(X)
            if base.is_classifier(est):
                _try(out, "training_accuracy_score", lambda: skm.accuracy_score(y, pred))
                for nm, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                               ("f1", skm.f1_score)):
                    _try(out, f"training_{nm}_score", lambda fn=fn: fn(y, pred, average="weighted", zero_division=0))
            else:
                mse = skm.mean_squared_error(y, pred)
                out["training_mean_squared_error"] = float(mse)
                out["training_root_mean_squared_error"] = math.sqrt(mse)
                _try(out, "training_mean_absolute_error", lambda: skm.mean_absolute_error(y, pred))
                _try(out, "training_r2_score", lambda: skm.r2_score(y, pred))
    if out:
        _t.log_metrics(out, step=0)


def _try(out: Dict[str, float], key: str, fn: Callable[[], Any]) -> None:
    try:
        v = float(fn())
        out[key] = v
    except Exception:
        pass


# ---- XGBoost ------------------------------------------------------------------


def _patch_xgboost(silent: bool) -> bool:
    try:
        import xgboost
        training = importlib.import_module("xgboost.training")
    except ImportError:
        if not silent:
            warnings.warn("kiln.autolog: xgboost is not installed; not patched")
        return False
    for owner in (xgboost, training):
        _patch(owner, "train", _wrap_xgb_train)
    try:
        skl = importlib.import_module("xgboost.sklearn")
        _patch(skl, "train", _wrap_xgb_train)
    except ImportError:  # pragma: no cover
        pass
    return True


def _wrap_xgb_train(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train(params: Dict[str, Any], dtrain: Any, *args: Any, **kwargs: Any) -> Any:
        if not _outermost():
            with _Depth():
                return original(params, dtrain, *args, **kwargs)
        import xgboost

        names = ["num_boost_round", "evals", "obj", "feval", "maximize", "early_stopping_rounds",
                 "evals_result", "verbose_eval", "xgb_model", "callbacks"]
        call = dict(zip(names, args))
        call.update(kwargs)
        with _FitRun("xgboost"):
            logged = dict(params or {})
            if isinstance(params, list):  # list of pairs is allowed
                logged = dict(params)
            logged["num_boost_round"] = call.get("num_boost_round", 10)
            if call.get("early_stopping_rounds") is not None:
                logged["early_stopping_rounds"] = call["early_stopping_rounds"]
            _safe("params", lambda: _t.log_params(_params_for_logging(logged)))
            callbacks = list(call.get("callbacks") or [])
            if call.get("evals"):
                callbacks.append(_xgb_callback(xgboost))
            kwargs2 = {k: v for k, v in call.items()}
            kwargs2["callbacks"] = callbacks
            with _Depth():
                booster = original(params, dtrain, **kwargs2)
            best = getattr(booster, "best_iteration", None) if call.get("early_stopping_rounds") else None
            if best is not None:
                _safe("best_iteration", lambda: _t.log_metric("best_iteration", best))
            _safe("the model", lambda: _log_model(lambda p: booster.save_model(p), "model.xgb.json"))
        return booster

    return train


def _xgb_callback(xgboost: Any) -> Any:
    class KilnCallback(xgboost.callback.TrainingCallback):
        """Logs each iteration's evaluation results."""

        def after_iteration(self, model: Any, epoch: int, evals_log: Dict[str, Dict[str, List[Any]]]) -> bool:
            metrics: Dict[str, float] = {}
            for data, per_metric in evals_log.items():
                for metric, values in per_metric.items():
                    if not values:
                        continue
                    v = values[-1]
                    if isinstance(v, tuple):  # (mean, std) with cv
                        v = v[0]
                    metrics[f"{data}-{metric}"] = float(v)
            if metrics:
                try:
                    _t.log_metrics(metrics, step=epoch)
                except Exception as err:
                    log.warning("kiln.autolog: could not log iteration %d: %s", epoch, err)
            return False

    return KilnCallback()
