"""What an official v2 model class says about itself: its wire names, their types, and the field
docs (required? documented enum values?).

Everything is read from the generated model code itself, never written down by us: wire names
come from the model's own ``to_map()`` (each attribute set alone, the key that appears is its
name), types from the ``__init__`` annotations (``str``, ``int``, ``List[main_models.X]``,
``Dict[str, Any]`` ...), docs from the comments above each ``self.<attr> = <attr>`` line.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from dataclasses import dataclass

SCALARS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "bytes": (bytes, str)}
_REQUIRED = "This parameter is required."
_VALID_VALUES = re.compile(r"valid values?\b", re.I)
_BULLET = re.compile(r"^\s*[*-]\s+(.*)$")
_BOLD = re.compile(r"\*\*([^*]+?)\*\*")
_LEAD_BOLD = re.compile(r"^\*\*([^*]+?)\*\*(?:\s*[:(（]|\s*$|\s+-)")
_RANGE_TOKEN = re.compile(r"^\s*-?\d+\s*(?:to|~|-)\s*-?\d+\s*$|^\[.*\]$", re.I)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_RANGE = re.compile(r"\*\*[^*]+\*\*\s*(?:to|through|~|-)\s*\*\*", re.I)
_BARE = re.compile(r"^`?([A-Za-z0-9_.\-]+)`?\s*(?::|：|$)")


@dataclass(frozen=True)
class Kind:
    """A field's type: ``scalar`` (with ``py``), ``model`` (``model``), ``list`` (``item``),
    ``dict`` (free-form map) or ``any``."""

    tag: str
    py: tuple[type, ...] = ()
    model: type | None = None
    item: Kind | None = None


@dataclass(frozen=True)
class Field:
    attr: str
    wire: str
    kind: Kind
    doc: str

    @property
    def required(self) -> bool:
        return _REQUIRED in self.doc

    @property
    def enum(self) -> tuple[str, ...]:
        """The values listed under "Valid values" in the field doc (empty if none listed)."""
        return documented_values(self.doc)


@functools.cache
def documented_values(doc: str) -> tuple[str, ...]:
    """The enum a field doc lists after "Valid values" (``**a**`` and ``**b**`` inline, or one
    bullet per value: ``- **zh**: Chinese``, ``*   BINDING: ...``, ``*   NORMAL``). A range
    (``**1 to 100**``, ``**1** to **100**``) or a bullet list that is prose rather than values
    ("*   If **NextToken** is empty, ...") is no enum: ``()``."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if not _VALID_VALUES.search(line):
            continue
        tail = _SENTENCE_END.split(_VALID_VALUES.split(line, 1)[1], 1)[0]
        inline = _BOLD.findall(tail)
        if _RANGE.search(tail) or any(_RANGE_TOKEN.search(v) for v in inline):
            return ()
        out = list(inline)
        for follow in lines[i + 1:]:
            if not follow.strip():
                continue
            m = _BULLET.match(follow)
            if not m:
                if out:
                    break
                continue
            text = m.group(1).strip()
            value = _LEAD_BOLD.match(text) or _BARE.match(text)
            if value is None:
                return ()  # prose bullets: not a list of values
            out.append(value.group(1))
        if any(_RANGE_TOKEN.search(v) for v in out):
            return ()
        return tuple(dict.fromkeys(v.strip().strip("`") for v in out))
    return _bold_bullets(lines)


def _bold_bullets(lines: list[str]) -> tuple[str, ...]:
    """No "Valid values" line: a doc that is a sentence and then only ``*   **value**: ...``
    bullets (two or more) lists its values that way (CDN ``CertType``, ``SSLProtocol``)."""
    bullets = [m.group(1).strip() for line in lines if (m := _BULLET.match(line))]
    values = [v.group(1) for b in bullets if (v := _LEAD_BOLD.match(b))]
    if len(bullets) < 2 or len(values) != len(bullets) or any(_RANGE_TOKEN.search(v) for v in values):
        return ()
    return tuple(dict.fromkeys(v.strip() for v in values))


def _kind(annotation: str, models_module) -> Kind:
    a = annotation.strip()
    if a in SCALARS:
        return Kind("scalar", py=SCALARS[a])
    if a in ("Any", "object"):
        return Kind("any")
    if a.startswith("main_models."):
        return Kind("model", model=getattr(models_module, a.split(".", 1)[1]))
    if a.startswith("List[") and a.endswith("]"):
        return Kind("list", item=_kind(a[5:-1], models_module))
    if a.startswith("Dict[") and a.endswith("]"):
        return Kind("dict")
    raise ValueError(f"unknown annotation {annotation!r}")


def _docs(cls: type) -> dict[str, str]:
    """attr -> the comment block right above ``self.<attr> = <attr>`` in ``__init__``."""
    src = inspect.getsource(cls.__init__)
    docs: dict[str, str] = {}
    block: list[str] = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("#"):
            block.append(s[1:].removeprefix(" "))
            continue
        m = re.match(r"self\.(\w+)\s*=\s*\w+", s)
        if m:
            docs[m.group(1)] = "\n".join(block)
        block = []
    return docs


def _dummy(kind: Kind):
    """A value for a field that makes ``to_map`` show it (lists are emitted even when empty:
    a one-item list tells them apart)."""
    if kind.tag == "model":
        return kind.model()
    if kind.tag == "list":
        return [_dummy(kind.item)]
    if kind.tag == "dict":
        return {"k": "v"}
    if kind.tag == "scalar":
        return kind.py[0]()
    return "x"


@functools.cache
def fields(cls: type) -> dict[str, Field]:
    """wire name -> Field, for one official model class."""
    models_module = importlib.import_module(cls.__module__.rsplit(".", 1)[0])  # <package>.models
    sig = inspect.signature(cls.__init__)
    docs = _docs(cls)
    base = cls().to_map()
    out: dict[str, Field] = {}
    for name, p in list(sig.parameters.items())[1:]:
        ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "Any")
        kind = _kind(ann, models_module)
        shown = cls(**{name: _dummy(kind)}).to_map()
        wire = [k for k, v in shown.items() if k not in base or base[k] != v]
        if len(wire) != 1:
            raise ValueError(f"{cls.__name__}.{name}: to_map gave {wire}")
        out[wire[0]] = Field(name, wire[0], kind, docs.get(name, ""))
    return out


def model_class(module: str, name: str) -> type | None:
    """``<module>.models.<name>`` or None when the package has no such model."""
    models = importlib.import_module(f"{module}.models")
    return getattr(models, name, None)


def package_version(module: str) -> str:
    from importlib.metadata import packages_distributions, version
    dists = packages_distributions().get(module) or [module.replace("_", "-")]
    return version(dists[0])
