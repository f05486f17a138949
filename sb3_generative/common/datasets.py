"""Offline datasets: Minari ids and datasets, D4RL-format ``.hdf5`` / ``.npz`` files and dicts of arrays.

Every form is flattened once into :class:`OfflineData`, flat float32 arrays of transitions with separate
``terminations`` (bootstrapping stops) and ``truncations`` (time-outs and cuts, which do not stop bootstrapping).
A step flagged both terminated and truncated (a fall on the last allowed step) is a termination.
"""

import contextlib
import math
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_generative.common.observations import ObservationLayout

REQUIRED_KEYS = ("observations", "actions", "rewards")
TERMINATION_KEYS = ("terminations", "terminals")
TRUNCATION_KEYS = ("truncations", "timeouts")
FILE_SUFFIXES = (".hdf5", ".h5", ".npz")


#: what the generative policies support, said in every refusal of a space
SUPPORTED_SPACES = (
    "sb3_generative supports Box observation spaces of any shape (vectors, images) and Dict observation spaces of "
    "Boxes (goal-conditioned tasks), as SB3's off-policy algorithms do, and Box action spaces of any shape with finite "
    "bounds (diffusion and flow policies generate real vectors; Discrete, MultiDiscrete, MultiBinary and Dict actions "
    "are unsupported)"
)


class DatasetError(ValueError):
    """A dataset that cannot be used for training: missing, empty, malformed, or inconsistent with the env."""


class UnsupportedSpaceError(DatasetError, AssertionError):
    """An observation or action space the policies cannot handle. It is also an ``AssertionError``, what SB3's own
    algorithms raise for an unsupported space (``BaseAlgorithm``'s ``supported_action_spaces`` check), so code written
    for SB3 catches it; and a :class:`DatasetError`, as before."""


@dataclass
class OfflineData:
    """Flat transitions of an offline dataset.

    :param observations: (N, obs_dim) float32
    :param actions: (N, action_dim) float32, in the action space's own units
    :param rewards: (N,) float32, as stored (unscaled)
    :param next_observations: (N, obs_dim) float32
    :param terminations: (N,) bool, true terminal states (no bootstrap)
    :param truncations: (N,) bool, episode ends that are not terminal (time-outs, cuts)
    :param observation_space: observation space of the data
    :param action_space: action space of the data
    :param source: a JSON-able description of where the data came from (a Minari id or a file path), or None
    :param ref_min_score: return of a random policy (normalised score 0), if known
    :param ref_max_score: return of an expert policy (normalised score 100), if known
    :param env_spec: the environment spec to evaluate on, recorded with the data (Minari's ``eval_env_spec``, else the
        spec of the env that collected it), if any
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    observation_space: spaces.Space
    action_space: spaces.Space
    source: str | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    env_spec: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def episode_ends(self) -> np.ndarray:
        """Indices of the last step of every episode (terminated, truncated, or the end of the data)."""
        ends = np.flatnonzero(self.terminations | self.truncations)
        if len(self) and (ends.size == 0 or ends[-1] != len(self) - 1):
            ends = np.append(ends, len(self) - 1)
        return ends

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, in dataset reward units."""
        ends = self.episode_ends
        cumulative = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        starts = np.concatenate([[0], ends[:-1] + 1])
        return cumulative[ends + 1] - cumulative[starts]


# ---------------------------------------------------------------------------------------------------- loading
def load_offline_data(dataset: Any, download: bool = False) -> OfflineData:
    """Flatten any supported dataset form into :class:`OfflineData` and check it for NaN, inf and emptiness.

    :param dataset: a local Minari dataset id, a ``minari.MinariDataset``, a path to a D4RL-format ``.hdf5`` or
        ``.npz`` file, a dict of arrays (D4RL or Minari key names), or an :class:`OfflineData`
    :param download: allow Minari to download a dataset id that is not found locally
    :return: the flattened data
    """
    if isinstance(dataset, OfflineData):
        check_lengths(dataset)
        check_finite_and_nonempty(dataset)
        return dataset
    if isinstance(dataset, dict):
        data = from_arrays(dataset)
    elif isinstance(dataset, (str, os.PathLike)):
        data = _load_path_or_id(os.fspath(dataset), download)
    elif type(dataset).__name__ == "MinariDataset":
        data = from_minari(dataset)
    else:
        raise DatasetError(
            f"Unsupported dataset of type {type(dataset).__name__}: expected a Minari dataset id, a MinariDataset, "
            "a path to a D4RL-format .hdf5/.npz file, or a dict of arrays"
        )
    return data  # checked for emptiness and non-finite values as it was made


