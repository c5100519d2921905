"""The small interfaces (typing Protocols) that the display and frame helpers read values through.

``easnb.display`` and ``easnb.frames`` sit below the value classes (``easnb.metadata``,
``easnb.results``) that call them for ``_repr_html_`` and ``to_frame``; they name what they read
here instead of importing those classes, so the house has no import circle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class ServerInfo(Protocol):
    """What ``ServerMetadata`` offers: the server's name, version and extensions."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def extensions(self) -> Sequence[str]: ...


class TensorInfo(Protocol):
    """What ``TensorMetadata`` offers: a name, a V2 datatype and a shape (-1: variable)."""

    @property
    def name(self) -> str: ...
    @property
    def datatype(self) -> str: ...
    @property
    def shape(self) -> Sequence[int]: ...


class ModelInfo(Protocol):
    """What ``ModelMetadata`` offers to be shown."""

    @property
    def name(self) -> str: ...
    @property
    def versions(self) -> Sequence[str]: ...
    @property
    def platform(self) -> str: ...
    @property
    def properties(self) -> Mapping[str, str]: ...
    @property
    def inputs(self) -> Sequence[TensorInfo]: ...
    @property
    def outputs(self) -> Sequence[TensorInfo]: ...


class Outputs(Protocol):
    """What ``result_to_frame`` reads of an ``InferResult``: its arrays by output name."""

    @property
    def outputs(self) -> Mapping[str, Any]: ...


class ResultInfo(Outputs, Protocol):
    """What ``InferResult`` offers to be shown."""

    @property
    def model_name(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def parameters(self) -> Mapping[str, Any]: ...
    @property
    def output_parameters(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def datatypes(self) -> Mapping[str, str]: ...

    def to_frame(self) -> Any: ...
