"""Personal-data tags on dataset versions: redacted profiles, inheritance, overrides."""

from __future__ import annotations

import json

import polars as pl

from shipyard.data.datasets import pii_tags, write_dataset
from shipyard.data.profile import Profile
from shipyard.track.workspace import Workspace

FRAME = pl.DataFrame(
    {
        "email": ["ann@example.com", "bob@example.com", None],
        "dob": ["1980-01-02", "1991-03-04", "2001-05-06"],
        "spend": [1.0, 2.0, 3.0],
    }
)


def test_tagged_columns_keep_counts_only_and_tags_follow_the_columns(
    workspace: Workspace,
) -> None:
    raw = write_dataset(workspace, FRAME, name="people", pii={"email": "email", "dob": "dob"})
    assert pii_tags(raw) == {"email": "email", "dob": "dob"}
    text = json.dumps(raw.profile)
    assert "ann@example.com" not in text
    assert "1980-01-02" not in text
    email = Profile.from_dict(raw.profile).column("email")
    assert (email.count, email.nulls, email.distinct, email.pii) == (2, 1, 2, "email")
    assert email.top_values == ()
    spend = Profile.from_dict(raw.profile).column("spend")
    assert (spend.pii, spend.mean, spend.max) == (None, 2.0, 3.0)
    assert "pii" not in raw.profile["columns"][2]  # untagged columns are stored as before

    # A child without tags inherits its parent's, for the columns it still has...
    child = write_dataset(workspace, FRAME.drop("dob"), name="people.slim", parents=[raw])
    assert pii_tags(child) == {"email": "email"}
    assert "ann@example.com" not in json.dumps(child.profile)
    # ...and explicit tags replace them.
    treated = write_dataset(
        workspace,
        FRAME.with_columns(pl.col("email").str.len_chars().cast(pl.String)),
        name="people.private",
        parents=[raw],
        pii={"email": "pseudonymized"},
    )
    assert pii_tags(treated) == {"email": "pseudonymized"}
    dob = Profile.from_dict(treated.profile).column("dob")
    assert dob.top_values != ()  # no longer tagged: profiled in full


def test_untagged_versions_have_no_tags(workspace: Workspace) -> None:
    version = write_dataset(workspace, FRAME, name="plain")
    assert pii_tags(version) == {}
    assert Profile.from_dict(version.profile).pii == {}
