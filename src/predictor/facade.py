"""The notebook facade: `predict()` and `load_model()` over the same use case and wiring as the server.

Shapes follow the input: a dict (or a pandas Series) gives one prediction, a list gives a list, a DataFrame
gives a DataFrame (one row per input row, index kept). Validation errors are the domain's
`ValidationFailed`, which lists every problem by record (a DataFrame's own index label) and feature.

Data is taken as pandas holds it: NaN, `pd.NA` and None mean missing, numpy scalars are plain numbers,
and `drop=` names columns to leave out (e.g. the target). The HTTP API stays strict; here the values are
made plain only when the strict validator refused them as they came, so valid data pays nothing.

Settings are read once, on first use. One `Wiring` per settings (and recording choice) is cached, so
sessions and store connections are reused; `close()` releases them all (it also runs at interpreter
exit) and forgets the settings. Recording is opt-in here (`record=True`): it runs the async store on a
private event loop in a background thread, because Jupyter already runs a loop in the main one.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import itertools
import math
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from predictor.settings import Settings
from predictor.wiring import Wiring
from predictor_core import (
    BinaryPrediction,
    ExecutionReport,
    FeatureKind,
    FeatureSchema,
    ModelDescription,
    ModelManifest,
    MulticlassPrediction,
    Prediction,
    Problem,
    ProblemCode,
    RegressionPrediction,
    RegressorOutputs,
    Task,
    ValidationFailed,
    class_array,
)
from predictor_core.validation import ColumnMatrix

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["Model", "close", "load_model", "predict"]

T = TypeVar("T")


class Model:
    """A loaded model version, ready for `predict`; shows its task, metrics and provider when displayed."""

    def __init__(self, settings: Settings, described: ModelDescription) -> None:
        """Wrap a version the registry of `settings` loaded and described."""
        self._settings = settings
        self._described = described

    @property
    def manifest(self) -> ModelManifest:
        return self._described.manifest

    @property
    def schema(self) -> FeatureSchema:
        return self.manifest.schema

    @property
    def execution(self) -> ExecutionReport:
        assert self._described.execution is not None
        return self._described.execution

    def predict(self, data: Any, *, record: bool = False, drop: Iterable[str] = ()) -> Any:
        """Predict with exactly this version; see `predictor.predict` for the shapes in and out."""
        m = self.manifest
        return _predict(self._settings, m.name, m.version, data, record=record, drop=drop)

    def __repr__(self) -> str:
        m = self.manifest
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in m.metrics.items())
        return (
            f"<Model {m.name} {m.version} ({m.task}) on {self.execution.providers[0]}; "
            f"{len(m.schema.features)} features; {metrics}>"
        )


def load_model(
    model: str | Path | None = None,
    *,
    version: str | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> Model:
    """Load a model by name (the version it serves unless `version`), or the bundle directory at a path.

    Settings (model directories, default model, device, database) come from the environment
    (`PREDICTOR_*`) as for the server; `device` and `threads` override them.

    Raises:
        ModelNotFound, BundleError: the model cannot be found or is not intact.
        ConfigurationError: the device cannot be had (e.g. `cuda` without a GPU).
    """
    settings, name = _settings_for(model, device=device, threads=threads)
    registry = _wiring(settings, record=False).registry
    registry.runtime(name, version)  # load errors are raised here, not described
    return Model(settings, registry.describe(name, version))


def predict(
    data: Any,
    *,
    model: str | Path | Model | None = None,
    version: str | None = None,
    record: bool = False,
    drop: Iterable[str] = (),
) -> Any:
    """Predict one record (a dict or a Series), a list of records, or every row of a pandas DataFrame.

    Args:
        data: a dict of feature values (a Series, e.g. `frame.iloc[3]`), a list of such dicts (e.g.
            `frame.to_dict("records")`), or a DataFrame with one column per feature; missing values as
            NaN, `pd.NA` or None where the model accepts them.
        model: a model name, a bundle path, or a `Model` from `load_model`; the default model if None.
        version: a model version (the one the name serves if None).
        record: also write every input and prediction to the configured database (audit trail).
        drop: keys or columns to leave out when present, e.g. the target still in the frame; any other
            name the model does not know is refused as an unknown feature.

    Returns:
        One Prediction for a dict, a list of Predictions for a list, a DataFrame (label and
        probability columns, or value for regression) for a DataFrame; its labels are a categorical
        of the model's classes (int64 for integer classes).

    Raises:
        ValidationFailed: what is wrong with which record and feature; nothing was predicted.
    """
    if isinstance(model, Model):
        return model.predict(data, record=record, drop=drop)
    settings, name = _settings_for(model)
    return _predict(settings, name, version, data, record=record, drop=drop)


def close() -> None:
    """Release every cached wiring (sessions, database connections, the private loop); forget settings.

    The next `predict()` reads the settings again. Registered to run at interpreter exit.
    """
    global _base, _loop_thread
    with _lock:
        wirings = list(_wirings.values())
        _wirings.clear()
        loop_thread, _loop_thread, _base = _loop_thread, None, None
    if loop_thread is not None:
        for wiring in wirings:
            asyncio.run_coroutine_threadsafe(wiring.close(), loop_thread.loop).result()
        loop_thread.stop()


_lock = threading.RLock()
_base: Settings | None = None
_wirings: dict[tuple[Settings, bool], Wiring] = {}


def _settings_for(model: str | Path | None, **overrides: Any) -> tuple[Settings, str | None]:
    """Settings, and the model name to ask for (None: their default model).

    A bundle path becomes the default model of its own settings, so the model source knows it by the
    name in its manifest; names are never read as paths further down.
    """
    from predictor_onnx import is_bundle_path

    global _base
    with _lock:
        if _base is None:
            _base = Settings.load()
        base = _base
    changes = {k: v for k, v in overrides.items() if v is not None}
    if model is not None and is_bundle_path(model):
        return msgspec.structs.replace(base, model=str(model), **changes), None
    return msgspec.structs.replace(base, **changes), None if model is None else str(model)


def _wiring(settings: Settings, *, record: bool) -> Wiring:
    """The cached wiring for settings and a recording choice; a recording one is started."""
    key = (settings, record)
    with _lock:
        wiring = _wirings.get(key)
        if wiring is None:
            wiring = Wiring(msgspec.structs.replace(settings, record=record))
            if record:  # a missing schema fails here, saying to run `predictor db upgrade`
                _on_loop(wiring.start())
            _wirings[key] = wiring
    return wiring


def _predict(
    settings: Settings,
    model: str | None,
    version: str | None,
    data: Any,
    *,
    record: bool,
    drop: Iterable[str],
) -> Any:
    wiring = _wiring(settings, record=record)
    dropped = frozenset(drop)
    frame = _as_frame(data)
    if frame is not None:
        if dropped and dropped.intersection(frame.columns):
            frame = frame.drop(columns=[c for c in frame.columns if c in dropped])
        manifest = wiring.registry.resolve(model, version)  # once: the columns are read for this version
        columns = _columns(frame, manifest.schema)
        try:
            try:
                return _frame_predicted(wiring, manifest, columns, frame.index, record, version is None)
            except ValidationFailed:
                if type(columns) is not ColumnMatrix or not _has_nan(columns.matrix):
                    raise
            # a NaN in a block of floats is a gap, which the block's check refuses as not finite: the
            # frame again column by column, gaps as None, for the same problems as any other frame
            columns = _columns(frame, manifest.schema, whole=False)
            return _frame_predicted(wiring, manifest, columns, frame.index, record, version is None)
        except ValidationFailed as failure:
            raise _by_label(failure, frame.index) from None
    single = _as_record(data)
    records = [single] if single is not None else data
    if dropped and isinstance(records, Sequence):
        records = [_without(r, dropped) for r in records]
    try:
        predictions = _run(wiring, records, model, version, "records", record)
    except ValidationFailed:
        plain = _plain_records(records)
        if plain is None:  # nothing to make plain: the values were refused as they are
            raise
    else:
        return predictions[0] if single is not None else predictions
    predictions = _run(wiring, plain, model, version, "records", record)  # refused again: as pandas has it
    return predictions[0] if single is not None else predictions


def _run(
    wiring: Wiring,
    data: Any,
    model: str | None,
    version: str | None,
    layout: Any,
    record: bool,
    *,
    shadow: bool | None = None,
) -> list[Prediction]:
    if record:
        return _on_loop(
            wiring.service.predict(data, model=model, version=version, layout=layout, shadow=shadow)
        )
    return wiring.service.predict_unrecorded(data, model=model, version=version, layout=layout)


def _frame_predicted(
    wiring: Wiring, manifest: ModelManifest, columns: Any, index: Any, record: bool, shadow: bool
) -> pd.DataFrame:
    if not record:
        return _frame_unrecorded(wiring, manifest, columns, index)
    predictions = _run(wiring, columns, manifest.name, manifest.version, "columns", record, shadow=shadow)
    return _to_frame(predictions, index, manifest.classes or ())


def _as_record(data: Any) -> Mapping[str, Any] | None:
    """One record: a mapping, or a pandas Series (feature name -> value); None for anything else."""
    if isinstance(data, Mapping):
        return data
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.Series):
        return {str(k): v for k, v in data.items()}
    return None


def _without(record: Any, dropped: frozenset[str]) -> Any:
    return {k: v for k, v in record.items() if k not in dropped} if isinstance(record, Mapping) else record


def _plain_records(records: Any) -> list[Any] | None:
    """The records with pandas' and numpy's values made plain, or None when no value needed it."""
    if not isinstance(records, Sequence) or isinstance(records, str | bytes):
        return None
    changed = False
    plain: list[Any] = []
    for record in records:
        if isinstance(record, Mapping):
            values = {k: _plain(v) for k, v in record.items()}
            changed = changed or any(values[k] is not v for k, v in record.items())
            plain.append(values)
        else:
            plain.append(record)
    return plain if changed else None


def _plain(value: Any) -> Any:
    """NaN, NaT and `pd.NA` as None; numpy scalars as the Python int, float, bool or str they hold."""
    if isinstance(value, float):
        return None if value != value else value
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return _plain(value.item())
    pandas = sys.modules.get("pandas")
    if pandas is not None and (value is pandas.NA or value is pandas.NaT):
        return None
    return value


def _by_label(failure: ValidationFailed, index: Any) -> ValidationFailed:
    """The same problems, with a DataFrame row located by its index label instead of its position."""
    labels = index.tolist()

    def label(position: int) -> int | str:
        value = labels[position]
        return value if isinstance(value, int | str) else str(value)

    return ValidationFailed(
        [
            msgspec.structs.replace(p, loc=(label(p.loc[0]), *p.loc[1:]))
            if p.loc and isinstance(p.loc[0], int)
            else p
            for p in failure.problems
        ],
        total=failure.total,
    )


def _as_frame(data: Any) -> pd.DataFrame | None:
    """The data when it is a DataFrame; pandas is imported only if the caller already did."""
    pandas = sys.modules.get("pandas")
    return data if pandas is not None and isinstance(data, pandas.DataFrame) else None


def _columns(frame: pd.DataFrame, schema: FeatureSchema, *, whole: bool = True) -> Mapping[str, Any]:
    """The frame's columns for the core: numpy arrays where no value is missing, else plain lists.

    A frame of float64 columns with string names, none of an integer feature, is passed as its block
    itself (`ColumnMatrix`, unless `whole` is False): the core checks it whole and the model reads it
    without a copy. Where some feature takes a missing value, only a block without NaN goes whole;
    where none does, a NaN is refused either way, and the caller reads the frame again with `whole`
    False to report it as a gap. Other frames are read the cheapest way pandas allows (`_numeric`,
    `_objects`). A column with gaps becomes a list with None for NaN. pandas turns an integer column
    with a gap into float64; that is an artefact, not the user's data, hence integral floats of
    integer features are given back as ints.

    Raises:
        ValidationFailed: a column name appears twice (`duplicate_feature`).
    """
    import numpy as np

    layout = _layout(frame.columns, schema)
    if layout.duplicates:
        raise ValidationFailed(list(layout.duplicates))
    if whole and layout.block is not None and len(frame) and _all_float64(frame):
        block = frame.to_numpy()
        if layout.gaps_refused or not _has_nan(block):
            return ColumnMatrix.at(block, layout.block)
    names, integers = layout.names, layout.integers
    groups: dict[str, list[int]] = {}
    for position, dtype in enumerate(_dtypes(frame)):
        kind: str = dtype.kind if isinstance(dtype, np.dtype) and dtype.kind in "fiub" else "O"
        groups.setdefault(kind, []).append(position)
    columns: dict[str, Any] = {}
    for kind, positions in groups.items():
        if kind == "O":
            for position in positions:
                columns[str(names[position])] = _objects(_column(frame, position))
            continue
        for position, array in zip(positions, _numeric(frame, positions), strict=True):
            name = names[position]
            column: Any = array
            if kind == "f":
                if np.isnan(array).any():  # NaN alone is unequal to itself
                    column = [None if v != v else v for v in array.tolist()]
                if name in integers:
                    column = _integral(column)
            columns[str(name)] = column
    return columns


def _has_nan(block: np.ndarray) -> bool:
    import numpy as np

    return bool(np.isnan(block.min()))  # NaN anywhere makes the minimum NaN


@dataclass(frozen=True, slots=True)
class _Layout:
    """What a frame's column labels mean for a schema, worked out once per Index (`_layout`)."""

    columns: pd.Index
    schema: FeatureSchema
    names: list[Any]
    duplicates: tuple[Problem, ...]
    integers: frozenset[str]
    """The schema's integer features."""
    block: Mapping[str, int] | None
    """Each name's column in a float64 block that may go to the core whole, or None where none may:
    a label that is not a string, or an integer feature (its integral floats are given back as ints)."""
    gaps_refused: bool
    """No feature of the schema takes a missing value."""

    @classmethod
    def of(cls, columns: pd.Index, schema: FeatureSchema) -> _Layout:
        names = columns.tolist()
        integers = frozenset(f.name for f in schema.features if f.kind is FeatureKind.INTEGER)
        duplicates = tuple(  # pandas allows them; which of the two would be the feature?
            Problem(
                loc=(str(name),),
                code=ProblemCode.DUPLICATE_FEATURE,
                msg=f"column {name!r} appears {names.count(name)} times; a feature is given once",
            )
            for name in dict.fromkeys(names)
            if names.count(name) > 1
        )
        whole = bool(names) and not duplicates and all(type(n) is str for n in names)
        return cls(
            columns=columns,
            schema=schema,
            names=names,
            duplicates=duplicates,
            integers=integers,
            block={name: j for j, name in enumerate(names)} if whole and integers.isdisjoint(names) else None,
            gaps_refused=not any(f.nullable for f in schema.features),
        )