def _load_path_or_id(name: str, download: bool) -> OfflineData:
    with naming(name):
        if name.lower().endswith(FILE_SUFFIXES) or os.path.isfile(name):
            if not os.path.isfile(name):
                raise DatasetError(f"Dataset file {name!r} does not exist")
            data = from_npz(name) if name.lower().endswith(".npz") else from_hdf5(name)
            data.source = os.path.abspath(name)
            return data
        return from_minari(load_minari(name, download), source=name)


@contextlib.contextmanager
def naming(name: str) -> Iterator[None]:
    """Make every :class:`DatasetError` raised inside name the file or dataset ``name`` (prefixed when its message
    does not already): a byte flipped in a file can surface as a NaN found long after the file was read.

    :param name: the path or Minari id
    """
    try:
        yield
    except DatasetError as error:
        if name in str(error):
            raise
        raise type(error)(f"{name!r}: {error}") from error


def load_minari(dataset_id: str, download: bool = False) -> Any:
    """Open a Minari dataset, locally unless ``download`` is set; a missing id gives a clear error at once.

    :param dataset_id: Minari id such as ``"d4rl-style/hopper/medium-v0"``
    :param download: let Minari fetch a missing dataset from its remote
    :return: the ``MinariDataset``
    """
    import minari

    try:
        return minari.load_dataset(dataset_id, download=download)
    except FileNotFoundError as error:
        if download:
            raise _download_error(dataset_id, error) from error
        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets (MINARI_DATASETS_PATH is not set)")
        raise DatasetError(
            f"Minari dataset {dataset_id!r} was not found locally in MINARI_DATASETS_PATH={root}. Create it there "
            "(for the D4RL-style sets: sb3-generative-data d4rl-style --root <dir>), point MINARI_DATASETS_PATH at the folder "
            "that holds it, or pass download=True to fetch it from Minari's remote."
        ) from error
    except Exception as error:  # with download=True, whatever the network or the hub raised
        if download:
            raise _download_error(dataset_id, error) from error
        raise DatasetError(f"Cannot open Minari dataset {dataset_id!r}: {type(error).__name__}: {error}") from error


def _download_error(dataset_id: str, error: BaseException) -> DatasetError:
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    return DatasetError(
        f"Could not download Minari dataset {dataset_id!r}{offline}: {type(error).__name__}: {error}. Check the network "
        "connection and the id, or create the dataset locally and point MINARI_DATASETS_PATH at it."
    )


def from_minari(minari_dataset: Any, source: str | None = None) -> OfflineData:
    """Flatten a ``MinariDataset``: an episode of T actions holds T + 1 observations. A file of the dataset that
    cannot be read (corrupt, cut short) is a :class:`DatasetError` naming the dataset and its folder.

    :param minari_dataset: the dataset
    :param source: its id (kept so a saved model can find it again)
    """
    name = source or getattr(getattr(minari_dataset, "spec", None), "dataset_id", None) or "the Minari dataset"
    folder = getattr(getattr(minari_dataset, "spec", None), "data_path", None)
    with reading_errors(f"Minari dataset {name!r}" + (f" (files in {folder})" if folder else "")):
        return _from_minari(minari_dataset, source)


@contextlib.contextmanager
def reading_errors(what: str) -> Iterator[None]:
    """Turn whatever reading a file raises into a :class:`DatasetError` naming ``what`` (our own errors pass as they
    are). A file from elsewhere can fail inside h5py, numpy, zipfile, json or Minari in more ways than their
    documented exceptions (a corrupted HDF5 B-tree raises ``RuntimeError``, a bad chunk ``OSError``, a cut JSON
    ``ValueError``); the caller learns which file, not which library.

    :param what: the file or dataset, as the message names it
    """
    try:
        yield
    except DatasetError:
        raise
    except Exception as error:
        raise DatasetError(f"Cannot read {what}: {type(error).__name__}: {error}") from error


