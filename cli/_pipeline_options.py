"""The flags of every pipeline setting, generated from :class:`PipelineConfig`'s one definition
(type, choices, default, help), and the configuration they and ``--config FILE`` give."""

from __future__ import annotations

import argparse
from dataclasses import fields

__all__ = ["add_pipeline_options", "pipeline_config"]


def _flag(f) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and one flag per setting of :class:`PipelineConfig`; a flag given
    overrides the file, which overrides the defaults."""
    from pigment_connect.pipeline.config import PipelineConfig, setting_default

    group = parser.add_argument_group("pipeline settings (also in a --config file; pigment-connect config --show)")
    group.add_argument("--config", metavar="TOML", help="settings file (TOML, setting names as keys); flags override it")
    for f in fields(PipelineConfig):
        meta = f.metadata
        if not meta["cli"]:
            continue
        default = setting_default(f)
        shown = "" if default is None else f" (default {', '.join(default) if isinstance(default, tuple) else default})"
        options = dict(dest=f.name, default=argparse.SUPPRESS, help=meta["help"] + shown)
        if isinstance(default, tuple) or f.name == "atlases":
            options.update(action="append", metavar=f.name.rstrip("s").upper() if f.name != "atlases" else "NAME")
        elif meta["choices"] is not None:
            options.update(choices=meta["choices"])
            if meta.get("const") is not None:
                options.update(nargs="?", const=meta["const"], metavar="{" + ",".join(meta["choices"]) + "}")
        else:
            kind = meta["kind"] or type(default)
            options.update(type=kind, metavar={int: "N", float: "X", str: "PATTERN"}.get(kind, "VALUE"))
        group.add_argument(_flag(f), **options)


def pipeline_config(args: argparse.Namespace):
    """The :class:`PipelineConfig` of the defaults, ``--config`` and the flags given, in that
    order of precedence (``--seed`` from the standard options when given)."""
    from pigment_connect.pipeline.config import PipelineConfig, load_config

    values = load_config(args.config) if getattr(args, "config", None) else {}
    for f in fields(PipelineConfig):
        if not f.metadata["cli"] or f.name not in vars(args):
            continue
        value = getattr(args, f.name)
        if isinstance(value, list):  # repeatable flags; weightings may also be comma-separated
            value = tuple(v for item in value for v in item.split(",") if v)
        values[f.name] = value
    if getattr(args, "seed", None) is not None:
        values["seed"] = args.seed
    return PipelineConfig.from_dict(values, source=getattr(args, "config", None))