_last_layout: _Layout | None = None


def _layout(columns: pd.Index, schema: FeatureSchema) -> _Layout:
    """The layout of a frame's column labels, remembered for the last Index and schema seen.

    pandas 3 spends 10-35 µs listing an Index of strings (through pyarrow), and a notebook predicts
    frame after frame with the same columns, usually the same Index object, for the same model. An
    Index's labels cannot be changed in place (setting `frame.columns` puts a new Index), so its
    identity is enough, as is a loaded manifest's schema's.
    """
    global _last_layout
    layout = _last_layout
    if layout is None or layout.columns is not columns or layout.schema is not schema:
        layout = _last_layout = _Layout.of(columns, schema)
    return layout


# pandas' public ways to a column (`frame[name]`, `frame.iloc[:, i]`, `frame.items()`) and to the
# dtypes build a Series each time: 20-40 µs a column under pandas 3, whose column Index holds pyarrow
# strings, which made a 10-column frame of one row cost 400 µs before validation began. `_dtypes` and
# `_column` read what the frame holds instead (~1 µs): `DataFrame._mgr` and `_get_column_array` are
# private, but in every pandas this project supports (>= 2.1), and every DataFrame test goes through them.


def _all_float64(frame: pd.DataFrame) -> bool:
    """Whether every column is float64, asked of the frame's blocks (one, once pandas consolidated it)."""
    import numpy as np

    return all(block.dtype == np.float64 for block in frame._mgr.blocks)