def _from_minari(minari_dataset: Any, source: str | None) -> OfflineData:
    check_supported_spaces(minari_dataset.observation_space, minari_dataset.action_space)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next_obs", "act", "rew", "term", "trunc")}
    layout = ObservationLayout(minari_dataset.observation_space)
    for episode in minari_dataset.iterate_episodes():
        obs = layout.flatten(episode.observations, f"the observations of Minari episode {episode.id}")
        if obs.shape[0] != len(episode.actions) + 1:
            raise DatasetError(
                f"Minari episode {episode.id} holds {obs.shape[0]} observations for {len(episode.actions)} actions "
                "(expected one more observation than actions)"
            )
        cols["obs"].append(obs[:-1])
        cols["next_obs"].append(obs[1:])
        cols["act"].append(np.asarray(episode.actions))
        cols["rew"].append(np.asarray(episode.rewards))
        where = f"Minari episode {episode.id}"
        cols["term"].append(as_flags(episode.terminations, "terminations", where))
        trunc = as_flags(episode.truncations, "truncations", where).copy()
        if trunc.size and not (trunc[-1] or cols["term"][-1][-1]):
            trunc[-1] = True  # an episode cut without a flag ends there all the same
        cols["trunc"].append(trunc)
    if not cols["obs"]:
        raise DatasetError(f"Minari dataset {source or minari_dataset.id!r} holds no episodes")
    metadata = minari_dataset.storage.metadata
    obs, act, rew, next_obs, term, trunc = (
        np.concatenate(cols[k]) for k in ("obs", "act", "rew", "next_obs", "term", "trunc")
    )
    return _make(
        obs,
        act,
        rew,
        next_obs,
        term,
        trunc,
        minari_dataset.observation_space,
        minari_dataset.action_space,
        source=source or minari_dataset.id,
        ref_min_score=metadata.get("ref_min_score"),
        ref_max_score=metadata.get("ref_max_score"),
        # Minari's evaluation env where the dataset has one (a maze's single-goal task, not the continuing task that
        # collected the data), as ``recover_environment(eval_env=True)`` gives it
        env_spec=getattr(minari_dataset, "_eval_env_spec", None) or minari_dataset.env_spec,
    )


def from_npz(path: str) -> OfflineData:
    """Read a D4RL-format ``.npz`` (never unpickles objects).

    :param path: file path
    """
    with reading_errors(f"{path!r} as an .npz archive of arrays"):
        check_npz_sizes(path)
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # an .npy (one array) under an .npz name
            raise ValueError(f"it holds a single {type(loaded).__name__} (an .npy file?), not an archive of named arrays")
        with loaded as archive:
            arrays = {key: archive[key] for key in archive.files}
    return from_arrays(nest_observation_keys(arrays), name=path)


def nest_observation_keys(arrays: dict[str, Any]) -> dict[str, Any]:
    """Arrays named ``observations/<key>`` (and ``next_observations/<key>``), one per key of a Dict observation, as a
    dict under ``observations``: how an ``.npz`` stores Dict observations (``np.savez(f, **{"observations/goal": ...})``).

    :param arrays: the file's arrays by name
    :return: the same arrays, the per-key ones nested
    """
    nested: dict[str, Any] = {}
    for name, value in arrays.items():
        group, _, key = name.partition("/")
        if key and group in ("observations", "next_observations"):
            if not isinstance(nested.setdefault(group, {}), dict):
                raise DatasetError(f"{group!r} is stored both as one array and as per-key arrays ({name!r})")
            nested[group][key] = value
        elif name in nested:
            raise DatasetError(f"{name!r} is stored both as one array and as per-key arrays")
        else:
            nested[name] = value
    return nested


