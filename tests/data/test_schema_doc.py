"""docs/format.md must name every field and attribute the schema defines."""

from pathlib import Path

from robolearn.data import schema

DOC = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()


def test_every_episode_attr_documented():
    missing = [a for a in schema.EPISODE_ATTRS if f"`{a}`" not in DOC]
    assert not missing, f"docs/format.md lacks attributes {missing}"


def test_every_step_field_documented():
    missing = [
        f.path for f in schema.STEP_FIELDS + schema.CAMERA_STEP_FIELDS if f"`{f.path.rsplit('/', 1)[-1]}`" not in DOC
    ]
    assert not missing, f"docs/format.md lacks fields {missing}"


def test_every_camera_key_documented():
    missing = [k for k in schema.CameraSpec.__dataclass_fields__ if f"`{k}`" not in DOC]
    assert not missing, f"docs/format.md lacks camera keys {missing}"


def test_version_documented():
    assert f"schema version {schema.SCHEMA_VERSION}" in DOC