def _dtypes(frame: pd.DataFrame) -> list[Any]:
    """The dtype of each column, in order."""
    return frame._mgr.get_dtypes().tolist()  # type: ignore[no-any-return]


def _column(frame: pd.DataFrame, position: int) -> Any:
    """The column at `position` as the frame stores it: a numpy array or a pandas ExtensionArray."""
    return frame._get_column_array(position)


def _numeric(frame: pd.DataFrame, positions: list[int]) -> Iterable[Any]:
    """The numeric columns at `positions` as numpy arrays; views of the block when they are all."""
    if len(positions) == frame.shape[1]:
        block: np.ndarray = frame.to_numpy()
        return block.T
    return [_column(frame, position) for position in positions]


def _objects(stored: Any) -> list[Any]:
    """A column of strings or mixed values as a list, None where pandas sees a missing value."""
    import numpy as np
    import pandas as pd

    values = np.asarray(stored, dtype=object)
    column: list[Any] = values.tolist()
    for position in np.flatnonzero(pd.isna(values)).tolist():
        column[position] = None
    return column


def _integral(column: Any) -> Any:
    """Integral floats as ints: the whole array as int64 when it can be, else value by value."""
    import numpy as np

    if (
        isinstance(column, np.ndarray)
        and (np.abs(column) < 2**63).all()
        and (column == np.floor(column)).all()
    ):
        return column.astype(np.int64)
    values = column.tolist() if isinstance(column, np.ndarray) else column
    return [int(v) if v is not None and math.isfinite(v) and v.is_integer() else v for v in values]


