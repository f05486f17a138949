"""Saved model zips read as data: checked before SB3 unpickles anything, and a plain-JSON description for safe loading.

SB3's ``load`` unpickles the classes and objects stored in a zip's ``data`` member (cloudpickle), which runs code
from the file. A model saved here also stores ``sb3_generative.json``: the spaces, the policy's and the algorithm's
settings as plain JSON. ``load(path, safe=True)`` rebuilds the model from that description and the weights-only
tensors (``torch.load(weights_only=True)``), so nothing from the file is executed.
"""

import io
import json
import pathlib
import zipfile
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces

DESCRIPTION = "sb3_generative.json"
FORMAT = 1
#: optimizers a description may name (resolved from torch.optim only)
OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")
#: the features extractors safe loading rebuilds: SB3's own (a user's class is code, which safe loading never runs)
EXTRACTORS = ("FlattenExtractor", "CombinedExtractor", "NatureCNN")
#: the dtypes of a Box safe loading rebuilds
BOX_DTYPES = ("float32", "float64", "uint8")

PathLike = str | pathlib.Path | io.BufferedIOBase


class ModelFileError(ValueError):
    """A model file that cannot be loaded: not a zip, truncated, incomplete, corrupt, or saved by another algorithm."""


def _open(path: PathLike) -> zipfile.ZipFile:
    if isinstance(path, io.BufferedIOBase) or hasattr(path, "read"):
        path.seek(0)  # type: ignore[union-attr]
        return zipfile.ZipFile(path)  # type: ignore[arg-type]
    name = pathlib.Path(path)
    if not name.exists() and name.with_suffix(".zip").exists():
        name = name.with_suffix(".zip")
    if not name.is_file():
        raise ModelFileError(f"Model file {str(path)!r} does not exist")
    return zipfile.ZipFile(name)


def read_model_zip(path: PathLike) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Check a model zip and read its ``data`` and description as plain JSON (nothing is unpickled).

    :param path: the zip (a path, with or without ".zip", or a file object)
    :return: (SB3's data as plain JSON, the description or None for zips saved without one)
    """
    try:
        with _open(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ModelFileError(f"Model file {_name(path)} is corrupt: member {bad!r} fails its checksum")
            names = set(archive.namelist())
            if "data" not in names:
                raise ModelFileError(
                    f"Model file {_name(path)} has no 'data' member: it is truncated, or not a saved SB3 model"
                )
            data = _json(archive, "data", path)
            description = _json(archive, DESCRIPTION, path) if DESCRIPTION in names else None
    except (zipfile.BadZipFile, EOFError) as error:
        raise ModelFileError(f"Model file {_name(path)} is not a zip archive or is truncated: {error}") from error
    finally:
        if hasattr(path, "seek"):
            path.seek(0)  # type: ignore[union-attr]
    return data, description


def _json(archive: zipfile.ZipFile, member: str, path: PathLike) -> dict[str, Any]:
    try:
        value = json.loads(archive.read(member).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"Model file {_name(path)} holds half-written or corrupt JSON in {member!r}: {error}") from error
    if not isinstance(value, dict):
        raise ModelFileError(f"Model file {_name(path)}: {member!r} is not a JSON object")
    return value


def _name(path: PathLike) -> str:
    return repr(str(path)) if isinstance(path, (str, pathlib.Path)) else "(file object)"


def check_saved_by(algorithm: str, data: dict[str, Any], description: dict[str, Any] | None, path: PathLike) -> None:
    """Raise unless the zip was saved by ``algorithm`` of this package.

    :param algorithm: the loading class's name ("GMPO", "GMPG")
    :param data: SB3's data as plain JSON
    :param description: the package's description, if any
    :param path: the file, for the message
    """
    if description is not None:
        saved = description.get("algorithm")
        if saved != algorithm:
            raise ModelFileError(f"Model file {_name(path)} was saved by {saved}, not {algorithm}: load it with {saved}.load")
        return
    module = str(data.get("policy_class", {}).get("__module__", "an unknown module"))
    if not module.startswith("sb3_generative"):
        raise ModelFileError(
            f"Model file {_name(path)} was saved by another algorithm (its policy comes from {module}), not {algorithm}"
        )


# ---------------------------------------------------------------------------------------------------- description
def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A Box space, or a Dict of them, as plain JSON.

    :param space: a Box or a Dict of Boxes
    """
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(part) for key, part in space.spaces.items()}}
    assert isinstance(space, spaces.Box)
    return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(), "dtype": str(space.dtype)}


