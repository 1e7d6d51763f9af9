# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""Old names of arguments that still work, with a warning."""
import warnings
from typing import Any


def deprecated_alias(owner: str, old_name: str, old_value: Any,
                     new_name: str, new_value: Any) -> Any:
    """The value of ``new_name``, taken from its deprecated alias
    ``old_name`` when only that was given (with a ``DeprecationWarning``).

    Raises:
        TypeError: When both names are given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f'{owner} got both {new_name}={new_value!r} and its '
                        f'deprecated alias {old_name}={old_value!r}; pass '
                        f'{new_name} only')
    warnings.warn(
        f'{owner}({old_name}=...) is deprecated; use {new_name}=...',
        DeprecationWarning,
        stacklevel=3)
    return old_value