def _frame_unrecorded(wiring: Wiring, manifest: ModelManifest, columns: Any, index: Any) -> pd.DataFrame:
    """Predictions for a DataFrame as a DataFrame, straight from the model's arrays.

    `PredictionService.infer_unrecorded`, without the Prediction object per row the frame would unpack.
    """
    import numpy as np

    manifest, outputs = wiring.service.infer_unrecorded(
        columns, model=manifest.name, version=manifest.version, layout="columns"
    )
    if isinstance(outputs, RegressorOutputs):
        return _frame(index, ("value",), [outputs.values.astype(np.float64)])
    classes = manifest.classes or ()
    probabilities = outputs.probabilities
    label = _label_column(outputs.labels, classes, probabilities, outputs.codes)
    if manifest.task is Task.BINARY:  # only the column shown, as a contiguous float64 array
        shown = probabilities[:, classes.index(manifest.positive_class)].astype(np.float64)
        return _frame(index, ("label", "probability"), [label, shown])
    by_class = np.ascontiguousarray(probabilities.T, dtype=np.float64)  # one block, a class per row
    return _frame(index, ("label", *(f"probability_{c}" for c in classes)), [label, by_class])


def _frame(index: Any, names: tuple[str, ...], blocks: Sequence[Any]) -> pd.DataFrame:
    """A DataFrame of fresh arrays taken as they are, named `names` in order.

    Each of `blocks` is one column (a 1-D numpy array or a pandas ExtensionArray) or a [k, N] float64
    array of k consecutive columns, as pandas would consolidate them. Built from these blocks with
    pandas' `create_dataframe_from_blocks` (public since pandas 3): the constructor's inference and
    block forming cost more than the rest of a 1,000-row answer (2.75x -> 2.51x the bare model for a
    1,000-row frame, 2026-12-07). Older pandas take the columns through `DataFrame._from_arrays`.
    The column Index is made once per set of names (pandas 3 infers its string dtype through pyarrow,
    ~75 µs) and each answer gets a view of it, since an Index's name can be set in place.
    """
    import numpy as np
    import pandas as pd

    labels, placements = _block_layout(names, tuple(len(b) if b.ndim == 2 else 1 for b in blocks))
    from_blocks = _from_blocks()
    if from_blocks is None:
        columns = [column for b in blocks for column in (b if b.ndim == 2 else (b,))]
        return pd.DataFrame._from_arrays(columns, columns=labels.view(), index=index, verify_integrity=False)
    return from_blocks(
        [
            (b.reshape(1, -1) if b.ndim == 1 and isinstance(b, np.ndarray) else b, at)
            for b, at in zip(blocks, placements, strict=True)
        ],
        index=index,
        columns=labels.view(),
    )