def space_from_json(value: Any, what: str) -> spaces.Space:
    """A Box, or a Dict of Boxes, from :func:`space_to_json`'s JSON, checked.

    :param value: the JSON
    :param what: which space, for the message
    """
    try:
        if value["type"] == "Dict":
            parts = value["spaces"]
            if not isinstance(parts, dict) or not parts:
                raise ValueError("a Dict space needs a non-empty object of spaces")
            return spaces.Dict({str(key): _box_from_json(part) for key, part in parts.items()})
        return _box_from_json(value)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFileError(f"The description's {what} space is malformed: {error}") from error


def _box_from_json(value: Any) -> spaces.Box:
    if value["type"] != "Box" or value["dtype"] not in BOX_DTYPES:
        raise ValueError(f"unsupported space {value['type']} / {value['dtype']}")
    low, high = np.asarray(value["low"], np.float64), np.asarray(value["high"], np.float64)
    return spaces.Box(low.astype(value["dtype"]), high.astype(value["dtype"]), dtype=value["dtype"])


def policy_kwargs_to_json(parameters: dict[str, Any]) -> dict[str, Any]:
    """A policy's constructor parameters as plain JSON (the optimizer class by name).

    :param parameters: ``policy._get_constructor_parameters()``
    """
    skip = {"observation_space", "action_space", "lr_schedule", "squash_output"}
    result = {key: value for key, value in parameters.items() if key not in skip}
    result["optimizer_class"] = parameters["optimizer_class"].__name__
    extractor = parameters.get("features_extractor_class")
    if extractor is not None:
        result["features_extractor_class"] = f"{extractor.__module__}.{extractor.__qualname__}"
    try:
        json.dumps(result)
    except TypeError:  # a user's extractor arguments that are objects: the file then needs a trusted load
        result["features_extractor_kwargs"] = None
        result["features_extractor_kwargs_not_json"] = True
    json.dumps(result)  # fails here, not at load, if another setting is not plain JSON
    return result


def policy_kwargs_from_json(value: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`policy_kwargs_to_json`: the optimizer class only from ``torch.optim``'s usual ones.

    :param value: the JSON
    """
    kwargs = dict(value)
    name = kwargs.get("optimizer_class", "Adam")
    if name not in OPTIMIZERS:
        raise ModelFileError(f"The description names optimizer {name!r}; safe loading knows {OPTIMIZERS}")
    kwargs["optimizer_class"] = getattr(th.optim, name)
    if "features_extractor_class" in kwargs:
        from stable_baselines3.common import torch_layers

        extractor = str(kwargs["features_extractor_class"])
        module, _, class_name = extractor.rpartition(".")
        if module != torch_layers.__name__ or class_name not in EXTRACTORS:
            raise ModelFileError(
                f"The model uses the features extractor {extractor}; safe loading rebuilds SB3's own {EXTRACTORS} only "
                "(another class is code, which safe=True never runs): load it with safe=False if you trust the file"
            )
        if kwargs.pop("features_extractor_kwargs_not_json", False):
            raise ModelFileError(
                "The model's features_extractor_kwargs are not plain JSON (objects such as classes), which safe loading "
                "cannot rebuild: load it with safe=False if you trust the file"
            )
        kwargs["features_extractor_class"] = getattr(torch_layers, class_name)
    return kwargs


def plain_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that are plain JSON scalars (schedules, objects and envs are left out).

    :param settings: name -> value
    """
    return {k: v for k, v in settings.items() if v is None or isinstance(v, (bool, int, float, str))}


def write_description(path: PathLike, description: dict[str, Any]) -> None:
    """Add the description to a saved zip.

    :param path: the zip (a path or a file object open for reading and writing)
    :param description: plain JSON
    """
    text = json.dumps({"format": FORMAT, **description}, indent=1)
    if hasattr(path, "seek"):
        path.seek(0)  # type: ignore[union-attr]
    with zipfile.ZipFile(path, mode="a") as archive:  # type: ignore[arg-type]
        archive.writestr(DESCRIPTION, text)