def check_npz_sizes(path: str) -> None:
    """Refuse an ``.npz`` whose array headers declare more data than its members hold, before anything is allocated.

    :param path: file path
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (
                        np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(member)  # the header only
                declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if declared > info.file_size:
                    raise DatasetError(
                        f"{path!r}: array {info.filename!r} declares shape {shape} ({declared:,} bytes) but holds "
                        f"{info.file_size:,} bytes; refused before allocating"
                    )
    except (NotImplementedError, RuntimeError) as error:  # zip features numpy never writes (encryption, methods)
        raise DatasetError(f"Cannot read {path!r} as an .npz archive of arrays: {error}") from error
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        if isinstance(error, DatasetError):
            raise
        return  # not a readable archive: np.load says so with its own message


def from_hdf5(path: str) -> OfflineData:
    """Read the flat arrays of a D4RL-format ``.hdf5`` file: plain datasets stored in the file itself only (no
    external links, external storage or virtual datasets, which would read other files of the machine), each checked
    against the bytes it really stores before it is read.

    :param path: file path
    """
    import h5py

    keys = REQUIRED_KEYS + TERMINATION_KEYS + TRUNCATION_KEYS + ("next_observations",)
    with reading_errors(f"{path!r} as an HDF5 file"):
        with h5py.File(path, "r") as file:
            arrays: dict[str, Any] = {key: _read_hdf5_dataset(file, key, path) for key in keys if key in file}
            for key in ("observations", "next_observations"):  # Dict observations: a group of one dataset per key
                if key in file and isinstance(file.get(key), h5py.Group):
                    arrays[key] = {name: _read_hdf5_dataset(file[key], name, path) for name in file[key]}
    return from_arrays({k: v for k, v in arrays.items() if v is not None}, name=path)


#: how many times its stored bytes a compressed HDF5 dataset may expand to
HDF5_MAX_EXPANSION = 1000


def _read_hdf5_dataset(file: Any, key: str, path: str) -> np.ndarray | None:
    import h5py

    link = file.get(key, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        raise DatasetError(f"{path!r}: {key!r} is an external link to {link.filename!r}; only data inside the file is read")
    dataset = file.get(key)
    if not isinstance(dataset, h5py.Dataset):
        return None
    if dataset.is_virtual or dataset.external:
        raise DatasetError(
            f"{path!r}: {key!r} is a virtual dataset or uses external storage; only data inside the file is read"
        )
    declared = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    allowed = stored * (HDF5_MAX_EXPANSION if dataset.compression else 1) + 4096
    if declared > allowed:
        raise DatasetError(
            f"{path!r}: {key!r} declares shape {dataset.shape} ({declared:,} bytes) but stores {stored:,} bytes; refused "
            "before allocating"
        )
    return np.asarray(dataset[()])


def _pick(arrays: dict[str, Any], keys: tuple[str, ...], n: int, name: str) -> np.ndarray:
    for key in keys:
        if key in arrays:
            return as_flags(arrays[key], key, name)
    return np.zeros(n, dtype=bool)


def as_flags(value: Any, key: str, name: str) -> np.ndarray:
    """Termination / time-out flags as booleans: booleans or exactly 0 and 1 are accepted, nothing else.

    :param value: the flags
    :param key: their name in the data
    :param name: the data, for the message
    :return: a flat bool array
    """
    array = _as_numeric(value, key, name).reshape(-1)
    if array.dtype == bool:
        return array
    bad = ~((array == 0) | (array == 1))  # NaN compares unequal to both
    if bad.any():
        first = int(np.argmax(bad))
        raise DatasetError(
            f"{key!r} of {name} must hold booleans or exactly 0/1: {int(bad.sum())} value(s) are neither, first at "
            f"index {first} ({array[first]!r})"
        )
    return array != 0


def from_arrays(arrays: dict[str, Any], name: str = "the dataset dict") -> OfflineData:
    """Flat arrays with D4RL names (``terminals``, ``timeouts``) or Minari names (``terminations``, ``truncations``).

    Without ``next_observations`` the next state is the following row, as in ``d4rl.qlearning_dataset``: a step
    that ends in a time-out, or the last row when it is not terminal, has no known next state and is dropped.
    The last row with neither flag is a truncation (D4RL cuts its last episode).

    :param arrays: the arrays
    :param name: how to refer to the data in errors
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise DatasetError(f"{name} lacks the array(s) {missing}; expected at least {list(REQUIRED_KEYS)}")
    obs, obs_space = _observations(arrays["observations"], "observations", name)
    act = _as_2d(arrays["actions"], "actions", name, flatten=True)  # Box actions of any shape are stored flat
    action_shape = tuple(np.shape(arrays["actions"])[1:]) or (1,)  # the space keeps the shape the rows had
    rew = _as_numeric(arrays["rewards"], "rewards", name).reshape(-1)
    n = obs.shape[0]
    lengths = {"observations": n, "actions": act.shape[0], "rewards": rew.shape[0]}
    given_next = (
        _observations(arrays["next_observations"], "next_observations", name) if "next_observations" in arrays else None
    )
    if given_next is not None:
        lengths["next_observations"] = given_next[0].shape[0]
    for key in (*TERMINATION_KEYS, *TRUNCATION_KEYS):
        if key in arrays:
            value = _as_numeric(arrays[key], key, name)
            if value.ndim == 0:
                raise DatasetError(f"{key!r} of {name} must hold one entry per transition, got a scalar")
            lengths[key] = value.reshape(-1).shape[0]
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"Arrays of {name} have inconsistent lengths: {lengths}")
    term, trunc = _pick(arrays, TERMINATION_KEYS, n, name), _pick(arrays, TRUNCATION_KEYS, n, name)
    if given_next is not None:
        next_obs, next_space = given_next
        if next_obs.shape[1:] != obs.shape[1:] or type(next_space) is not type(obs_space):
            raise DatasetError(
                f"next_observations of {name} have shape {next_obs.shape[1:]} per row, observations {obs.shape[1:]}"
            )
        keep = np.ones(n, dtype=bool)
    else:
        next_obs = np.concatenate([obs[1:], obs[-1:]]) if n else obs
        keep = ~(trunc & ~term)
        if n:
            keep[-1] = bool(term[-1])
    if n and not (term[-1] or trunc[-1]):
        trunc = trunc.copy()
        trunc[-1] = True
    obs, act, rew, next_obs, term, trunc = (x[keep] for x in (obs, act, rew, next_obs, term, trunc))
    bad_actions = _first_bad("actions", act)
    if bad_actions:  # before the action space is inferred from them
        raise DatasetError("The dataset holds non-finite values: " + bad_actions)
    return _make(obs, act, rew, next_obs, term, trunc, obs_space, infer_action_space(act, action_shape))


