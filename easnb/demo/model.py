"""What a demo model is: named arrays in, named (datatype, array) outputs back, with its metadata
(and, for a decoupled model, its stream of responses). The models (``models``, ``textgen``) build on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from ..results import ModelMetadata

Arrays = Mapping[str, np.ndarray]
Outputs = dict[str, tuple[str, np.ndarray]]  # name -> (datatype, array)


@dataclass(frozen=True)
class Model:
    """A demo model: its metadata and a function from named arrays to named outputs."""

    metadata: ModelMetadata
    run: Callable[[Arrays, Mapping[str, str]], Outputs]  # (arrays, their datatypes) -> outputs
    any_inputs: bool = False
    instances: int = 0  # how many requests it runs at once (0: as many as the server's threads)
    #: a decoupled model's responses, one by one: (arrays, datatypes, request parameters) -> outputs...
    #: (or ``(outputs, True)`` for a response that is the request's last)
    stream: Callable[[Arrays, Mapping[str, str], Mapping[str, object]], Iterator[Outputs | tuple[Outputs, bool]]] | None = None
    optional: frozenset[str] = frozenset()  # inputs a request may leave out