@functools.cache
def _block_layout(names: tuple[str, ...], widths: tuple[int, ...]) -> tuple[pd.Index, list[np.ndarray]]:
    """The column Index and each block's column positions, made once per shape of answer."""
    import numpy as np
    import pandas as pd

    if len(names) != sum(widths):
        raise ValueError(f"{len(names)} names for blocks of {sum(widths)} columns")
    starts = np.cumsum((0, *widths)).tolist()
    return pd.Index(names), [np.arange(a, b) for a, b in itertools.pairwise(starts)]


@functools.cache
def _from_blocks() -> Callable[..., pd.DataFrame] | None:
    """The `create_dataframe_from_blocks` of pandas, or None before pandas 3."""
    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:
        return None
    return create_dataframe_from_blocks  # type: ignore[no-any-return]


def _to_frame(predictions: Sequence[Prediction], index: Any, classes: Sequence[Any]) -> pd.DataFrame:
    """Recorded predictions as the same frame `_frame_unrecorded` gives, plus their `prediction_id`."""
    import numpy as np

    first = predictions[0]
    ids = np.empty(len(predictions), dtype=object)
    ids[:] = [p.prediction_id for p in predictions]
    if isinstance(first, RegressionPrediction):
        values = np.array([p.value for p in predictions], dtype=np.float64)  # type: ignore[union-attr]
        return _frame(index, ("value", "prediction_id"), [values, ids])
    labels = [p.label for p in predictions]  # type: ignore[union-attr]
    label = _label_column(np.asarray(labels), classes)  # ints stay ints
    if isinstance(first, BinaryPrediction):
        shown = np.array([p.probability for p in predictions], dtype=np.float64)  # type: ignore[union-attr]
        return _frame(index, ("label", "probability", "prediction_id"), [label, shown, ids])
    assert isinstance(first, MulticlassPrediction)
    by_class = np.array(
        [[p.probabilities[c] for p in predictions] for c in first.probabilities],  # type: ignore[union-attr]
        dtype=np.float64,
    )
    names = ("label", *(f"probability_{c}" for c in first.probabilities), "prediction_id")
    return _frame(index, names, [label, by_class, ids])


