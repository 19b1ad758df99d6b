"""A config file's argument (`--config configs/FILE.py:ARG`) as named values, as big_vision's
`parse_arg`: `configs/reference.py:tpu=v5litepod-8,vgg=/w/vgg19.pth`.

Pure Python: config files run it before JAX starts.
"""

from __future__ import annotations

import re

import ml_collections

# A comma starts the next value only before `name=`, so a value may hold commas
# (vgg=weights/v1,2.pth).
_NEXT = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")


def parse_arg(arg: str | None, config_file: str, **names: str) -> ml_collections.ConfigDict:
    """`arg` ("name=value,name=value") -> a ConfigDict holding every one of `names` (each
    given a string default). A value without a name ("v5litepod-8") is the first of `names`,
    as big_vision's; an unknown or repeated name raises ValueError in one line naming
    `config_file` and the names it takes."""
    out = ml_collections.ConfigDict(names)
    if not arg:
        return out
    known = ", ".join(names)
    usage = f"{config_file}:{','.join(f'{n}=...' for n in names)}"
    if "=" not in arg:
        out[next(iter(names))] = arg.strip()
        return out
    seen: set[str] = set()
    for item in _NEXT.split(arg):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or name not in names:
            raise ValueError(
                f"{config_file}: unknown argument {name!r} in {arg!r}; its arguments are "
                f"{known} ({usage})."
            )
        if name in seen:
            raise ValueError(f"{config_file}: argument {name!r} given twice in {arg!r}.")
        seen.add(name)
        out[name] = value.strip()
    return out
