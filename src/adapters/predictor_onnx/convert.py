"""A fitted pipeline to ONNX as it was fitted: the graph reads the columns the validator delivers.

The user's pipeline is never refitted and never changed. It is copied, and the copy is adapted so that
skl2onnx can convert it to a graph that reads validated values exactly as scikit-learn read the user's
frame:

- numbers, integers and booleans go in as float64, so preprocessing runs in double precision as in
  scikit-learn (a StandardScaler in float32 flips tree splits);
- estimators that scikit-learn evaluates in float32 (every tree ensemble, XGBoost, LightGBM) read a
  float32 cast of their input, which is what scikit-learn does inside `predict`; an estimator whose
  converter has no float64 kernel (SVR) reads float32 too;
- numeric imputers run as `Where(IsNaN(x), statistic, x)` in the input's precision (onnxruntime's
  `Imputer` has no float64 kernel);
- a ColumnTransformer branch that holds category columns reads strings: missing is `""` and booleans
  and integers in that branch become text (`"True"`, `"3"`), so the copy's fitted categories, imputer
  statistics and missing-value markers are rewritten into that text form. The runtime's feed
  (`runtime.build_feeds`) writes values the same way.

Anything that cannot be converted faithfully is refused with the step's path and what to do instead.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from predictor_core import BundleError, FeatureKind, FeatureSchema, TensorSpec
from predictor_onnx.runtime import MISSING_CATEGORY, as_text, session_options

__all__ = ["TARGET_OPSET", "Conversion", "ExportRefused", "convert_pipeline", "final_estimator", "steps"]

TARGET_OPSET = 21
"""Default-domain opset of exported graphs: onnxruntime 1.18 (the oldest supported) runs it."""
ML_OPSET_FOR_BOOSTERS = 3
"""ai.onnx.ml opset for XGBoost/LightGBM graphs (onnxruntime 1.18 runs it)."""

_CONTAINERS = frozenset({"Pipeline", "ColumnTransformer", "FeatureUnion"})
_FLOAT32_MODULES = ("sklearn.tree", "sklearn.ensemble", "xgboost", "lightgbm")
_FLOAT32_NAMES = ("Tree", "Forest", "Trees", "Boosting", "XGB", "LGBM")


class ExportRefused(BundleError):
    """The pipeline or its data cannot make a trustworthy bundle; nothing was written."""


@dataclass(frozen=True, slots=True)
class Conversion:
    model: Any
    """The onnx.ModelProto."""
    inputs: tuple[TensorSpec, ...]
    adaptations: tuple[str, ...]
    """What the converted copy does differently from a plain skl2onnx conversion, for the report."""


def convert_pipeline(
    pipeline: Any, schema: FeatureSchema, frame: Any, *, name: str, classifier: bool
) -> Conversion:
    """Convert a fitted estimator or pipeline whose features are `schema`'s, in schema order.

    `frame` holds the rows as the pipeline saw them: which missing marker (NaN or None) each category
    column uses decides whether the pipeline's imputer treated it as missing or as a category.

    Raises:
        ExportRefused: a known trap, a step without a converter, or a converter error, naming the step.
    """
    boosted = _register_boosters(pipeline)
    # onnxmltools writes ai.onnx.ml 5 trees unless told otherwise; 3 is what skl2onnx can merge
    opsets: Any = {"": TARGET_OPSET, "ai.onnx.ml": ML_OPSET_FOR_BOOSTERS} if boosted else TARGET_OPSET
    refuse_known_traps(pipeline, classifier)
    inputs = plan_inputs(pipeline, schema)
    work, notes = _adapted_copy(pipeline, schema, inputs, _markers(frame, schema))
    types = [(spec.name, _tensor_type(spec)) for spec in inputs]
    estimator = final_estimator(work)
    cast_first = _reads_float32(estimator)
    for cast in (True,) if cast_first else (False, True):
        candidate = _with_float32_cast(work) if cast else work
        try:
            graph = _convert(candidate, types, opsets, name=name, classifier=classifier)
        except Exception as exc:  # skl2onnx raises RuntimeError, ValueError, NameError... per converter
            if not cast:
                continue  # the estimator's converter may know float32 only: try that before giving up
            raise ExportRefused(_conversion_failure(candidate, types, opsets, exc)) from exc
        if cast or _loads(graph):
            break
    if cast:
        why = "as scikit-learn does" if cast_first else "its converter has no float64 kernel"
        notes.append(f"{type(estimator).__name__} reads its input cast to float32 ({why})")
    if classifier and type(estimator).__name__ in _VOTING_FORESTS:
        _first_class_on_ties(graph, estimator.classes_)
        notes.append(
            f"{type(estimator).__name__}: a tie of votes goes to the first class, as in scikit-learn"
        )
    _canonical_opsets(graph)
    return Conversion(model=graph, inputs=inputs, adaptations=tuple(notes))


_VOTING_FORESTS = frozenset({"RandomForestClassifier", "ExtraTreesClassifier"})
_VOTE_RESOLUTION = 1e5
"""Forest probabilities are compared at 1e-5: float32 sums of tree votes differ in the 7th digit."""


def _first_class_on_ties(graph: Any, classes: Any) -> None:
    """Relabel a forest's rows as scikit-learn does: argmax of the averaged votes, first class on a tie.

    The converted ensemble sums votes in float32, so a 10-10 tie of 20 trees comes out as 0.49999997
    against 0.50000006 and picks the second class, where scikit-learn (float64, exactly 0.5 each) picks
    the first. Rounding the probabilities to 1e-5 before the argmax restores the tie.
    """
    from onnx import TensorProto, helper

    label, probabilities = graph.graph.output[0].name, graph.graph.output[1].name
    producer = next(node for node in graph.graph.node if label in node.output)
    producer.output[list(producer.output).index(label)] = "forest_label_unused"
    values = np.asarray(classes)
    table: Any
    if values.dtype.kind in "iub":
        table = helper.make_tensor(
            "forest_classes", TensorProto.INT64, [len(values)], values.astype(np.int64)
        )
    else:
        names: Any = [str(v).encode() for v in values]
        table = helper.make_tensor("forest_classes", TensorProto.STRING, [len(values)], names)
    scale = helper.make_tensor("forest_vote_scale", TensorProto.FLOAT, [], [_VOTE_RESOLUTION])
    graph.graph.initializer.extend([table, scale])
    graph.graph.node.extend(
        [
            helper.make_node("Mul", [probabilities, "forest_vote_scale"], ["forest_votes"]),
            helper.make_node("Round", ["forest_votes"], ["forest_rounded"]),
            helper.make_node("ArgMax", ["forest_rounded"], ["forest_winner"], axis=1, keepdims=0),
            helper.make_node("Gather", ["forest_classes", "forest_winner"], [label], axis=0),
        ]
    )


def _convert(pipeline: Any, types: list[tuple[str, Any]], opsets: Any, *, name: str, classifier: bool) -> Any:
    from skl2onnx import convert_sklearn

    options = {id(final_estimator(pipeline)): {"zipmap": False}} if classifier else None
    return _quietly(
        convert_sklearn,
        pipeline,
        initial_types=types,
        options=options,
        target_opset=opsets,
        name=name,
        custom_conversion_functions=_custom_converters(),
        custom_shape_calculators=_custom_shapes(),
    )


# --- what the graph reads -----------------------------------------------------------------------------
def plan_inputs(pipeline: Any, schema: FeatureSchema) -> tuple[TensorSpec, ...]:
    """One float64 matrix when no ColumnTransformer selects columns; else one input per feature.

    Per feature, a string input when its ColumnTransformer branch holds a category feature, else float64.

    Raises:
        ExportRefused: category features without a ColumnTransformer to route them, a number feature in
            a category branch, or a feature read by branches that need different types.
    """
    table = column_transformer(pipeline)
    kinds = {f.name: f.kind for f in schema.features}
    if table is None:
        if schema.all_numeric:
            return (TensorSpec(name="X", dtype="float64", features=schema.names),)
        if all(k is FeatureKind.CATEGORY for k in kinds.values()):
            return (TensorSpec(name="X", dtype="string", features=schema.names),)
        raise ExportRefused(
            "the pipeline mixes category and numeric columns without a ColumnTransformer to route them; "
            "put a ColumnTransformer first that sends each column to its own transformer"
        )
    wanted: dict[str, str] = {}
    for branch, names in branches(table, schema.names):
        textual = any(kinds[n] is FeatureKind.CATEGORY for n in names)
        for n in names:
            dtype = "string" if textual else "float64"
            if textual and kinds[n] is FeatureKind.NUMBER:
                raise ExportRefused(
                    f"ColumnTransformer branch {branch!r} reads the number feature {n!r} together with "
                    "category features; encode it in its own branch (or declare it an integer)"
                )
            if wanted.setdefault(n, dtype) != dtype:
                raise ExportRefused(
                    f"feature {n!r} is read both as a category and as a number by the ColumnTransformer; "
                    "give it one role"
                )
    return tuple(TensorSpec(name=n, dtype=wanted.get(n, "float64"), features=(n,)) for n in schema.names)


def column_transformer(pipeline: Any) -> Any:
    """The ColumnTransformer that first selects columns by name or position, if any."""
    first = pipeline.steps[0][1] if hasattr(pipeline, "steps") else pipeline
    return first if type(first).__name__ == "ColumnTransformer" else None


def branches(table: Any, names: tuple[str, ...]) -> Iterator[tuple[str, list[str]]]:
    """(branch name, the feature names it reads) for each fitted branch that is not dropped."""
    for branch, transformer, columns in table.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        yield branch, _column_names(columns, names)


def _column_names(columns: Any, names: tuple[str, ...]) -> list[str]:
    if isinstance(columns, slice):
        return list(names[columns])
    if isinstance(columns, str | int | np.integer):
        columns = [columns]
    selected = list(columns)
    if selected and all(isinstance(c, bool | np.bool_) for c in selected):
        return [n for n, keep in zip(names, selected, strict=True) if keep]
    return [names[int(c)] if isinstance(c, int | np.integer) else str(c) for c in selected]


def _tensor_type(spec: TensorSpec) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    kind = {"string": StringTensorType, "float64": DoubleTensorType, "float32": FloatTensorType}[spec.dtype]
    return kind([None, len(spec.features)])


# --- the adapted copy ---------------------------------------------------------------------------------
def _markers(frame: Any, schema: FeatureSchema) -> dict[str, set[str]]:
    """Per feature, the missing markers its column holds: "nan" (NaN, pd.NA) and/or "none" (None)."""
    found: dict[str, set[str]] = {}
    for name in schema.names:
        values = frame[name]
        gaps = values[values.isna()]
        found[name] = {"none" if v is None else "nan" for v in gaps.tolist()}
    return found


def _adapted_copy(
    pipeline: Any, schema: FeatureSchema, inputs: tuple[TensorSpec, ...], markers: dict[str, set[str]]
) -> tuple[Any, list[str]]:
    """A deep copy whose category branches read the text form of their values (see the module doc)."""
    work = copy.deepcopy(pipeline)
    notes: list[str] = []
    table = column_transformer(work)
    if table is None:
        if inputs[0].dtype == "string":
            _textify(work, "the pipeline", _union(markers, schema.names), notes)
        return work, notes
    textual = {spec.name for spec in inputs if spec.dtype == "string"}
    for (branch, transformer, _), (_, names) in zip(
        table.transformers_, branches(table, schema.names), strict=False
    ):
        if not isinstance(transformer, str) and names and set(names) <= textual:
            _textify(transformer, branch, _union(markers, names), notes)
            odd = [n for n in names if schema.feature(n).kind is not FeatureKind.CATEGORY]
            if odd:
                notes.append(
                    f"branch {branch!r} reads {', '.join(odd)} as text ('True', '3') with the categories"
                )
    return work, notes


def _union(markers: dict[str, set[str]], names: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for name in names:
        if len(markers[name]) > 1:
            raise ExportRefused(
                f"column {name!r} marks missing values both as None and as NaN, which scikit-learn treats "
                "differently (its imputers see only NaN as missing by default) and a served record cannot "
                "tell apart; export with rows that use one marker"
            )
        found |= markers[name]
    return found


def _textify(estimator: Any, where: str, markers: set[str], notes: list[str]) -> None:
    """Rewrite fitted categories, statistics and missing markers of a category branch into text form.

    The first imputer decides what a missing value meant to the fitted pipeline: if it treated the
    data's marker (NaN or None) as missing it now imputes `""`; if not, the marker went through as a
    category of its own, and so does `""` (the encoders' None/NaN category becomes `""`).
    """
    imputing = True
    for path, step in _walk(estimator, where):
        kind = type(step).__name__
        if kind == "SimpleImputer" and imputing:
            imputing = False
            marker = step.missing_values
            treats = {"none"} if marker is None else {"nan"} if _is_nan(marker) else set()
            if markers and not markers <= treats:
                step.missing_values = _NEVER_SENT
                notes.append(f"{path}: missing values were a category of their own to this imputer; kept so")
            else:
                step.missing_values = MISSING_CATEGORY
                if markers:
                    notes.append(
                        f"{path}: the imputer fitted on NaN/None imputes missing categories sent as null"
                    )
            step.statistics_ = np.array([as_text(v) for v in step.statistics_], dtype=object)
            if step.fill_value is not None:
                step.fill_value = as_text(step.fill_value)
        elif kind in ("OneHotEncoder", "OrdinalEncoder") and hasattr(step, "categories_"):
            step.categories_ = [
                np.array([as_text(v) for v in cats], dtype=object) for cats in step.categories_
            ]


_NEVER_SENT = "\x00"
"""An imputer marker no validated record can hold (it is no declared category)."""


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _walk(estimator: Any, where: str) -> Iterator[tuple[str, Any]]:
    yield where, estimator
    for attribute in ("steps", "transformers_"):
        for item in getattr(estimator, attribute, None) or []:
            if not isinstance(item[1], str):
                yield from _walk(item[1], f"{where} › {item[0]}")


def _with_float32_cast(pipeline: Any) -> Any:
    """The pipeline with a float32 cast in front of its final estimator."""
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    cast = ("float32_cast", CastTransformer(dtype=np.float32))
    if hasattr(pipeline, "steps"):
        return Pipeline([*pipeline.steps[:-1], cast, pipeline.steps[-1]])
    return Pipeline([cast, ("estimator", pipeline)])


def _reads_float32(estimator: Any) -> bool:
    """Tree ensembles: scikit-learn, XGBoost and LightGBM (as converted) compare float32 inputs."""
    module = type(estimator).__module__
    return module.startswith(_FLOAT32_MODULES) and any(w in type(estimator).__name__ for w in _FLOAT32_NAMES)


def _quietly(convert: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a converter without the deprecation warnings it triggers by reading fitted attributes.

    skl2onnx reads attributes scikit-learn has deprecated (SVC's probA_ in 1.9): the user's pipeline
    is fine, and the warning would only confuse (or fail a run with warnings as errors).
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return convert(*args, **kwargs)


def _loads(graph: Any) -> bool:
    import onnxruntime as ort

    try:
        ort.InferenceSession(graph.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime's errors derive from Exception only
        return False
    return True


# --- converters -----------------------------------------------------------------------------------------
def _custom_converters() -> dict[Any, Callable[..., None]]:
    from sklearn.impute import SimpleImputer

    return {SimpleImputer: _convert_imputer}


def _custom_shapes() -> dict[Any, Callable[..., None]]:
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    return {SimpleImputer: calculate_sklearn_imputer_output_shapes}


def _convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """Numeric SimpleImputer on NaN as Where(IsNaN(x), statistics, x), in the input's own precision."""
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    imputer = operator.raw_operator
    missing = imputer.missing_values
    on_nan = missing is None or (isinstance(missing, float) and math.isnan(missing))
    if isinstance(operator.inputs[0].type, StringTensorType) or not on_nan or imputer.add_indicator:
        convert_sklearn_imputer(scope, operator, container)
        return
    from skl2onnx.common.data_types import guess_numpy_type

    dtype = guess_numpy_type(operator.inputs[0].type)
    source = concatenate_variables(scope, operator.inputs, container)
    statistics = scope.get_unique_variable_name("statistics")
    container.add_initializer(
        statistics,
        container.proto_dtype if dtype == np.float32 else 11,  # 11: TensorProto.DOUBLE
        [1, len(imputer.statistics_)],
        np.asarray(imputer.statistics_, dtype=dtype).ravel().tolist(),
    )
    gaps = scope.get_unique_variable_name("gaps")
    container.add_node("IsNaN", [source], [gaps], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node(
        "Where",
        [gaps, statistics, source],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )


def _register_boosters(pipeline: Any) -> bool:
    """Register onnxmltools' XGBoost and LightGBM converters with skl2onnx, when the pipeline has one."""
    kinds = {type(s).__module__.split(".")[0] for s in steps(pipeline)}
    if not kinds & {"xgboost", "lightgbm"}:
        return False
    try:
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    except ImportError as exc:
        raise ExportRefused(
            "XGBoost and LightGBM models convert through onnxmltools: pip install 'predictor-core[boost]'"
        ) from exc
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}  # what onnxmltools documents
    for module, converter in (("xgboost", convert_xgboost), ("lightgbm", convert_lightgbm)):
        if module not in kinds:
            continue
        package = __import__(module)
        prefix = "XGB" if module == "xgboost" else "LGBM"
        alias = "XGBoost" if module == "xgboost" else "LightGbm"
        update_registered_converter(
            getattr(package, f"{prefix}Classifier"),
            f"{alias}{prefix}Classifier",
            calculate_linear_classifier_output_shapes,
            converter,
            options=options,
        )
        update_registered_converter(  # no options: skl2onnx takes a zipmap option to mean a classifier
            getattr(package, f"{prefix}Regressor"),
            f"{alias}{prefix}Regressor",
            calculate_linear_regressor_output_shapes,
            converter,
        )
    return True


# --- refusals that say what to do ----------------------------------------------------------------------
def refuse_known_traps(pipeline: Any, classifier: bool) -> None:
    """Refuse what would convert to a wrong graph, or not at all, with the reason and the way out.

    Raises:
        ExportRefused: naming the step.
    """
    estimator = final_estimator(pipeline)
    kind = type(estimator).__name__
    if classifier and not hasattr(estimator, "predict_proba"):
        hint = (
            f"{kind} only has predict_proba when fitted with probability=True"
            if kind in ("SVC", "NuSVC")
            else f"{kind} has no predict_proba"
        )
        raise ExportRefused(
            f"{kind} cannot be served as a classifier: every prediction reports class probabilities, and "
            f"{hint}. Wrap it as CalibratedClassifierCV({kind}(), ensemble=False) and fit that (or, before "
            f"scikit-learn 1.9, fit {kind}(probability=True))"
        )
    for path, step in _walk(pipeline, type(pipeline).__name__):
        kind = type(step).__name__
        if kind.startswith("HistGradientBoosting"):
            if getattr(step, "is_categorical_", None) is not None and np.any(step.is_categorical_):
                raise ExportRefused(
                    f"{path}: {kind} with native categorical features converts silently to wrong "
                    "predictions (skl2onnx exports categorical splits as numeric ones); one-hot encode "
                    "those columns in a ColumnTransformer instead, or use categorical_features=None"
                )
            protobuf = metadata.version("protobuf")
            if int(protobuf.split(".")[0]) >= 7:
                raise ExportRefused(
                    f"{path}: {kind} does not convert with skl2onnx under protobuf {protobuf} (a bool lands "
                    "in an INTS attribute); install the train extra, which pins protobuf<7"
                )
        if kind == "OneHotEncoder" and getattr(step, "_infrequent_enabled", False):
            raise ExportRefused(
                f"{path}: OneHotEncoder with infrequent categories (min_frequency / max_categories) has "
                "no ONNX converter; drop those options or group rare categories in the data"
            )


def final_estimator(pipeline: Any) -> Any:
    return pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline


def steps(estimator: Any) -> list[Any]:
    """Every estimator inside pipelines and column transformers, depth first."""
    return [step for _, step in _walk(estimator, "")]


def _conversion_failure(pipeline: Any, types: list[tuple[str, Any]], opsets: Any, exc: Exception) -> str:
    """Which step failed, found by converting ever longer prefixes of the pipeline, and why."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    for path, step in _walk(pipeline, type(pipeline).__name__):
        kind = type(step).__name__
        if kind not in _CONTAINERS and type(step) not in sklearn_operator_name_map:
            return (
                f"{path} ({type(step).__module__}.{kind}) has no ONNX converter registered: replace it "
                "with a supported step (docs/models.md lists them) or register a converter with "
                "skl2onnx.update_registered_converter"
            )
    path = _failing_step(pipeline, types, opsets) or type(pipeline).__name__
    return f"skl2onnx cannot convert {path}: {' '.join(str(exc).split())[:600]}"


def _failing_step(pipeline: Any, types: list[tuple[str, Any]], opsets: Any) -> str | None:
    from skl2onnx import convert_sklearn
    from sklearn.pipeline import Pipeline

    if not hasattr(pipeline, "steps"):
        return None
    for k in range(1, len(pipeline.steps) + 1):
        head = Pipeline(pipeline.steps[:k])
        try:
            _quietly(
                convert_sklearn,
                head,
                initial_types=types,
                target_opset=opsets,
                custom_conversion_functions=_custom_converters(),
                custom_shape_calculators=_custom_shapes(),
            )
        except Exception:  # the first prefix that fails ends with the failing step
            name, step = pipeline.steps[k - 1]
            return f"step {name!r} ({type(step).__name__})"
    return None


def _canonical_opsets(graph: Any) -> None:
    """Sort and de-duplicate the opset imports, so the same model gives the same bytes.

    skl2onnx emits them in set order, which varies with PYTHONHASHSEED: without this the model hash
    would change from one export to the next.
    """
    opsets: dict[str, int] = {}
    for entry in graph.opset_import:
        opsets[entry.domain] = max(entry.version, opsets.get(entry.domain, 0))
    del graph.opset_import[:]
    for domain, version in sorted(opsets.items()):
        graph.opset_import.add(domain=domain, version=version)