def _observations(value: Any, key: str, name: str) -> tuple[np.ndarray, spaces.Space]:
    """Observations of an array dataset as flat rows, and their space: an (N, *shape) array (a Box of that shape;
    uint8 images a Box of [0, 255]) or a dict of them (a Dict space of those Boxes, one array per key)."""
    if isinstance(value, dict):
        if not value:
            raise DatasetError(f"{key!r} of {name} is an empty dict: a Dict observation needs at least one key")
        parts = {str(k): _observation_part(v, f"{key}[{k!r}]", name) for k, v in value.items()}
        space = spaces.Dict({k: part[1] for k, part in parts.items()})
        rows = {k: part[0].shape[0] for k, part in parts.items()}
        if len(set(rows.values())) > 1:
            raise DatasetError(f"The keys of {key!r} of {name} hold different numbers of rows: {rows}")
        return ObservationLayout(space).flatten({k: part[0] for k, part in parts.items()}, key), space
    array, box = _observation_part(value, key, name)
    return array.reshape(array.shape[0], int(np.prod(array.shape[1:]))), box


def _observation_part(value: Any, key: str, name: str) -> tuple[np.ndarray, spaces.Box]:
    array = _as_numeric(value, key, name)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim < 2 or int(np.prod(array.shape[1:])) == 0:
        raise DatasetError(f"{key!r} of {name} has width 0: each row must hold at least one number")
    if array.dtype == np.uint8 and array.ndim == 4:  # images, as SB3 recognises them
        return array, spaces.Box(0, 255, array.shape[1:], np.uint8)
    return array, spaces.Box(-np.inf, np.inf, array.shape[1:], np.float32)


