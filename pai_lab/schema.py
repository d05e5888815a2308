"""The base of every request and response shape in pai_lab."""

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    # Unknown fields are refused, so a misspelt key is an error that names it, not a silent no-op.
    model_config = ConfigDict(extra="forbid")
