import json

import msgspec
import pytest

from predictor_core import Feature, FeatureKind, FeatureSchema, Rule, SchemaError
from tests.fakes import toy_schema


def test_schema_round_trips_through_json():
    schema = toy_schema()
    again = FeatureSchema.from_json(schema.to_json())
    assert again == schema
    assert again.to_json() == schema.to_json()


def test_python_callers_may_pass_strings_and_lists():
    feature = Feature(name="c", kind="category", categories=["a", "b"])
    assert feature.kind is FeatureKind.CATEGORY
    assert feature.categories == ("a", "b")
    schema = FeatureSchema(features=[feature])
    assert isinstance(schema.features, tuple)


def test_json_schema_carries_units_bounds_categories_and_rules():
    js = toy_schema().json_schema()
    assert js["additionalProperties"] is False
    assert js["required"] == ["x", "y", "n", "flag", "colour"]
    x = js["properties"]["x"]
    assert x == {"type": "number", "description": "length [mm]", "minimum": 0, "maximum": 100, "x-unit": "mm"}
    assert js["properties"]["n"]["type"] == "integer"
    assert js["properties"]["flag"]["type"] == "boolean"
    assert js["properties"]["colour"] == {"type": ["string", "null"], "enum": ["red", "green", "blue", None]}
    assert js["x-rules"] == [{"name": "y_ge_x", "expr": "y >= x", "message": "y must be at least x"}]
    json.dumps(js)  # plain JSON


def test_example_prefers_declared_examples():
    assert toy_schema().example() == {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
    bare = FeatureSchema(
        features=(
            Feature(name="a", kind="number", minimum=2, maximum=4),
            Feature(name="i", kind="integer", minimum=1, maximum=4),
            Feature(name="b", kind="boolean"),
            Feature(name="c", kind="category", categories=("x",)),
            Feature(name="u", kind="number"),
        )
    )
    assert bare.example() == {"a": 3.0, "i": 2, "b": False, "c": "x", "u": 0.5}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "mean radius", "kind": "number"}, "identifier"),
        ({"name": "a", "kind": "tensor"}, "kind must be one of"),
        ({"name": "a", "kind": "number", "required": False}, "optional feature must be nullable"),
        ({"name": "a", "kind": "category"}, "needs its list of categories"),
        ({"name": "a", "kind": "category", "categories": ("x", "x")}, "unique"),
        ({"name": "a", "kind": "number", "categories": ("x",)}, "only category features"),
        ({"name": "a", "kind": "boolean", "minimum": 0}, "bounds only apply"),
        ({"name": "a", "kind": "number", "minimum": 2, "maximum": 1}, "above maximum"),
        ({"name": "a", "kind": "number", "maximum": float("inf")}, "finite"),
    ],
)
def test_ill_formed_features_are_refused(kwargs, fragment):
    with pytest.raises(SchemaError, match=fragment):
        Feature(**kwargs)


def test_ill_formed_schemas_are_refused():
    a = Feature(name="a", kind="number")
    c = Feature(name="c", kind="category", categories=("x",))
    with pytest.raises(SchemaError, match="at least one feature"):
        FeatureSchema(features=())
    with pytest.raises(SchemaError, match="duplicate feature names: a"):
        FeatureSchema(features=(a, a))
    with pytest.raises(SchemaError, match="unknown features: b"):
        FeatureSchema(features=(a,), rules=(Rule(name="r", expr="a >= b", message="m"),))
    with pytest.raises(SchemaError, match="not category"):
        FeatureSchema(features=(a, c), rules=(Rule(name="r", expr="a >= c", message="m"),))
    r = Rule(name="r", expr="a >= 0", message="m")
    with pytest.raises(SchemaError, match="rule names must be unique"):
        FeatureSchema(features=(a,), rules=(r, r))


def test_loading_refuses_unknown_keys_and_bad_rules():
    with pytest.raises(SchemaError, match="invalid feature schema"):
        FeatureSchema.from_json(b'{"features": [{"name": "a", "kind": "number", "colour": 1}]}')
    with pytest.raises(SchemaError, match="invalid feature schema"):
        FeatureSchema.from_json(
            b'{"features": [{"name": "a", "kind": "number"}],'
            b' "rules": [{"name": "r", "expr": "a >>", "message": ""}]}'
        )


def test_feature_lookup():
    schema = toy_schema()
    assert schema.feature("y").unit == "mm"
    assert schema.names == ("x", "y", "n", "flag", "colour")
    assert not schema.all_numeric
    with pytest.raises(KeyError):
        schema.feature("nope")
    assert msgspec.json.decode(schema.to_json())["rules"][0]["expr"] == "y >= x"