def _as_numeric(value: Any, key: str, name: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise DatasetError(f"{key!r} of {name} is ragged (rows of different lengths): {error}") from error
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{key!r} of {name} must hold numbers, got dtype {array.dtype}")
    return array


def _as_2d(value: Any, key: str, name: str, flatten: bool = False) -> np.ndarray:
    array = _as_numeric(value, key, name)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if flatten and array.ndim > 2:
        array = array.reshape(array.shape[0], int(np.prod(array.shape[1:])))
    if array.ndim != 2:
        raise DatasetError(f"{key!r} of {name} must be a (N, dim) array, got shape {array.shape} (images are unsupported)")
    if array.shape[1] == 0:
        raise DatasetError(f"{key!r} of {name} has width 0: each row must hold at least one number")
    return array


def infer_action_space(actions: np.ndarray, shape: tuple[int, ...] | None = None) -> spaces.Box:
    """Box(-1, 1) when the actions fit in it (D4RL locomotion), else the data's own range.

    :param actions: (N, d) actions
    :param shape: the shape of one action, when the data stored more than a flat row (default ``(d,)``)
    """
    dim = shape or actions.shape[1:]
    if actions.size == 0 or (np.nanmin(actions) >= -1.0 and np.nanmax(actions) <= 1.0):
        return spaces.Box(-1.0, 1.0, dim, np.float32)
    warnings.warn(
        "Actions exceed [-1, 1]; the action space is inferred from the data's range. Pass env= to set it.", stacklevel=2
    )
    low, high = np.nanmin(actions, axis=0).reshape(dim), np.nanmax(actions, axis=0).reshape(dim)
    return spaces.Box(low.astype(np.float32), np.maximum(high, low + 1e-6).astype(np.float32), dtype=np.float32)


def _make(
    obs: np.ndarray,
    act: np.ndarray,
    rew: np.ndarray,
    next_obs: np.ndarray,
    term: np.ndarray,
    trunc: np.ndarray,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    **meta: Any,
) -> OfflineData:
    f32 = np.float32

    def flat(array: np.ndarray) -> np.ndarray:
        return np.asarray(array, f32).reshape(len(array), int(np.prod(np.shape(array)[1:])))

    data = OfflineData(
        observations=flat(obs),
        actions=flat(act),
        rewards=np.asarray(rew, f32).reshape(-1),
        next_observations=flat(next_obs),
        terminations=np.asarray(term, bool).reshape(-1),
        truncations=np.asarray(trunc, bool).reshape(-1) & ~np.asarray(term, bool).reshape(-1),
        observation_space=observation_space,
        action_space=action_space,
        **meta,
    )
    check_finite_and_nonempty(data)
    return data


# ---------------------------------------------------------------------------------------------------- checks
def check_supported_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Raise unless the observations are a flat Box and the actions a Box (any shape) with finite, distinct bounds.

    :param observation_space: observation space
    :param action_space: action space
    """
    if not isinstance(action_space, spaces.Box):
        raise UnsupportedSpaceError(f"Unsupported action space {action_space}. {SUPPORTED_SPACES}")
    parts = observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
    if not all(isinstance(part, spaces.Box) for part in parts):
        raise UnsupportedSpaceError(f"Unsupported observation space {observation_space}. {SUPPORTED_SPACES}")
    for name, space in (*(("observation", part) for part in parts), ("action", action_space)):
        if int(np.prod(space.shape or ())) == 0:
            raise DatasetError(f"The {name} space {space} has no dimensions (width 0)")
    low, high = action_space.low, action_space.high
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise DatasetError(f"The action space {action_space} has infinite bounds: actions are generated in a finite box")
    if not (high > low).all():
        raise DatasetError(f"The action space {action_space} has equal (or inverted) bounds in some dimension")


def _first_bad(name: str, array: np.ndarray) -> str | None:
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    rows = bad.reshape(len(array), -1).any(axis=1)
    first = int(np.argmax(rows))
    return f"{name}: {int(bad.sum())} non-finite value(s) (NaN or inf) in {int(rows.sum())} row(s), first at index {first}"


def check_lengths(data: OfflineData) -> None:
    """Raise unless every array of an :class:`OfflineData` holds one row per transition.

    :param data: the data
    """
    keys = ("observations", "actions", "rewards", "next_observations", "terminations", "truncations")
    lengths = {key: int(np.shape(getattr(data, key))[0]) if np.ndim(getattr(data, key)) else -1 for key in keys}
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"The arrays of the OfflineData disagree in length: {lengths}")


def check_finite_and_nonempty(data: OfflineData) -> None:
    """Raise a :class:`DatasetError` on an empty dataset or any NaN / inf value.

    :param data: the data
    """
    if len(data) == 0:
        raise DatasetError(f"The dataset {data.source or '(in memory)'} is empty: it holds no transitions")
    problems = [
        msg
        for msg in (_first_bad(key, getattr(data, key)) for key in ("observations", "actions", "rewards", "next_observations"))
        if msg
    ]
    if problems:
        raise DatasetError("The dataset holds non-finite values: " + "; ".join(problems))


def check_against_spaces(
    data: OfflineData, observation_space: spaces.Space, action_space: spaces.Space, clip_actions: bool = False
) -> None:
    """Check the data against the spaces a model is built for; actions out of bounds are clipped or refused.

    :param data: the data (its actions may be clipped in place)
    :param observation_space: the model's observation space
    :param action_space: the model's action space
    :param clip_actions: clip actions outside the bounds instead of raising
    """
    assert isinstance(action_space, spaces.Box)  # checked when the model was built
    transpose_channel_last_images(data, observation_space)
    ours, theirs = ObservationLayout(data.observation_space), ObservationLayout(observation_space)
    if (ours.keys, ours.shapes) != (theirs.keys, theirs.shapes) or data.observations.shape[1:] != (theirs.flat_dim,):

        def described(layout: ObservationLayout) -> str:
            return str(layout.shapes[0]) if not layout.is_dict else str(dict(zip(layout.keys, layout.shapes)))

        raise DatasetError(
            f"Observation shape mismatch: the dataset's observations have shape {described(ours)}, "
            f"the environment's observation space has shape {described(theirs)}"
        )
    if data.actions.shape[1:] != (int(np.prod(action_space.shape)),):  # flattened by _make
        raise DatasetError(
            f"Action shape mismatch: the dataset's actions have {data.actions.shape[1]} numbers per step, "
            f"the environment's action space has shape {action_space.shape}"
        )
    low, high = action_space.low.reshape(-1), action_space.high.reshape(-1)
    tolerance = 1e-5 * np.maximum(1.0, np.abs(high - low))
    outside = (data.actions < low - tolerance) | (data.actions > high + tolerance)
    if outside.any() and not clip_actions:
        rows = outside.any(axis=1)
        raise DatasetError(
            f"{int(rows.sum())} of {len(data)} dataset actions lie outside the action space bounds "
            f"[{low.min()}, {high.max()}] (first at index {int(np.argmax(rows))}); pass clip_actions=True to clip them"
        )
    if outside.any():
        warnings.warn(f"Clipping {int(outside.any(axis=1).sum())} dataset actions into the action space bounds", stacklevel=2)
    np.clip(data.actions, low, high, out=data.actions)


def transpose_channel_last_images(data: OfflineData, observation_space: spaces.Space) -> None:
    """Move channel-last (H, W, C) images of the data to the model's channel-first (C, H, W), in place.

    SB3 wraps an env whose images are channel-last in ``VecTransposeImage``, so the model's space is channel-first;
    data recorded from that env (a Minari dataset, arrays) holds the images as the env gave them. Each image part
    (a Box, or a key of a Dict) whose shape is the channel-last form of the model's is transposed, as the wrapper
    transposes the env's observations; nothing else changes.

    :param data: the data (its observation rows and space are replaced when an image part is transposed)
    :param observation_space: the model's observation space
    """
    ours, theirs = ObservationLayout(data.observation_space), ObservationLayout(observation_space)
    if ours.keys != theirs.keys:
        return
    offsets = np.cumsum([0, *ours.sizes])
    moved = False
    for part, (shape, target) in enumerate(zip(ours.shapes, theirs.shapes)):
        if len(shape) == 3 and shape != target and (shape[2], shape[0], shape[1]) == tuple(target):
            columns = slice(int(offsets[part]), int(offsets[part + 1]))
            for rows in (data.observations, data.next_observations):
                images = rows[:, columns].reshape(len(rows), *shape).transpose(0, 3, 1, 2)
                rows[:, columns] = images.reshape(len(rows), -1)
            moved = True
    if moved:
        data.observation_space = observation_space


# ---------------------------------------------------------------------------------------------------- rewards, scores
def locomotion_reward_scale(data: OfflineData, multiplier: float = 1000.0) -> float:
    """IQL's locomotion reward scaling factor ``multiplier / (max episode return - min episode return)``.

    Every episode counts, the final one cut off by the end of the data included, as in IQL's own ``normalize``
    (``ikostrikov/implicit_q_learning``: ``split_into_trajectories`` keeps the last, unfinished trajectory, whose
    return enters the range). GenerativeRL leaves that episode out, which makes the factor larger when the cut episode
    holds the smallest return (0.390 against 0.349 on hopper-medium).

    d3rlpy's ``ReturnBasedRewardScaler`` computes the same factor, but from an ``MDPDataset`` (which drops the last
    transition of every truncated episode) and by a Python loop over transitions: 2.3 s for 1M steps against 7 ms here.

    :param data: the data
    :param multiplier: numerator (IQL: 1000)
    :return: the factor (1.0 when all episodes have the same return)
    """
    returns = data.episode_returns()
    spread = float(returns.max() - returns.min()) if returns.size else 0.0
    if not math.isfinite(spread) or spread <= 1e-8:
        warnings.warn("All dataset episodes have the same return: reward scaling is left at 1.0", stacklevel=2)
        return 1.0
    return multiplier / spread


def observation_statistics(data: OfflineData) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the observations (computed in float64), refused if their variance overflows
    float32 (values around 1e19 and beyond, whose squares float32 arithmetic cannot hold).

    :param data: the data
    :return: (mean, std) as float32
    """
    observations = data.observations.astype(np.float64)
    mean, var = observations.mean(axis=0), observations.var(axis=0)
    bad = ~np.isfinite(var) | (var > np.finfo(np.float32).max)
    if bad.any():
        column = int(np.argmax(bad))
        raise DatasetError(
            f"Observation statistics overflow float32 in {int(bad.sum())} column(s), first column {column} "
            f"(mean {mean[column]:.3g}, variance {var[column]:.3g}): rescale those observations"
        )
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def normalized_score(
    returns: float | np.ndarray | list[float],
    dataset: Any = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
) -> np.ndarray:
    """D4RL-normalised score ``100 * (R - ref_min) / (ref_max - ref_min)``.

    ``minari.get_normalized_score(dataset, R)`` is the same fraction without the factor 100, but needs the dataset
    object; a saved model keeps only the two reference returns, so the formula is applied here.

    :param returns: episode return(s)
    :param dataset: an :class:`OfflineData`, a Minari dataset or id holding ``ref_min_score``/``ref_max_score``
    :param ref_min_score: random-policy return (overrides the dataset's)
    :param ref_max_score: expert return (overrides the dataset's)
    :return: normalised score(s), same shape as ``returns``
    """
    if dataset is not None and (ref_min_score is None or ref_max_score is None):
        lo, hi = reference_scores(dataset)
        ref_min_score = lo if ref_min_score is None else ref_min_score
        ref_max_score = hi if ref_max_score is None else ref_max_score
    if ref_min_score is None or ref_max_score is None:
        raise DatasetError("Normalised scores need ref_min_score and ref_max_score (from the dataset or given)")
    try:
        low, high = float(ref_min_score), float(ref_max_score)
    except (TypeError, ValueError):
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high)) or high == low:
        raise DatasetError(
            f"Normalised scores need finite, distinct reference returns; got ref_min_score={ref_min_score!r} and "
            f"ref_max_score={ref_max_score!r}"
        )
    return 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)


def reference_scores(dataset: Any) -> tuple[float | None, float | None]:
    """``(ref_min_score, ref_max_score)`` of an :class:`OfflineData`, a Minari dataset or a Minari id.

    :param dataset: the dataset
    """
    if isinstance(dataset, OfflineData):
        return dataset.ref_min_score, dataset.ref_max_score
    if isinstance(dataset, str):
        dataset = load_minari(dataset)
    if not hasattr(dataset, "storage"):
        raise DatasetError(f"Cannot read ref_min_score / ref_max_score from a {type(dataset).__name__}")
    metadata = dataset.storage.metadata
    return metadata.get("ref_min_score"), metadata.get("ref_max_score")