def _label_column(
    labels: np.ndarray,
    classes: Sequence[Any],
    probabilities: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> Any:
    """Labels as a column: int64 for integer classes, else a categorical of the model's classes.

    The categories say which classes the model knows, even those it predicted for no row here, and
    pandas takes 1,000 codes for a fraction of what it spends inferring its `str` type from 1,000 strings.
    The codes are the runtime's where it has them (the graph picked each label by its position in the
    classes). Else, a classifier's label is nearly always its most probable class (the probabilities'
    columns are the classes in order), so those codes are tried first and checked against the labels in
    one comparison (~28 µs for 1,000 strings); where any differs (e.g. an SVC, whose vote can disagree
    with its probabilities), one comparison per class.
    """
    import numpy as np
    import pandas as pd

    if labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    if labels.dtype.kind == "b" or not classes:
        return labels
    classes = tuple(classes)
    if codes is not None:  # positions in these classes by construction: pandas need not look
        return pd.Categorical.from_codes(codes, dtype=_categories(classes), validate=False)
    known = class_array(classes)
    if probabilities is not None and probabilities.shape == (len(labels), len(known)):
        codes = (
            (probabilities[:, 1] > probabilities[:, 0]).view(np.int8)  # argmax, a third of the time
            if len(known) == 2
            else probabilities.argmax(axis=1)
        )
        if (labels == known[codes]).all():  # codes in range by construction: pandas need not look
            return pd.Categorical.from_codes(codes, dtype=_categories(classes), validate=False)
    codes = np.full(len(labels), -1, dtype=np.int32)
    for code, cls in enumerate(classes):  # one comparison per class: classifiers have few
        codes[labels == cls] = code
    if (codes < 0).any():  # a label the manifest does not list: shown as it is
        return labels
    return pd.Categorical.from_codes(codes, dtype=_categories(classes))


@functools.cache
def _categories(classes: tuple[Any, ...]) -> pd.CategoricalDtype:
    """The dtype of a model's labels, made once: pandas takes ~70 µs to build one."""
    import pandas as pd

    return pd.CategoricalDtype(list(classes))


class _LoopThread:
    """A private event loop in a daemon thread: async recording from sync code, even inside Jupyter."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="predictor-facade-loop", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


_loop_thread: _LoopThread | None = None


def _on_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    global _loop_thread
    with _lock:
        if _loop_thread is None:
            _loop_thread = _LoopThread()
        loop = _loop_thread.loop
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


atexit.register(close)
